# DataNet: paste into an Execute DAT; turn on Start, Create, Frame Start and Exit.
#
# The network beside it: a Text DAT named DataNet holding DataNet.py, a Table DAT
# named messages, a Script CHOP named values whose callbacks DAT holds
# td/script_chop_callbacks.py, and optionally a Text DAT named callbacks made from
# td/callbacks_template.py. Settings come from the environment variables below, or
# edit the defaults here.
import os

API_KEY = os.environ.get('DATANET_API_KEY', '')
API_URL = os.environ.get('DATANET_API_URL', 'https://api.datanet.art')
WS_URL = os.environ.get('DATANET_WS_URL', 'wss://ws.datanet.art')
CHANNELS = os.environ.get('DATANET_CHANNELS', 'project.demo.sensor').split()
# True: the callbacks DAT's onMessage runs at most once per frame per channel, with
# the newest message (and how many it replaced): the cost grows with channels, not
# with the message rate. Most sensor work wants this.
NEWEST_ONLY = os.environ.get('DATANET_NEWEST_ONLY', '') == '1'
TABLE = 'messages'
CHOP = 'values'
CALLBACKS = 'callbacks'
MAX_ROWS = 100


def onStart():
    dn = op('DataNet').module
    if not API_KEY:
        debug('DataNet: set DATANET_API_KEY (or API_KEY in this DAT) to connect')
        return
    dn.connect(API_KEY, api_url=API_URL, ws_url=WS_URL)
    for channel in CHANNELS:
        # No Python callback: messages fill the table and the CHOP and never reach
        # Python. The callbacks DAT, when present, gets them too.
        if not _callback('onMessage'):
            dn.subscribe(channel)
        elif NEWEST_ONLY:
            dn.subscribe(channel, _on_latest, latest=True)
        else:
            dn.subscribe(channel, _on_message)
    dn.on('connect', _on_connect)
    dn.on('disconnect', _on_disconnect)
    dn.on('error', _on_error)


def onCreate():
    onStart()


def onFrameStart(frame):
    dn = op('DataNet').module
    _refresh_callbacks()
    dn.poll()
    dn.update_table(op(TABLE), max_rows=MAX_ROWS)
    if dn.values_changed():
        op(CHOP).cook(force=True)


def onExit():
    op('DataNet').module.disconnect()


def _callback(name):
    dat = op(CALLBACKS)
    return getattr(dat.module, name, None) if dat is not None else None


# The callbacks DAT's functions, looked up once per frame (not per message), so an
# edit to that DAT takes effect on the next frame.
_callbacks = {}


def _refresh_callbacks():
    for name in ('onMessage', 'onConnect', 'onDisconnect', 'onError'):
        _callbacks[name] = _callback(name)


def _forward(name, *args):
    # Handlers run inside dn.poll(), which onFrameStart calls after the refresh.
    function = _callbacks.get(name)
    if function is not None:
        function(*args)


def _on_message(channel, data, from_, timestamp):
    _forward('onMessage', channel, data, from_, timestamp)


def _on_latest(channel, data, from_, timestamp, replaced):
    _forward('onMessage', channel, data, from_, timestamp, replaced)


def _on_connect():
    _forward('onConnect')


def _on_disconnect():
    _forward('onDisconnect')


def _on_error(error):
    _forward('onError', error)

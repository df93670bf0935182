"""DataNet component extension: the logic behind the DataNet COMP's parameters.

Built into the component by td/build_component.py (Text DAT DataNetExt, promoted:
op('DataNet').Publish(...), .Subscribe(...), .Unsubscribe(...), .Connect(), ...).
Runs only on TouchDesigner's main thread, from the component's Execute and
Parameter Execute DATs. The API key is read from the Apikey parameter (or the
DATANET_API_KEY environment variable) and never written anywhere else.
"""

import os

STATS_EVERY_FRAMES = 15          # the Stats page and info CHOP: 4 times a second at 60 fps
PRESENCE_EVERY_SECONDS = 10.0    # occupancy of the first channel: occasional, never per frame
CALLBACKS = ("onMessage", "onConnect", "onDisconnect", "onError")
SETTINGS = ("Apikey", "Apiurl", "Wsurl", "Deviceid", "Devicename", "Cafile", "Tlsroots", "Proxy", "Echo")
STATES = {"idle": "Idle", "connecting": "Connecting", "connected": "Connected",
          "reconnecting": "Reconnecting", "closed": "Disconnected", "failed": "Failed"}


class Relay:
    """A handler the client keeps for this component. TD makes the extension again
    whenever its DAT changes (or the .tox reloads), so the client must never hold an
    instance: each call goes to the component's live extension."""

    __slots__ = ("comp", "method")

    def __init__(self, comp, method):
        self.comp = comp
        self.method = method

    def __call__(self, *args):
        extension = getattr(self.comp.ext, "DataNetExt", None) if self.comp.valid else None
        if extension is not None:
            getattr(extension, self.method)(*args)


class DataNetExt:
    def __init__(self, ownerComp):
        self.ownerComp = ownerComp
        self.frame = 0
        self.last_presence = None
        self.info = {"connected": 0.0, "messages_pending": 0.0}
        # The callbacks DAT's functions, looked up once per frame (not per message),
        # so an edit to that DAT takes effect on the next frame.
        self.handlers = {}

    # -- promoted API ------------------------------------------------------------

    def Connect(self):
        """Connects with the component's parameters (if Active)."""
        par = self.ownerComp.par
        if not par.Active.eval():
            self._show_state("Inactive")
            return False
        api_key = par.Apikey.eval() or os.environ.get("DATANET_API_KEY", "")
        if not api_key:
            self._fail("no API key: set the Apikey parameter (or DATANET_API_KEY)")
            return False
        options = {"api_url": par.Apiurl.eval(), "ws_url": par.Wsurl.eval(),
                   "device_id": par.Deviceid.eval() or None, "device_name": par.Devicename.eval() or None,
                   "echo": bool(par.Echo.eval())}
        if par.Cafile.eval():
            options["ca_file"] = par.Cafile.eval()
        options["tls_roots"] = par.Tlsroots.eval()
        if par.Proxy.eval():  # empty: the proxy environment variables decide
            options["proxy"] = par.Proxy.eval()
        client = self.client()
        try:
            client.connect(api_key, **options)
        except self.module().DataNetError as error:
            self._fail(str(error))
            return False
        self.ownerComp.clearScriptErrors()
        self._register_handlers(client)
        self._sync_channels()
        self.UpdateStats()
        return True

    def Disconnect(self):
        self.client().disconnect()
        self.UpdateStats()

    def Reset(self):
        """Drops the connection and the table, then connects afresh."""
        self.client().disconnect()
        self.Clear()
        self.ownerComp.clearScriptErrors()
        return self.Connect()

    def Clear(self):
        self.ownerComp.op("messages").clear()

    def Publish(self, channel, data, content_type=None, metadata=None):
        self.client().publish(channel, data, content_type, metadata)

    def PublishChop(self, chop, channel, mode="json", rate=44.0, **options):
        return self.client().publish_chop(chop, channel, mode=mode, rate=rate, **options)

    def Subscribe(self, channel):
        """Adds a channel to the Channels parameter (and so subscribes to it)."""
        channels = self._channels()
        if channel not in channels:
            self.ownerComp.par.Channels = " ".join(channels + [channel])
            self._sync_channels()

    def Unsubscribe(self, channel):
        channels = self._channels()
        if channel in channels:
            self.ownerComp.par.Channels = " ".join(c for c in channels if c != channel)
            self._sync_channels()

    def GetStatus(self):
        return self.client().status()

    # -- TD's extension lifecycle ----------------------------------------------------

    def onDestroyTD(self):
        """TD is making this extension again: nothing outside points at this instance
        (the client holds relays), so only its own lookups go."""
        self.handlers = {}

    # -- called by the component's DATs -------------------------------------------

    def Start(self):
        if self.ownerComp.par.Autoconnect.eval():
            self.Connect()
        else:
            self._show_state("Idle")

    def Stop(self):
        self.client().disconnect()

    def Update(self, frame):
        """Once per frame: one library call for the events, new table rows, and a
        CHOP cook only when values changed; stats a few times a second."""
        self.frame += 1
        client = self.client()
        self.handlers = {name: self._callbacks(name) for name in CALLBACKS}
        client.poll()
        client.update_table(self.ownerComp.op("messages"), max_rows=int(self.ownerComp.par.Maxrows.eval()))
        if client.values_changed():
            self.ownerComp.op("values").cook(force=True)
        if self.frame % STATS_EVERY_FRAMES == 0:
            self.UpdateStats()

    def OnValueChange(self, par):
        if par.name == "Active":
            self.Connect() if par.eval() else self.Disconnect()
        elif par.name == "Channels":
            self._sync_channels()
        elif par.name == "Newestonly":
            self._sync_channels(resubscribe=True)
        elif par.name in SETTINGS and self.client().status()["state"] not in ("idle", "closed"):
            self.Connect()  # new settings: the library reconnects with them

    def OnPulse(self, par):
        actions = {"Connect": self.Connect, "Disconnect": self.Disconnect, "Reset": self.Reset, "Clear": self.Clear}
        if par.name in actions:
            actions[par.name]()

    def UpdateStats(self):
        status = self.client().status()
        counters = status.get("counters", {})
        par = self.ownerComp.par
        error = status.get("last_error") or {}
        state = STATES.get(status.get("state"), status.get("state"))
        if status.get("state") == "failed" and error:
            state = "Failed: %s" % error.get("code")
        if not par.Active.eval():
            state = "Inactive"
        self._set(par.Status, state)
        self._set(par.Received, counters.get("received", 0))
        self._set(par.Sent, counters.get("sent", 0))
        self._set(par.Dropped, counters.get("dropped_inbound", 0) + counters.get("dropped_outbound", 0))
        self._set(par.Queued, counters.get("queued_outbound", 0))
        self._set(par.Reconnects, counters.get("reconnects", 0))
        self._set(par.Lasterror, "%s: %s" % (error["code"], error["message"]) if error else "")
        self._set(par.Rtt, status.get("rtt_ms") or 0.0)
        channels = self._channels()
        if channels:
            self._set(par.Occupancy, status.get("occupancy", {}).get(channels[0]) or 0)
        self.info = {"connected": 1.0 if status.get("state") == "connected" else 0.0,
                     "messages_pending": float(status.get("events_pending", 0))}
        self.ownerComp.op("info").cook(force=True)
        self._request_presence(status, channels)

    # -- internals ---------------------------------------------------------------

    def module(self):
        return self.ownerComp.op("DataNet").module

    def client(self):
        """This component's connection (one per component, named by its path)."""
        return self.module().DataNet(self.ownerComp.path)

    def _channels(self):
        return self.ownerComp.par.Channels.eval().split()

    def _callbacks(self, name):
        dat = self.ownerComp.op("callbacks")
        return getattr(dat.module, name, None) if dat is not None else None

    def _forward(self, name, *args):
        # Handlers run inside client.poll(), which Update calls after the lookup.
        function = self.handlers.get(name)
        if function is not None:
            function(*args)

    def _sync_channels(self, resubscribe=False):
        client, wanted = self.client(), self._channels()
        for channel in client.subscriptions():
            if resubscribe or channel not in wanted:
                # Unsubscribing and subscribing again within a frame sends nothing.
                client.unsubscribe(channel)
        # Without an onMessage in the callbacks DAT, messages never reach Python; with
        # Newestonly, onMessage runs at most once per frame per channel.
        callback, latest = None, False
        if self._callbacks("onMessage"):
            latest = bool(self.ownerComp.par.Newestonly.eval())
            callback = Relay(self.ownerComp, "_on_latest" if latest else "_on_message")
        subscribed = client.subscriptions()
        for channel in wanted:
            if channel not in subscribed:
                client.subscribe(channel, callback, latest=latest)

    def _register_handlers(self, client):
        for event, method in (("connect", "_on_connect"), ("disconnect", "_on_disconnect"),
                              ("error", "_on_error"), ("presence", "_on_presence")):
            client.off(event)
            client.on(event, Relay(self.ownerComp, method))

    def _on_message(self, channel, data, from_, timestamp):
        self._forward("onMessage", channel, data, from_, timestamp)

    def _on_latest(self, channel, data, from_, timestamp, replaced):
        self._forward("onMessage", channel, data, from_, timestamp, replaced)

    def _on_connect(self):
        self.ownerComp.clearScriptErrors()
        self.UpdateStats()
        self._forward("onConnect")

    def _on_disconnect(self):
        self.UpdateStats()
        self._forward("onDisconnect")

    def _on_error(self, error):
        if error.code == "upstream_restored":
            # A venue relay reaches upstream again: its upstream_unavailable no longer holds.
            self.ownerComp.clearScriptErrors()
        else:
            self.ownerComp.addScriptError("DataNet %s: %s" % (error.code, error.message))
        self._forward("onError", error)

    def _on_presence(self, channel, presence):
        channels = self._channels()
        if channels and channel == channels[0]:
            self._set(self.ownerComp.par.Occupancy, presence.get("occupancy", 0))

    def _request_presence(self, status, channels):
        if not channels or status.get("state") != "connected":
            return
        now = absTime.seconds
        if self.last_presence is None or now - self.last_presence >= PRESENCE_EVERY_SECONDS:
            self.last_presence = now
            self.client().get_presence(channels[0])

    def _fail(self, message):
        self.ownerComp.addScriptError("DataNet: %s" % message)
        self._show_state("Error: %s" % message)

    def _show_state(self, text):
        self._set(self.ownerComp.par.Status, text)

    @staticmethod
    def _set(par, value):
        if par.eval() != value:
            par.val = value

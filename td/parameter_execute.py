# DataNet: paste into a Parameter Execute DAT watching the DataNet component: OPs
# set to the component, Parameters *, Custom on, Built-In off, Value Change and
# On Pulse on, Values Changed off (TD does not document the defaults: set each).
# Parameters: Active, Apikey, Apiurl, Wsurl, Channels, Connect, Disconnect, Reset.


def _dn():
    return op('DataNet').module


def _connect(comp):
    dn = _dn()
    if not comp.par.Apikey.eval():
        return
    dn.connect(comp.par.Apikey.eval(), api_url=comp.par.Apiurl.eval(), ws_url=comp.par.Wsurl.eval())
    wanted = set(comp.par.Channels.eval().split())
    for channel in dn.subscriptions():
        if channel not in wanted:
            dn.unsubscribe(channel)
    for channel in wanted:
        dn.subscribe(channel, None)


def onValueChange(par, prev, *rest):
    comp = par.owner
    if par.name == 'Active':
        if par.eval():
            _connect(comp)
        else:
            _dn().disconnect()
    elif par.name in ('Apikey', 'Apiurl', 'Wsurl', 'Channels') and comp.par.Active.eval():
        _connect(comp)


def onPulse(par):
    comp = par.owner
    if par.name == 'Connect':
        _connect(comp)
    elif par.name == 'Disconnect':
        _dn().disconnect()
    elif par.name == 'Reset':
        _dn().disconnect()
        _connect(comp)

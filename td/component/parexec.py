# DataNet component: Parameter Execute DAT watching the component (Value Change
# and On Pulse on). Some TD builds pass (par, val, prev): accept both.


def onValueChange(par, *rest):
    parent().ext.DataNetExt.OnValueChange(par)


def onPulse(par):
    parent().ext.DataNetExt.OnPulse(par)

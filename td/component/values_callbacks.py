# DataNet component: callbacks of the values Script CHOP. One channel per numeric
# field of the subscribed channels (see the README's naming); force-cooked by the
# component only in frames where new values arrived.


def onSetupParameters(scriptOp):
    return


def onCook(scriptOp):
    parent().ext.DataNetExt.client().update_chop(scriptOp)

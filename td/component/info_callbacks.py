# DataNet component: callbacks of the info Script CHOP: connected (0/1) and
# messages_pending, as on the MQTT Client DAT's info CHOP.


def onSetupParameters(scriptOp):
    return


def onCook(scriptOp):
    scriptOp.clear()
    scriptOp.numSamples = 1
    for name, value in parent().ext.DataNetExt.info.items():
        scriptOp.appendChan(name)[0] = value

# DataNet: paste into the callbacks DAT of a Script CHOP named values.
# One channel per numeric field of every subscribed channel, named like
# sensor_pos_x for field pos/x of project.<id>.sensor. The Execute DAT force-cooks
# this CHOP only in frames where new messages arrived.


def onSetupParameters(scriptOp):
    return


def onCook(scriptOp):
    op('DataNet').module.update_chop(scriptOp)

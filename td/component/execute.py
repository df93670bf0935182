# DataNet component: Execute DAT (Start, Create, Frame Start, Exit, Project Pre Save on).
# Everything is in the DataNetExt extension; this only forwards TD's events.


def onStart():
    parent().ext.DataNetExt.Start()


def onCreate():
    parent().ext.DataNetExt.Start()


def onFrameStart(frame):
    parent().ext.DataNetExt.Update(frame)


def onExit():
    parent().ext.DataNetExt.Stop()


def onProjectPreSave():
    # Nothing native is stored in the component (storage is pickled into the .toe),
    # so saving needs no preparation; the stats are brought up to date.
    parent().ext.DataNetExt.UpdateStats()

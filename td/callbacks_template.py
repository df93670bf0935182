# DataNet callbacks: copy into a Text DAT named callbacks and edit.
# Everything here runs on TouchDesigner's main thread, from the Execute DAT's poll.
# Keep it light: it runs inside the frame.


def onMessage(channel, data, from_, timestamp, replaced=0):
    # data is the decoded JSON value; timestamp is server time in ms. With newest-only
    # callbacks (the component's Newestonly, or NEWEST_ONLY in the Execute DAT) this
    # runs at most once per frame per channel, and replaced counts the older messages
    # of that frame it stands for.
    return


def onConnect():
    return


def onDisconnect():
    return


def onError(error):
    # error.code, error.message, error.channel, error.retry_ms, ... (DataNetError)
    debug('DataNet error', error.code, error.message)

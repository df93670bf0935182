# DataNet callbacks: copy into a Text DAT named callbacks and edit.
# Everything here runs on TouchDesigner's main thread, once per event, from the
# Execute DAT's poll. Keep it light: it runs inside the frame.


def onMessage(channel, data, from_, timestamp):
    # data is the decoded JSON value; timestamp is server time in ms.
    return


def onConnect():
    return


def onDisconnect():
    return


def onError(error):
    # error.code, error.message, error.channel, error.retry_ms, ... (DataNetError)
    debug('DataNet error', error.code, error.message)

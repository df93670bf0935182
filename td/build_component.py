"""Builds the DataNet component and saves it as DataNet.tox next to the project.

Run once inside TouchDesigner, in the textport:

    exec(open('C:/path/to/datanet-td/td/build_component.py').read())

It creates a Base COMP named DataNet in /project1 (or the root) from the text files
of this repository (DataNet.py, td/component/*.py, td/callbacks_template.py), so
the component stays reproducible from text, then saves it and prints where.
"""

import os

PAGE_DATANET = [
    # (style, name, label, default)
    ("Toggle", "Active", "Active", True),
    ("Str", "Apikey", "API Key", ""),
    ("Str", "Channels", "Channels", ""),
    ("Str", "Apiurl", "API URL", "https://api.datanet.art"),
    ("Str", "Wsurl", "WS URL", "wss://ws.datanet.art"),
    ("Str", "Deviceid", "Device ID", ""),
    ("Str", "Devicename", "Device Name", ""),
    ("Toggle", "Autoconnect", "Auto Connect", True),
    ("Pulse", "Connect", "Connect", None),
    ("Pulse", "Disconnect", "Disconnect", None),
    ("Pulse", "Reset", "Reset", None),
    ("Int", "Maxrows", "Max Rows", 100),
    ("Pulse", "Clear", "Clear Table", None),
    ("File", "Cafile", "CA File", ""),
    ("Menu", "Tlsroots", "TLS Roots", "both"),
    ("Str", "Proxy", "Proxy", ""),
    ("Toggle", "Echo", "Echo Own Messages", True),
    ("Str", "Status", "Status", "Idle"),
]
PAGE_STATS = [
    ("Int", "Received", "Received", 0),
    ("Int", "Sent", "Sent", 0),
    ("Int", "Dropped", "Dropped", 0),
    ("Int", "Queued", "Queued", 0),
    ("Int", "Reconnects", "Reconnects", 0),
    ("Str", "Lasterror", "Last Error", ""),
    ("Float", "Rtt", "RTT (ms)", 0.0),
    ("Int", "Occupancy", "Occupancy (first channel)", 0),
]
READ_ONLY = {"Status"} | {name for _, name, _, _ in PAGE_STATS}
# Menu parameters: (names, labels). Names are the library's config values.
MENUS = {"Tlsroots": (["both", "os", "webpki"], ["OS Store + Built-in", "OS Store Only", "Built-in Only"])}


def repo_folder():
    here = globals().get("__file__")
    if here:
        return os.path.dirname(os.path.dirname(os.path.abspath(here)))
    return os.environ.get("DATANET_REPO") or os.getcwd()


def read(repo, relative):
    with open(os.path.join(repo, relative), encoding="utf-8") as f:
        return f.read()


def add_page(comp, title, pars):
    page = comp.appendCustomPage(title)
    for style, name, label, default in pars:
        par = getattr(page, "append" + style)(name, label=label)[0]
        if name in MENUS:
            par.menuNames, par.menuLabels = MENUS[name]
        if default is not None:
            par.default = default
            par.val = default
        if name in READ_ONLY:
            par.readOnly = True


def text_dat(comp, name, text, x, y):
    dat = comp.create(textDAT, name)
    dat.text = text
    dat.nodeX, dat.nodeY = x, y
    return dat


def build(parent_comp, repo=None, name="DataNet", save_folder=None, save=True):
    repo = repo or repo_folder()
    comp = parent_comp.create(baseCOMP, name)
    comp.comment = "DataNet realtime pub/sub. Build script: td/build_component.py"
    add_page(comp, "DataNet", PAGE_DATANET)
    add_page(comp, "Stats", PAGE_STATS)

    text_dat(comp, "DataNet", read(repo, "DataNet.py"), 0, 300)
    text_dat(comp, "DataNetExt", read(repo, "td/component/extension.py"), 200, 300)
    text_dat(comp, "callbacks", read(repo, "td/callbacks_template.py"), 400, 300)
    messages = comp.create(tableDAT, "messages")
    messages.nodeX, messages.nodeY = 0, 0
    for chop_name, callbacks_file, x in (("values", "td/component/values_callbacks.py", 200),
                                         ("info", "td/component/info_callbacks.py", 400)):
        callbacks = text_dat(comp, chop_name + "_callbacks", read(repo, callbacks_file), x, -200)
        chop = comp.create(scriptCHOP, chop_name)
        chop.par.callbacks = callbacks
        chop.nodeX, chop.nodeY = x, 0
    comp.par.extension1 = "op('./DataNetExt').module.DataNetExt(me)"
    comp.par.promoteextension1 = True
    comp.initializeExtensions()

    # The DATs that call the extension come last, once it exists.
    watcher = comp.create(parameterexecuteDAT, "parexec")
    watcher.par.op = comp
    watcher.text = read(repo, "td/component/parexec.py")
    watcher.nodeX, watcher.nodeY = 600, 300
    execute = comp.create(executeDAT, "execute")
    execute.text = read(repo, "td/component/execute.py")
    execute.nodeX, execute.nodeY = 600, 0

    if not save:
        return comp, None
    folder = save_folder or project.folder
    path = comp.save(os.path.join(folder, "DataNet.tox"))
    print("DataNet: component built at %s and saved to %s" % (comp.path, path))
    return comp, path


if globals().get("op") is not None and __name__ != "build_component":
    build(op("/project1") or op("/"))

"""Builds the DataNet component and saves it as DataNet.tox next to the project.

Run once inside TouchDesigner, in the textport:

    import runpy; runpy.run_path('C:/path/to/datanet-td/td/build_component.py', init_globals=globals())

It creates a Base COMP named DataNet in /project1 (or the root) from the text files
of this repository (DataNet.py, td/component/*.py, td/callbacks_template.py), so
the component stays reproducible from text, then saves it and prints where. To
build again, delete (or rename) the DataNet made before: TD would otherwise name
the new one DataNet1.
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
    ("Toggle", "Newestonly", "onMessage: Newest Only", False),
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
# The Parameter Execute DAT watches the component's own parameters, by value change
# and pulse (td/component/parexec.py). TD does not document the defaults: set each.
PAREXEC_PARS = (("active", True), ("pars", "*"), ("custom", True), ("builtin", False), ("valuechange", True),
                ("onpulse", True), ("valueschanged", False))
# The Execute DAT's callbacks the component uses (td/component/execute.py).
EXECUTE_TOGGLES = ("active", "start", "create", "framestart", "exit")
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


def create(comp, op_type, name):
    """comp.create(), refusing TD's quiet rename when the name is taken."""
    made = comp.create(op_type, name)
    if made.name != name:
        made.destroy()
        raise RuntimeError("DataNet build: %s already has an operator named %s; delete or rename it "
                           "and run the build again" % (comp.path, name))
    return made


def text_dat(comp, name, text, x, y):
    dat = create(comp, textDAT, name)
    dat.text = text
    dat.nodeX, dat.nodeY = x, y
    return dat


def attach_extension(comp, expression):
    """The Extensions page: ext0object / ext0promote in current builds,
    extension1 / promoteextension1 in 2020-era builds (only where ext0object is
    missing). A missing parameter may read as None or raise, so ask par[...]."""
    par = comp.par
    if par["ext0object"] is not None:
        mode = globals().get("ParMode")
        if mode is not None:  # a constant holding the expression text, never an expression
            par.ext0object.mode = mode.CONSTANT
        par.ext0object = expression
        par.ext0promote = True
    else:
        par.extension1 = expression
        par.promoteextension1 = True
    if par["initextonstart"] is not None:
        par.initextonstart = True
    comp.initializeExtensions()


def build(parent_comp, repo=None, name="DataNet", save_folder=None, save=True):
    repo = repo or repo_folder()
    comp = create(parent_comp, baseCOMP, name)
    comp.comment = "DataNet realtime pub/sub. Build script: td/build_component.py"
    add_page(comp, "DataNet", PAGE_DATANET)
    add_page(comp, "Stats", PAGE_STATS)

    text_dat(comp, "DataNet", read(repo, "DataNet.py"), 0, 300)
    text_dat(comp, "DataNetExt", read(repo, "td/component/extension.py"), 200, 300)
    text_dat(comp, "callbacks", read(repo, "td/callbacks_template.py"), 400, 300)
    messages = create(comp, tableDAT, "messages")
    messages.nodeX, messages.nodeY = 0, 0
    for chop_name, callbacks_file, x in (("values", "td/component/values_callbacks.py", 200),
                                         ("info", "td/component/info_callbacks.py", 400)):
        chop = create(comp, scriptCHOP, chop_name)
        chop.nodeX, chop.nodeY = x, 0
        callbacks = chop.par.callbacks.eval()  # create() made it, docked to the CHOP
        if callbacks is None:
            callbacks = create(comp, textDAT, chop_name + "_callbacks")
            chop.par.callbacks = callbacks
        callbacks.text = read(repo, callbacks_file)
        callbacks.nodeX, callbacks.nodeY = x, -200
    attach_extension(comp, "op('./DataNetExt').module.DataNetExt(me)")

    # The DATs that call the extension come last, once it exists.
    watcher = create(comp, parameterexecuteDAT, "parexec")
    watcher.text = read(repo, "td/component/parexec.py")
    watcher.par.op = comp
    for par_name, value in PAREXEC_PARS:
        setattr(watcher.par, par_name, value)
    watcher.nodeX, watcher.nodeY = 600, 300
    execute = create(comp, executeDAT, "execute")
    execute.text = read(repo, "td/component/execute.py")
    execute.nodeX, execute.nodeY = 600, 0
    # Each callback runs only while its toggle is on, and a new Execute DAT has them off.
    for toggle in EXECUTE_TOGGLES:
        setattr(execute.par, toggle, True)
    if execute.par["projectpresave"] is not None:  # not in every build; only refreshes the stats
        execute.par.projectpresave = True

    if not save:
        return comp, None
    folder = save_folder or project.folder
    path = comp.save(os.path.join(folder, "DataNet.tox"))
    print("DataNet: component built at %s and saved to %s" % (comp.path, path))
    return comp, path


if globals().get("op") is not None and __name__ != "build_component":
    build(op("/project1") or op("/"))

"""The checks of td/selftest.py, one function per TD behaviour this project relies on.

Not run on its own: selftest.py loads it with runpy.run_path(..., init_globals=
selftest's globals), so TD's names (op, project, app, run, the operator types) and
selftest's constants and helpers (setting, repo_folder, describe, REGISTRY,
RERUN_RUNTIME, CLIENT_NAME, ...) are in scope here. A check takes the running
SelfTest and returns (status, detail), or is a generator that yields once per frame
it waits and returns the same. CHECKS_NOW and CHECKS_LIVE at the end list them.
"""

import os
import sys
import time

ROUND_TRIP_SECONDS = 10.0
QUIET_POLLS = 60  # frames of polls with nothing arriving, timed after the round trip
EXECUTE_TOGGLES = ("start", "create", "exit", "framestart", "frameend", "projectpresave")
PAREXEC_PARS = (("pars", "*"), ("custom", True), ("builtin", False), ("valuechange", True), ("onpulse", True),
                ("valueschanged", True))

COUNTER_TEXT = """import sys


def onFrameStart(frame):
    test = sys.modules.get('%s')
    if test is not None:
        test.counts['execute'] += 1
""" % REGISTRY

CREATE_TEXT = """import sys


def _log(name):
    test = sys.modules.get('%s')
    if test is not None:
        test.created.append((name, me.name))


def onCreate():
    _log('onCreate')


def create():
    _log('create')
""" % REGISTRY

PAREXEC_TEXT = """import sys


def _log(*entry):
    test = sys.modules.get('%s')
    if test is not None:
        test.parexec.append(entry)


def onValueChange(par, *rest):
    _log('value', par.name)


def onPulse(par):
    _log('pulse', par.name)


def onValuesChanged(changes):
    _log('values', [change.par.name for change in changes])
""" % REGISTRY

EXTENSION_TEXT = """import sys


class SelftestExt:
    def __init__(self, ownerComp):
        self.ownerComp = ownerComp
        self.attached_in_init = any(e is self for e in ownerComp.extensions)
        self.attached_in_init_td = None

    def onInitTD(self):
        self.attached_in_init_td = any(e is self for e in self.ownerComp.extensions)

    def onDestroyTD(self):
        test = sys.modules.get('%s')
        if test is not None:
            test.destroyed.append(id(self))

    def Hello(self):
        return 'hello'
""" % REGISTRY

RERUN_TEXT = """import sys
import types

runtime = sys.modules.get('%s')
if runtime is None:
    runtime = sys.modules['%s'] = types.ModuleType('%s')
    runtime.runs = 0
runtime.runs += 1
fresh = []
""" % (RERUN_RUNTIME, RERUN_RUNTIME, RERUN_RUNTIME)


def truthy(par):
    return bool(par.eval())


def frames(count):
    for _ in range(count):
        yield


# -- checks answered at once ----------------------------------------------------------

def check_project_folder(test):
    folder = project.folder
    if isinstance(folder, str) and folder and os.path.isdir(folder):
        return "PASS", folder
    return "FAIL", "project.folder is %r" % (folder,)


def check_op_missing(test):
    found = op("/datanet_selftest_no_such_operator/x")
    return ("PASS", "") if found is None else ("FAIL", "op() of a missing path returned %r" % (found,))


def check_create_existing_name(test):
    first = test.sandbox.create(textDAT, "dup")
    second = test.sandbox.create(textDAT, "dup")
    if first.name == "dup" and second.name != "dup" and first.valid:
        return "PASS", "the second create(textDAT, 'dup') was named %r" % second.name
    return "FAIL", "names %r and %r" % (first.name, second.name)


def check_docked_dat(test):
    chop = test.sandbox.create(scriptCHOP, "docked")
    callbacks = chop.par.callbacks.eval()
    if callbacks is None:
        return "FAIL", "create(scriptCHOP) made no callbacks DAT (par.callbacks is empty)"
    docked = [d.path for d in getattr(chop, "docked", [])]
    others = [c.name for c in test.sandbox.children if c.name.startswith("docked") and c.name not in
              ("docked", callbacks.name)]
    detail = "callbacks DAT %r, docked: %s" % (callbacks.name, [path.rsplit("/", 1)[-1] for path in docked])
    if callbacks.name == "docked_callbacks" and callbacks.path in docked and not others:
        return "PASS", detail
    return "FAIL", detail + (", also made %s" % others if others else "")


def check_delete_rows(test):
    table = test.sandbox.create(tableDAT, "rows")

    def fill():
        table.clear()
        for i in range(6):
            table.appendRow(["r%d" % i])

    def names():
        return [table[r, 0].val for r in range(table.numRows)]

    fill()
    table.deleteRows([3, 2, 1])
    descending = names()
    fill()
    try:
        table.deleteRows([1, 2])
        ascending = names()
    except Exception as error:
        ascending = describe(error)
    reading = {str(["r0", "r3", "r4", "r5"]): "indices read before the deletion",
               str(["r0", "r2", "r4", "r5"]): "indices read during the deletion (the fake's reading)"}
    detail = "deleteRows([1, 2]) left %s: %s" % (ascending, reading.get(str(ascending), "neither reading"))
    if descending == ["r0", "r4", "r5"]:
        return "PASS", "descending deletes the right rows; " + detail
    return "FAIL", "deleteRows([3, 2, 1]) left %s; %s" % (descending, detail)


def check_channels_between_cooks(test):
    seen = []

    def plan(scriptOp):
        # What DataNet.py's update_chop does: reuse the channels only when the CHOP
        # holds exactly what it wrote (count, and the last one's name by index),
        # writing each through chans(); otherwise rebuild.
        seen.append(scriptOp.numChans)
        if scriptOp.numChans == 1 and scriptOp[0].name == "a":
            for channel in scriptOp.chans():
                channel[0] = channel[0] + 1
        else:
            scriptOp.clear()
            scriptOp.numSamples = 1
            scriptOp.appendChan("a")[0] = 1

    chop = test.script_chop("kept", plan)
    chop.cook(force=True)
    chop.cook(force=True)
    value = chop["a"][0] if chop.numChans else None
    if seen == [0, 1] and value == 2.0:
        reading = "channels and values kept between cooks (the fake's default)"
    elif seen == [0, 0] and value == 1.0:
        reading = "channels gone at each cook (the fake's other reading)"
    elif seen == [0, 1] and value == 1.0:
        reading = "channels kept, values reset at each cook (neither of the fake's readings)"
    else:
        return "FAIL", "channels at the start of each cook %s, value after two cooks %r" % (seen, value)
    return "PASS", reading + "; the code checks the count and names before reusing channels"


def check_channel_writes(test):
    def plan(scriptOp):
        scriptOp.clear()
        scriptOp.numSamples = 3
        scriptOp.appendChan("a")[0] = 1.5
        scriptOp.appendChan("b").vals = [1, 2, 3]

    chop = test.script_chop("writes", plan)
    chop.cook(force=True)
    got = (chop["a"][0], list(chop["b"].vals), chop.numSamples)
    if got == (1.5, [1.0, 2.0, 3.0], 3):
        return "PASS", ""
    return "FAIL", "read back a[0], b.vals, numSamples = %r" % (got,)


def check_copy_numpy_array(test):
    try:
        import numpy
    except ImportError:
        return "UNKNOWN", "numpy is not available in this Python"
    fresh = numpy.array([[1, 2, 3], [4, 5, 6]], dtype=numpy.float32)
    after = numpy.array([[7, 8, 9]], dtype=numpy.float32)

    def plan_fresh(scriptOp):
        scriptOp.clear()
        scriptOp.copyNumpyArray(fresh)

    def plan_after(scriptOp):
        scriptOp.clear()
        scriptOp.numSamples = 3
        scriptOp.appendChan("mine")
        scriptOp.copyNumpyArray(after, baseName="v")

    chop = test.script_chop("numpyfresh", plan_fresh)
    chop.cook(force=True)
    names = [c.name for c in chop.chans()]
    mixed = test.script_chop("numpyafter", plan_after)
    mixed.cook(force=True)
    mixed_names = [c.name for c in mixed.chans()]
    detail = "names %s, %d samples; after appendChan('mine'), copyNumpyArray(1 row, baseName='v') left %s%s" % (
        names, chop.numSamples, mixed_names,
        " (the fake's reading: every channel replaced)" if mixed_names == ["v1"] else "")
    if names == ["chan1", "chan2"] and chop.numSamples == 3 and list(chop["chan2"].vals) == [4.0, 5.0, 6.0]:
        return "PASS", detail
    return "FAIL", detail


def check_pargroup(test):
    page = test.sandbox.appendCustomPage("Selftest")
    group = page.appendStr("Grouptest")
    par = group[0]
    par.val = "x"
    missing = object()
    shapes = {name: getattr(group, name, missing) for name in ("val", "readOnly", "enable")}
    detail = "append* returned a %s; %s" % (type(group).__name__, ", ".join(
        "%s is %s" % (name, "missing" if value is missing else "a " + type(value).__name__)
        for name, value in sorted(shapes.items())))
    if all(isinstance(value, tuple) for value in shapes.values()):
        detail += " (as the fake, TD 2025)"
    if par.val == "x" and par.eval() == "x" and not isinstance(par.readOnly, tuple):
        return "PASS", detail + "; group[0] is the parameter"
    return "FAIL", detail + "; group[0].val is %r" % (par.val,)


def extension_pars(comp):
    """(object, promote, name) parameter names of this build's first extension."""
    if comp.par["ext0object"] is not None:
        return "ext0object", "ext0promote", "ext0name"
    return "extension1", "promoteextension1", None


def make_extension_comp(test):
    comp = test.sandbox.create(baseCOMP, "extcomp")
    comp.create(textDAT, "SelftestExt").text = EXTENSION_TEXT
    object_par, promote_par, _ = extension_pars(comp)
    par = getattr(comp.par, object_par)
    mode = globals().get("ParMode")
    if mode is not None and hasattr(par, "mode"):
        par.mode = mode.CONSTANT
    par.val = "op('./SelftestExt').module.SelftestExt(me)"
    getattr(comp.par, promote_par).val = True
    comp.initializeExtensions()
    return comp


def check_extension_pars(test):
    comp = test.sandbox.create(baseCOMP, "extpars")
    present = [name for name in ("ext0object", "ext0promote", "ext0name", "extension1", "promoteextension1")
               if comp.par[name] is not None]
    if {"ext0object", "ext0promote", "ext0name"} <= set(present):
        return "PASS", "present: %s" % present
    if {"extension1", "promoteextension1"} <= set(present):
        return "PASS", "an older build: %s (the component build falls back to them)" % present
    return "FAIL", "present: %s" % present


def check_extension_init(test):
    comp = make_extension_comp(test)
    ext = comp.ext.SelftestExt
    promoted = comp.Hello()
    detail = "attached during __init__: %s, during onInitTD: %s, promoted Hello(): %r" % (
        ext.attached_in_init, ext.attached_in_init_td, promoted)
    if ext.attached_in_init_td and promoted == "hello":
        return "PASS", detail
    return "FAIL", detail


# -- checks that need frames (generators: each yield waits one frame) -----------------

def check_execute_toggles(test):
    dat = test.sandbox.create(executeDAT, "gated")
    defaults = {name: truthy(dat.par[name]) if dat.par[name] is not None else "missing"
                for name in EXECUTE_TOGGLES}
    dat.par.framestart = False
    dat.text = COUNTER_TEXT
    yield from frames(3)
    while_off = test.registry.counts["execute"]
    dat.par.framestart = True
    yield from frames(3)
    while_on = test.registry.counts["execute"] - while_off
    dat.par.framestart = False
    unusual = {name: value for name, value in defaults.items() if value is not False}
    detail = "new Execute DAT: %s; onFrameStart ran %d times in 3 frames with Frame Start off, %d with it on" % (
        "every toggle off" if not unusual else "not off by default: %s" % unusual, while_off, while_on)
    if while_off == 0 and while_on >= 2:
        return "PASS", detail
    return "FAIL", detail


def check_create_callback(test):
    """The component connects when its .tox is placed through its Execute DAT's
    onCreate(); a copy is a creation too (Execute DAT docs)."""
    original = test.sandbox.create(executeDAT, "creator")
    original.text = CREATE_TEXT
    original.par.create = True
    copied = test.sandbox.copy(original, name="created")
    yield from frames(2)
    names = [name for name, dat in test.registry.created if dat == copied.name]
    detail = "a copy with Create on ran %s" % (names or "nothing")
    if names == ["onCreate"]:
        return "PASS", detail
    return "FAIL", detail + " (td/component/execute.py defines onCreate)"


def check_parameter_execute(test):
    watched = test.sandbox.create(baseCOMP, "watched")
    page = watched.appendCustomPage("Watched")
    page.appendInt("Count")
    page.appendStr("Name")
    page.appendPulse("Go")
    dat = test.sandbox.create(parameterexecuteDAT, "watcher")
    defaults = {name: dat.par[name].eval() if dat.par[name] is not None else "missing"
                for name, _ in PAREXEC_PARS}
    dat.text = PAREXEC_TEXT
    dat.par.op = watched
    for name, value in PAREXEC_PARS:
        setattr(dat.par, name, value)
    events = test.registry.parexec
    watched.par.Count = 1
    watched.par.Name = "x"
    watched.par.Count = 2
    watched.par.Go.pulse()
    at_once = list(events)
    yield from frames(2)
    values = [entry for entry in events if entry[0] == "value"]
    lists = [entry[1] for entry in events if entry[0] == "values"]
    pulses = [entry for entry in events if entry[0] == "pulse"]
    detail = ("defaults %s; during the changes: %s; onValuesChanged calls: %s" % (
        defaults, at_once, lists))
    whole_list = len(lists) == 1 and set(lists[0]) == {"Count", "Name"}
    later = not any(entry[0] == "values" for entry in at_once)
    if len(values) >= 2 and pulses and whole_list and later:
        return "PASS", detail
    return "FAIL", detail


def check_cook_on_pull(test):
    dependency = tdu.Dependency(0)

    def plan(scriptOp):
        scriptOp.clear()
        scriptOp.numSamples = 1
        scriptOp.appendChan("v")[0] = dependency.val

    chop = test.script_chop("pulled", plan)
    chop.cook(force=True)
    before = test.cooks.get(chop.name, 0)
    dependency.val = 5
    yield from frames(3)
    unpulled = test.cooks.get(chop.name, 0) - before
    value = chop["v"][0]
    forced_before = test.cooks.get(chop.name, 0)
    chop.cook(force=True)
    forced = test.cooks.get(chop.name, 0) - forced_before
    detail = "a dirty Script CHOP nothing reads cooked %d times in 3 frames (the fake: 0); a read gave %r" % (
        unpulled, value)
    if value == 5 and forced == 1 and before >= 1:
        return "PASS", detail
    return "FAIL", detail + "; cook(force=True) cooked %d times" % forced


def check_module_rerun(test):
    dat = test.sandbox.create(textDAT, "rerun")
    dat.text = RERUN_TEXT
    first = dat.module
    first.fresh.append("old")
    runtime = sys.modules.get(RERUN_RUNTIME)
    dat.text = RERUN_TEXT + "\n# edited\n"
    second = dat.module
    waited = 0
    while second.fresh and waited < 3:  # the re-run may wait for a frame
        yield
        waited += 1
        second = dat.module
    detail = "after the edit: globals %s, sys.modules entry %s, runs %s" % (
        "fresh" if not second.fresh else "kept", "the same" if sys.modules.get(RERUN_RUNTIME) is runtime
        else "replaced", getattr(runtime, "runs", None))
    if not second.fresh and sys.modules.get(RERUN_RUNTIME) is runtime and runtime.runs == 2:
        return "PASS", detail + (" (after %d frames)" % waited if waited else "")
    return "FAIL", detail


def check_extension_remade(test):
    comp = test.sandbox.op("extcomp") or make_extension_comp(test)
    old = comp.ext.SelftestExt
    comp.op("SelftestExt").text = EXTENSION_TEXT + "\n# edited\n"
    new = comp.ext.SelftestExt
    waited = 0
    while new is old and waited < 3:
        yield
        waited += 1
        new = comp.ext.SelftestExt
    destroyed = id(old) in test.registry.destroyed
    detail = "after its DAT changed: %s%s, onDestroyTD of the old one %s" % (
        "a new extension" if new is not old else "the same extension",
        " (after %d frames)" % waited if waited else " at the next use", "ran" if destroyed else "did not run")
    if new is not old and destroyed and new.attached_in_init_td:
        return "PASS", detail
    return "FAIL", detail


def check_library(test):
    dat = test.sandbox.create(textDAT, "DataNet")
    with open(os.path.join(repo_folder(), "DataNet.py"), encoding="utf-8") as f:
        dat.text = f.read()
    shim = dat.module
    lib = shim.load_library(setting("DATANET_SELFTEST_LIB"))
    version = lib.dn_version().decode("utf-8", "replace")
    abi = lib.dn_abi_version()
    detail = "%s: version %s, ABI %d" % (getattr(lib, "_name", "?"), version, abi)
    if abi == shim.ABI_VERSION and os.path.isabs(getattr(lib, "_name", "")):
        return "PASS", detail
    return "FAIL", detail + " (DataNet.py speaks ABI %d)" % shim.ABI_VERSION


def check_round_trip(test):
    url = setting("DATANET_SELFTEST_URL")
    if not url:
        return "UNKNOWN", "no gateway URL: set DATANET_SELFTEST_URL in init_globals"
    dat = test.sandbox.op("DataNet")
    if dat is None:
        return "UNKNOWN", "the library check did not pass"
    shim = dat.module
    ws_url = setting("DATANET_SELFTEST_WS_URL") or ("ws" + url[len("http"):] if url.startswith("http") else url)
    channel = setting("DATANET_SELFTEST_CHANNEL", "project.demo.selftest")
    key = setting("DATANET_SELFTEST_KEY") or os.environ.get("DATANET_API_KEY") or "ak_selftest"
    token = "selftest-%d" % int(time.time() * 1000)
    received = []
    test.client = shim.DataNet(CLIENT_NAME)
    test.client.subscribe(channel, lambda channel, data, from_, timestamp: received.append(data))
    test.client.connect(key, api_url=url, ws_url=ws_url, lib_path=setting("DATANET_SELFTEST_LIB"))
    began = time.monotonic()
    published_at = None
    while time.monotonic() - began < ROUND_TRIP_SECONDS:
        yield
        test.client.poll()
        if any(isinstance(data, dict) and data.get("selftest") == token for data in received):
            milliseconds = (time.monotonic() - published_at) * 1000
            for _ in range(QUIET_POLLS):
                yield
                begin = time.perf_counter()
                test.client.poll()
                test.quiet_polls.append(time.perf_counter() - begin)
            test.close_client()
            return "PASS", "%s: connected, subscribed %s, own message back in %.0f ms" % (url, channel, milliseconds)
        if published_at is None and test.client.is_connected():
            test.client.publish(channel, {"selftest": token})
            published_at = time.monotonic()
    status = test.client.status()
    test.close_client()
    return "FAIL", "%s: no message back within %d s; state %s, last error %s" % (
        url, ROUND_TRIP_SECONDS, status.get("state"), status.get("last_error"))


CHECKS_NOW = [
    ("project.folder is the project's folder", check_project_folder),
    ("op() of a missing path returns None", check_op_missing),
    ("create() with a name in use picks the next numbered name", check_create_existing_name),
    ("create(scriptCHOP) docks a callbacks DAT named <name>_callbacks", check_docked_dat),
    ("Table DAT deleteRows (descending order)", check_delete_rows),
    ("Script CHOP channels between cooks", check_channels_between_cooks),
    ("Script CHOP appendChan(name)[0] = v and Channel.vals", check_channel_writes),
    ("Script CHOP copyNumpyArray channel names", check_copy_numpy_array),
    ("Page.append*() returns a ParGroup; [0] is the parameter", check_pargroup),
    ("extension parameters ext0object / ext0promote / ext0name", check_extension_pars),
    ("extension: onInitTD once attached, capitalised members promoted", check_extension_init),
    ("DataNet library loaded by full path, ABI matches DataNet.py", check_library),
]
CHECKS_LIVE = [
    ("Execute DAT callbacks run only while their toggle is on", check_execute_toggles),
    ("Execute DAT onCreate() runs for a copy with Create on", check_create_callback),
    ("Parameter Execute DAT: onValueChange, onPulse, onValuesChanged at frame end", check_parameter_execute),
    ("Script CHOP: a dirty one cooks when read or forced", check_cook_on_pull),
    ("Text DAT module re-run after a text edit: fresh globals, same sys.modules", check_module_rerun),
    ("extension made again when its DAT changes, onDestroyTD on the old one", check_extension_remade),
    ("connect / subscribe / publish / receive round trip", check_round_trip),
]

"""Tests of the TouchDesigner fake (tests/tdfake): the rules other tests rely on."""

import ctypes
import json
import os
import sys
import textwrap
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tdfake import TD, TDError, ThreadViolation  # noqa: E402


def code(text):
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def td(tmp_path):
    return TD(project_folder=str(tmp_path), project_name="demo")


@pytest.fixture
def comp(td):
    return td.root.create("baseCOMP", "project1")


EXECUTE_TOGGLES = ("start", "create", "exit", "framestart", "frameend", "projectpresave", "projectpostsave")


def execute_dat(comp, name, text):
    """An Execute DAT with every callback toggle on, as a build script turns them on."""
    dat = comp.create("executeDAT", name)
    dat.text = code(text)
    for toggle in EXECUTE_TOGGLES:
        setattr(dat.par, toggle, True)
    return dat


# ----------------------------------------------------------------------------- process
def test_project_and_app_facts(tmp_path):
    td = TD(project_folder=str(tmp_path), project_name="demo")
    assert td.project.folder == str(tmp_path) and td.project.name == "demo"
    assert (td.app.version, td.app.build, td.app.osName) == ("2023", "11600", "Windows")
    other = TD(app_version="2025", app_build="30000", os_name="macOS")
    assert (other.app.version, other.app.build, other.app.osName) == ("2025", "30000", "macOS")
    assert td.frame == 1 and td.root.path == "/" and td.op("/") is td.root


def test_op_lookup_never_raises(td, comp):
    assert td.op("/project1") is comp
    assert td.op("/nope") is None and td.op("/project1/x/y") is None
    assert td.op(None) is None and td.op(42) is None
    assert td.op("/..") is None


# ------------------------------------------------------------------------------ paths
def test_relative_paths_parent_and_comp_lookup(td, comp):
    inner = comp.create("baseCOMP", "inner")
    dat = inner.create("textDAT", "text1")
    table = inner.create("tableDAT", "table1")
    sibling = comp.create("tableDAT", "shared")
    assert dat.path == "/project1/inner/text1"
    assert dat.op("table1") is table                 # a DAT looks up from its parent COMP
    assert dat.op("../shared") is sibling
    assert dat.op("./table1") is table
    assert inner.op("text1") is dat                  # a COMP looks up from itself
    assert inner.op("..") is comp and inner.op("/project1/shared") is sibling
    assert dat.op("missing") is None
    assert dat.parent() is inner and dat.parent(2) is comp and dat.parent(3) is td.root
    assert td.root.parent() is None


def test_global_op_and_parent_in_dat_code(td, comp):
    comp.create("tableDAT", "table1")
    dat = comp.create("textDAT", "script")
    dat.text = code("""
        found = op('table1')
        absolute = op('/project1/table1')
        missing = op('nothing')
        here = parent()
        top = parent(2)
    """)
    module = dat.module
    assert module.found is comp.op("table1") and module.absolute is module.found
    assert module.missing is None and module.here is comp and module.top is td.root


def test_operator_types_names_and_creation(td, comp):
    text = comp.create(td.textDAT, "byClass")
    assert (text.type, text.OPType, text.family) == ("text", "textDAT", "DAT")
    assert text.isDAT and not text.isCHOP and not text.isCOMP
    chop = comp.create("scriptCHOP")
    assert chop.name == "script1" and chop.family == "CHOP" and chop.isCHOP
    assert comp.create("containerCOMP", "c").isCOMP
    for type_name in ("tableDAT", "executeDAT", "parameterexecuteDAT", "datexecuteDAT",
                      "constantCHOP", "nullCHOP"):
        assert comp.create(type_name).OPType == type_name
    with pytest.raises(TDError):
        comp.create("textDAT", "bad name")
    with pytest.raises(TDError):
        comp.create("movieTOP", "m")
    assert [c.name for c in comp.children][:3] == ["byClass", "script1", "script1_callbacks"]
    assert comp.findChildren(type="tableDAT")[0].OPType == "tableDAT"
    assert [c.name for c in comp.findChildren(name="by*")] == ["byClass"]
    text.nodeX = 200.7
    text.comment = "note"
    assert text.nodeX == 200 and text.comment == "note"
    with pytest.raises(AttributeError):
        text.nmae = "typo"                           # TD objects have no free attributes


def test_create_with_a_name_in_use_picks_the_next_numbered_name(comp):
    first = comp.create("textDAT", "values")
    assert comp.create("textDAT", "values").name == "values1"
    assert comp.create("tableDAT", "values").name == "values2"
    assert comp.create("textDAT", "text1").name == "text1"
    assert comp.create("textDAT", "text1").name == "text2"
    assert comp.op("values") is first and first.OPType == "textDAT"


def test_script_chop_create_docks_its_callbacks_dat(td, comp):
    chop = comp.create("scriptCHOP", "values")
    callbacks = chop.par.callbacks.eval()
    assert callbacks is comp.op("values_callbacks") and callbacks.OPType == "textDAT"
    assert chop.docked == [callbacks] and callbacks.dock is chop
    assert "def onCook(scriptOp)" in callbacks.text
    assert sorted(c.name for c in comp.children) == ["values", "values_callbacks"]
    # A DAT made beforehand under the docked DAT's name pushes it to the next name.
    comp.create("textDAT", "info_callbacks")
    info = comp.create("scriptCHOP", "info")
    assert info.par.callbacks.eval().name == "info_callbacks1"
    chop.destroy()
    assert not callbacks.valid and comp.op("values_callbacks") is None


def test_destroyed_op_refuses_use(td, comp):
    inner = comp.create("baseCOMP", "inner")
    dat = inner.create("textDAT", "t")
    par = comp.appendCustomPage("P").appendStr("Name")[0]
    inner.destroy()
    assert not inner.valid and not dat.valid
    assert td.op("/project1/inner") is None
    with pytest.raises(TDError):
        dat.text
    with pytest.raises(TDError):
        inner.children
    assert "deleted" in repr(dat)
    comp.destroy()
    with pytest.raises(TDError):
        par.val


def test_script_errors(comp):
    comp.addScriptError("first")
    comp.addScriptError("second")
    assert comp.scriptErrors() == "first\nsecond" and comp.script_errors == ["first", "second"]
    comp.clearScriptErrors()
    assert comp.scriptErrors() == ""


# ----------------------------------------------------------------------------- modules
def test_module_cached_until_text_changes_then_fresh_namespace(td, comp):
    dat = comp.create("textDAT", "DataNet")
    dat.text = code("""
        counter = 0
        def bump():
            global counter
            counter += 1
            return counter
    """)
    module = dat.module
    assert module.__name__ == "DataNet" and module.me is dat
    assert module.bump() == 1 and dat.module.bump() == 2
    assert dat.module is module and dat.module_runs == 1
    dat.text = dat.text + "\nextra = True\n"
    assert dat.module_runs == 1                      # not before the next access
    fresh = dat.module
    assert fresh is not module and fresh.counter == 0 and fresh.extra
    assert dat.module_runs == 2


def test_mod_and_import_resolve_text_dats_up_the_hierarchy(td, comp):
    lib = comp.create("textDAT", "Helpers")
    lib.text = "VALUE = 'helpers'\n"
    inner = comp.create("baseCOMP", "inner")
    user = inner.create("textDAT", "user")
    user.text = code("""
        import Helpers
        import json, td
        from Helpers import VALUE
        via_mod = mod.Helpers.VALUE
        via_path = mod('../Helpers').VALUE
        td_me = td.me
        def later():
            import Helpers
            return Helpers.VALUE
    """)
    module = user.module
    assert module.Helpers is lib.module and module.VALUE == "helpers"
    assert module.via_mod == "helpers" and module.via_path == "helpers"
    assert module.td_me is user and module.json.dumps(1) == "1"
    lib.text = "VALUE = 'changed'\n"
    assert module.later() == "changed"               # imports always see the re-run module
    assert "Helpers" not in sys.modules


def test_module_errors_propagate_to_the_importer(comp):
    broken = comp.create("textDAT", "Broken")
    broken.text = "raise ValueError('bad module')\n"
    with pytest.raises(ValueError):
        broken.module
    broken.text = "ok = True\n"
    assert broken.module.ok


def test_dat_run_executes_text_with_args(td, comp):
    dat = comp.create("textDAT", "script")
    dat.text = "me.store('got', args)\n"
    dat.run(1, "two")
    assert dat.fetch("got") == (1, "two")


# ------------------------------------------------------------------------------ tables
def test_table_append_padding_and_lookup(comp):
    t = comp.create("tableDAT", "table1")
    assert t.appendRow(["address", "value", "time"]) == 0
    assert t.appendRow(["/a", 1.5]) == 1              # stringified, padded
    assert t.numRows == 2 and t.numCols == 3
    assert t[1, 2].val == "" and t[1, 1].val == "1.5"
    assert t[1, "value"].val == "1.5" and t["/a", "time"].val == ""
    assert t[5, 0] is None and t[0, 9] is None and t[1, "nope"] is None and t[-1, 0] is None
    t.appendRow(["/b", 2, 3, "extra"])                # a wider row pads every other row
    assert t.numCols == 4 and t[0, 3].val == ""
    t[1, "time"] = 42
    assert t[1, 2].val == "42" and t[1, 2].row == 1 and t[1, 2].col == 2
    assert t[1, 0] == "/a" and str(t[1, 0]) == "/a" and int(t[1, "time"]) == 42
    with pytest.raises(TDError):
        t[9, 0] = "x"
    assert [c.val for c in t.row(1)] == ["/a", "1.5", "42", ""]
    assert [c.val for c in t.col("address")] == ["address", "/a", "/b"]
    assert len(t.rows()) == 3
    assert t.text.splitlines()[1] == "/a\t1.5\t42\t"


def test_table_delete_shifts_rows_and_batches_are_counted(comp):
    t = comp.create("tableDAT", "log")
    t.appendRow(["header"])
    t.appendRows([[f"row{i}"] for i in range(1, 6)])
    cell = t[5, 0]
    t.deleteRow(1)
    assert [c.val for c in t.col(0)] == ["header", "row2", "row3", "row4", "row5"]
    with pytest.raises(TDError):
        cell.val                                      # row 5 no longer exists
    t.deleteRows([2, 1])                              # descending: right under either reading
    assert [c.val for c in t.col(0)] == ["header", "row4", "row5"]
    t.deleteRows([2, 1])
    assert t.numRows == 1
    assert t.op_counts == {"appendRow": 1, "appendRows": 1, "deleteRow": 1, "deleteRows": 2}
    with pytest.raises(TDError):
        t.deleteRow(7)


def test_delete_rows_reads_each_index_during_the_deletion(comp):
    """Undocumented in TD: the fake reads each index against the table as it is
    when that row goes, so an ascending list deletes every other row."""
    t = comp.create("tableDAT", "log")
    t.appendRows([[f"row{i}"] for i in range(6)])
    t.deleteRows([1, 2, 3])
    assert [c.val for c in t.col(0)] == ["row0", "row2", "row4"]
    with pytest.raises(TDError):
        t.deleteRows([1, 2, 3])                       # row 3 is gone by the time it is read
    t.deleteRows([])
    assert t.op_counts["deleteRows"] == 2


def test_table_clear_insert_replace_setsize(comp):
    t = comp.create("tableDAT", "t")
    t.appendRows([["h1", "h2"], ["a", "b"], ["c", "d"]])
    t.insertRow(["x"], 1)
    t.replaceRow(2, ["A", "B"])
    assert [c.val for c in t.col(0)] == ["h1", "x", "A", "c"]
    t.clear(keepFirstRow=True)
    assert t.numRows == 1 and t[0, 1].val == "h2"
    t.clear()
    assert (t.numRows, t.numCols) == (0, 0)
    t.setSize(2, 3)
    assert (t.numRows, t.numCols) == (2, 3) and t[1, 2].val == ""
    t.text = "a\tb\nc\td\n"
    assert t[1, 1].val == "d"


# -------------------------------------------------------------------------- execute DAT
def test_frame_order_and_execute_callbacks(td, comp):
    log = []
    comp.store("log", log)
    chop = comp.create("scriptCHOP", "out")
    chop.viewed = True                               # an open viewer pulls it every frame
    chop.par.callbacks.eval().text = "def onCook(scriptOp):\n    parent().fetch('log').append('cook')\n"
    table = comp.create("tableDAT", "t")
    watcher = comp.create("datexecuteDAT", "watch")
    watcher.text = "def onTableChange(dat, *rest):\n    parent().fetch('log').append('table')\n"
    watcher.par.dat = table
    execute_dat(comp, "exec1", """
        def onStart():
            parent().fetch('log').append('start')
        def onFrameStart(frame):
            log = parent().fetch('log')
            log.append(('start', frame))
            op('t').appendRow([frame])
            run("parent().fetch('log').append('job')")
        def onFrameEnd(frame):
            parent().fetch('log').append(('end', frame))
        def onProjectPreSave():
            parent().fetch('log').append('presave')
        def onProjectPostSave():
            parent().fetch('log').append('postsave')
        def onExit():
            parent().fetch('log').append('exit')
    """)
    td.start()
    td.run_frames(2)
    td.save_project()
    td.exit()
    assert log == ["start",
                   ("start", 1), "cook", "table", ("end", 1),
                   "job", ("start", 2), "table", ("end", 2),
                   "presave", "postsave", "exit"]
    assert td.errors == [] and td.frame == 3 and len(td.frame_costs) == 2
    with pytest.raises(TDError):
        td.run_frames(1)


def test_execute_dat_callbacks_run_only_while_their_toggle_is_on(td, comp):
    seen = comp.store("seen", [])
    dat = comp.create("executeDAT", "exec1")
    dat.text = code("""
        def onStart():
            parent().fetch('seen').append('start')
        def onCreate():
            parent().fetch('seen').append('create')
        def onFrameStart(frame):
            parent().fetch('seen').append(('frame', frame))
        def onFrameEnd(frame):
            parent().fetch('seen').append(('end', frame))
        def onProjectPreSave():
            parent().fetch('seen').append('presave')
        def onExit():
            parent().fetch('seen').append('exit')
    """)
    assert not any(getattr(dat.par, toggle).eval() for toggle in EXECUTE_TOGGLES), "a new Execute DAT: all off"
    td.start()
    td.fire_create(comp)
    td.run_frames(2)
    td.save_project()
    assert seen == []
    dat.par.framestart = True
    td.run_frames(1)
    dat.par.framestart = False
    dat.par.frameend = True
    dat.par.start = dat.par.create = dat.par.projectpresave = True
    td.run_frames(1)
    td.start()
    td.fire_create(comp)
    td.save_project()
    td.exit()
    assert seen == [("frame", 3), ("end", 4), "start", "create", "presave"]


def test_copy_is_a_creation_for_an_execute_dat(td, comp):
    created = comp.store("created", [])
    dat = comp.create("executeDAT", "exec1")
    dat.text = "def onCreate():\n    parent().fetch('created').append(me.name)\n"
    table = comp.create("tableDAT", "t")
    table.appendRow(["a", "b"])
    assert comp.copy(table).name == "t1" and comp.op("t1")[0, 1].val == "b"
    assert comp.copy(dat).text == dat.text and created == []       # Create off: no onCreate
    dat.par.create = True
    copied = comp.copy(dat, name="placed")
    assert copied.par.create.eval() and created == ["placed"]
    with pytest.raises(TDError):
        td.root.copy(comp)                                          # the fake copies no COMPs


def test_execute_dat_active_toggle_and_text_swap(td, comp):
    seen = comp.store("seen", [])
    dat = execute_dat(comp, "exec1", """
        def onFrameStart(frame):
            parent().fetch('seen').append(('old', frame))
    """)
    td.run_frames(1)
    dat.par.active = False
    td.run_frames(1)
    dat.par.active = True
    dat.text = "def onFrameStart(frame):\n    parent().fetch('seen').append(('new', frame))\n"
    td.run_frames(1)
    assert seen == [("old", 1), ("new", 3)]


def test_fire_create_calls_oncreate(td, comp):
    execute_dat(comp, "exec1", "def onCreate():\n    parent().store('created', True)\n")
    td.fire_create(comp)
    assert comp.fetch("created") is True


def test_exceptions_in_callbacks_are_recorded_and_frame_continues(td, comp):
    execute_dat(comp, "bad", """
        def onFrameStart(frame):
            raise RuntimeError('boom %d' % frame)
    """)
    execute_dat(comp, "good", """
        def onFrameStart(frame):
            parent().store('reached', frame)
        def onFrameEnd(frame):
            parent().store('ended', frame)
    """)
    td.run_frames(2)
    assert comp.fetch("reached") == 2 and comp.fetch("ended") == 2
    assert [(path, name) for path, name, _ in td.errors] == [
        ("/project1/bad", "onFrameStart"), ("/project1/bad", "onFrameStart")]
    assert "RuntimeError: boom 1" in td.errors[0][2]
    assert '/project1/bad", line 2' in td.errors[0][2]
    assert any("RuntimeError: boom 2" in line for line in td.textport)


def test_syntax_error_in_callbacks_reported_once_per_text(td, comp):
    dat = execute_dat(comp, "exec1", "def onFrameStart(frame)\n    pass\n")
    td.run_frames(3)
    assert [name for _, name, _ in td.errors] == ["<module>"]
    dat.text = "def onFrameStart(frame):\n    pass\n"
    td.run_frames(1)
    assert len(td.errors) == 1


# ---------------------------------------------------------------------- parameter execute
def parameter_watcher(comp, text):
    """A Parameter Execute DAT watching comp's custom parameters, every toggle set."""
    watcher = comp.create("parameterexecuteDAT", "parexec")
    watcher.text = code(text)
    watcher.par.op = comp
    watcher.par.pars = "*"
    watcher.par.custom = True
    watcher.par.builtin = False
    watcher.par.valuechange = True
    watcher.par.onpulse = True
    watcher.par.valueschanged = False
    return watcher


def test_parameter_execute_value_change_and_pulse(td, comp):
    page = comp.appendCustomPage("DataNet")
    page.appendStr("Url", label="URL")
    page.appendToggle("Active")
    page.appendPulse("Connect")
    calls = comp.store("calls", [])
    parameter_watcher(comp, """
        def onValueChange(par, prev):
            parent().fetch('calls').append((par.name, par.eval(), prev))
        def onPulse(par):
            parent().fetch('calls').append(('pulse', par.name))
    """)
    comp.par.Url = "ws://a"
    comp.par.Url.val = "ws://b"
    comp.par.Url = "ws://b"                          # unchanged: no callback
    comp.par.Active = True
    comp.par.Connect.pulse()
    assert calls == [("Url", "ws://a", ""), ("Url", "ws://b", "ws://a"),
                     ("Active", True, False), ("pulse", "Connect")]
    assert td.errors == []


def test_parameter_execute_wrong_signature_is_an_error(td, comp):
    comp.appendCustomPage("P").appendInt("Count")
    parameter_watcher(comp, "def onValueChange(par):\n    pass\n")
    comp.par.Count = 3
    assert len(td.errors) == 1 and "TypeError" in td.errors[0][2]


def test_parameter_execute_pattern_and_toggles(td, comp):
    page = comp.appendCustomPage("P")
    page.appendInt("Count")
    page.appendInt("Other")
    watcher = parameter_watcher(comp, """
        def onValueChange(par, *rest):
            parent().fetch('names').append(par.name)
    """)
    names = comp.store("names", [])
    watcher.par.pars = "Cou*"
    comp.par.Other = 1
    comp.par.Count = 1
    watcher.par.valuechange = False
    comp.par.Count = 2
    assert names == ["Count"]


def test_parameter_execute_defaults_rely_on_nothing(td, comp):
    """TD does not document them: the fake's defaults fire nothing for custom pars."""
    page = comp.appendCustomPage("P")
    page.appendInt("Count")
    page.appendPulse("Go")
    watcher = comp.create("parameterexecuteDAT", "parexec")
    watcher.text = code("""
        def onValueChange(par, *rest):
            parent().fetch('calls').append(par.name)
        def onPulse(par):
            parent().fetch('calls').append('pulse')
        def onValuesChanged(changes):
            parent().fetch('calls').append('changes')
    """)
    watcher.par.op = comp
    calls = comp.store("calls", [])
    comp.par.Count = 1
    comp.par.Go.pulse()
    td.run_frames(1)
    assert calls == []
    assert (watcher.par.pars.eval(), watcher.par.custom.eval(), watcher.par.builtin.eval(),
            watcher.par.valuechange.eval(), watcher.par.onpulse.eval(), watcher.par.valueschanged.eval()) == (
        "", False, True, False, False, True)


def test_on_values_changed_runs_at_frame_end_with_the_whole_list(td, comp):
    page = comp.appendCustomPage("P")
    page.appendInt("Count")
    page.appendStr("Name")
    watcher = parameter_watcher(comp, """
        def onValueChange(par, *rest):
            parent().fetch('log').append(('value', par.name))
        def onValuesChanged(changes):
            parent().fetch('log').append(('values', [(c.par.name, c.prev) for c in changes]))
        def onFrameEnd(frame):
            pass
    """)
    watcher.par.valueschanged = True
    log = comp.store("log", [])
    execute_dat(comp, "exec1", """
        def onFrameStart(frame):
            if frame == 1:
                parent().par.Count = 5
                parent().par.Name = 'x'
                parent().par.Count = 6
        def onFrameEnd(frame):
            parent().fetch('log').append(('frame end', frame))
    """)
    td.run_frames(2)
    assert log == [("value", "Count"), ("value", "Name"), ("value", "Count"), ("frame end", 1),
                   ("values", [("Count", 0), ("Name", ""), ("Count", 5)]), ("frame end", 2)]


# ---------------------------------------------------------------------- custom parameters
def test_custom_parameter_rules(comp):
    page = comp.appendCustomPage("DataNet")
    for good in ("Apikey", "Status", "Autoconnect", "Url2"):
        page.appendStr(good)
    for bad in ("apikey", "ApiKey", "API", "Api_key", "1st", ""):
        with pytest.raises(TDError):
            page.appendStr(bad)
    with pytest.raises(TDError):
        comp.appendCustomPage("Other").appendToggle("Status")   # duplicate on the same COMP
    group = page.appendStr("Status", replace=True)
    assert group[0] is comp.par.Status
    assert [p.name for p in comp.customPars] == ["Apikey", "Autoconnect", "Url2", "Status"]
    assert [p.name for p in comp.customPages] == ["DataNet", "Other"]
    with pytest.raises(AttributeError):
        comp.par.Missing
    with pytest.raises(AttributeError):
        comp.par.Missing = 1
    with pytest.raises(TDError):
        comp.create("textDAT", "t").appendCustomPage("x")  # only COMPs and script ops


def test_parameter_values_styles_and_conversions(comp):
    page = comp.appendCustomPage("P")
    status = page.appendStr("Status")
    status.val = ("idle",)
    assert status.val == ("idle",) and status.eval() == ("idle",) and status[0].eval() == "idle"
    assert len(status) == 1 and status.readOnly == (False,) and status.enable == (True,)
    for scalar in ("idle", None, ("a", "b")):
        with pytest.raises(TDError):
            status.val = scalar                      # a ParGroup's val is a tuple (TD 2025)
    status.readOnly = True                           # one bool sets every parameter of the group
    assert status.readOnly == (True,) and bool((False,)), "a tuple is truthy: read group[0]"
    status.readOnly = (False,)
    par = status[0]
    par.readOnly = True
    par.val = "connected"                            # Python may set read-only pars, as in TD
    assert par == "connected" and str(par) == "connected" and par.readOnly
    count = page.appendInt("Count")[0]
    count.val = "7"
    assert int(count) == 7 and count.eval() == 7 and count > 3
    rate = page.appendFloat("Rate")[0]
    rate.val = 2
    assert float(rate) == 2.0 and rate.isNumber
    flag = page.appendToggle("Enabled")[0]
    assert not flag and flag.isToggle
    flag.val = 1
    assert bool(flag) is True and flag.val is True
    mode = page.appendMenu("Mode")[0]
    mode.menuNames = ["json", "raw"]
    mode.menuLabels = ["JSON", "Raw"]
    assert mode.val == "json"
    mode.val = "raw"
    assert mode.menuIndex == 1
    with pytest.raises(TDError):
        mode.val = "xml"
    pulse = page.appendPulse("Reset")[0]
    assert pulse.isPulse and pulse.style == "Pulse"
    with pytest.raises(TDError):
        count.pulse()
    with pytest.raises(TDError):
        count.val = "seven"
    header = page.appendHeader("Section")[0]
    with pytest.raises(TDError):
        header.val = "x"
    assert page.appendFile("Library")[0].style == "File"
    assert par.page is page and par.owner is comp and par.label == "Status" and par.enable
    assert par.default == "" and par.isString and par.isCustom


def test_builtin_op_reference_pars(comp):
    table = comp.create("tableDAT", "t")
    watcher = comp.create("datexecuteDAT", "w")
    watcher.par.dat = "t"
    assert watcher.par.dat.val == "t" and watcher.par.dat.eval() is table
    watcher.par.dat = table
    assert watcher.par.dat.val == "/project1/t" and watcher.par.dat.eval() is table
    assert watcher.par.active.eval() is True and not watcher.par.active.isCustom


# ---------------------------------------------------------------------------- Script CHOP
def script_chop(comp, callbacks_text, name="out"):
    """A Script CHOP with callbacks_text in the callbacks DAT create() docked to it."""
    chop = comp.create("scriptCHOP", name)
    cb = chop.par.callbacks.eval()
    cb.text = code(callbacks_text)
    return chop, cb


def test_script_chop_cook_rules(td, comp):
    state = comp.create("textDAT", "state")
    state.text = "dep = tdu.Dependency(0)\n"
    chop, cb = script_chop(comp, """
        def onCook(scriptOp):
            scriptOp.clear()
            scriptOp.appendChan('value')[0] = op('state').module.dep.val
    """)
    dep = state.module.dep
    td.run_frames(3)
    assert chop.cook_count == 0                      # dirty, but nothing pulls it
    assert chop["value"][0] == 0 and chop.cook_count == 1   # a read pulls: one cook
    td.run_frames(3)
    chop.numChans
    assert chop.cook_count == 1                      # clean: no cook
    chop.cook()
    assert chop.cook_count == 1
    chop.cook(force=True)
    assert chop.cook_count == 2
    dep.val = 5
    td.run_frames(2)
    assert chop.cook_count == 2                      # marked dirty, still not pulled
    assert chop["value"][0] == 5 and chop.cook_count == 3
    dep.val = 5                                      # same value still dirties, as in TD
    chop.cook()
    assert chop.cook_count == 4
    dep.peekVal
    cb.text = cb.text + "\n"                         # callbacks text change dirties
    chop.numSamples
    assert chop.cook_count == 5
    chop.viewed = True                               # an open viewer pulls every frame
    dep.val = 6
    td.run_frames(2)
    assert chop.cook_count == 6                      # once dirty, once cooked
    chop.par.cookeveryframe = True
    td.run_frames(2)
    assert chop.cook_count == 8                      # one per frame
    assert td.errors == []


def test_dependency_read_outside_cook_does_not_subscribe(td, comp):
    dep = td.tdu.Dependency(1)
    chop, _ = script_chop(comp, "def onCook(scriptOp):\n    pass\n")
    chop.cook()
    dep.val
    dep.val = 2
    chop.cook()
    assert chop.cook_count == 1


@pytest.mark.parametrize("reading", ["kept", "cleared"])
def test_script_chop_channels_between_cooks_follow_the_switch(tmp_path, reading):
    td = TD(project_folder=str(tmp_path), script_chop_channels=reading)
    chop, _ = script_chop(td.root, """
        def onCook(scriptOp):
            if scriptOp.numChans == 0:
                scriptOp.appendChan('level')
            scriptOp['level'][0] = scriptOp['level'][0] + 1
    """)
    chop.cook(force=True)
    chop.cook(force=True)
    assert chop["level"][0] == (2.0 if reading == "kept" else 1.0)
    with pytest.raises(TDError):
        TD(script_chop_channels="sometimes")


def test_script_chop_channels_and_validation(td, comp):
    chop, cb = script_chop(comp, """
        def onSetupParameters(scriptOp):
            page = scriptOp.appendCustomPage('Custom')
            page.appendPulse('Reset')
        def onPulse(par):
            parent().store('pulsed', par.name)
        def onCook(scriptOp):
            scriptOp.clear()
            scriptOp.rate = 30
            scriptOp.numSamples = 3
            a = scriptOp.appendChan('a')
            a.vals = [1, 2, 3]
            b = scriptOp.appendChan('sensor_temp2')
            b[2] = 9
            problems = []
            for bad in ('', '1x', 'a b', 'x/y', 'a-b', 'a.b', 'a'):
                try:
                    scriptOp.appendChan(bad)
                except tdError:
                    problems.append(bad)
            parent().store('problems', problems)
            try:
                a.vals = [1, 2]
            except tdError:
                parent().store('short_vals_refused', True)
            scriptOp.numSamples = 4
    """)
    chop.cook(force=True)
    assert td.errors == []
    assert comp.fetch("problems") == ["", "1x", "a b", "x/y", "a-b", "a.b", "a"]
    assert comp.fetch("short_vals_refused")
    assert chop.numChans == 2 and chop.numSamples == 4 and chop.rate == 30
    assert chop["a"].vals == [1.0, 2.0, 3.0, 0.0] and chop.chan(1)[2] == 9.0
    assert [c.name for c in chop.chans("s*")] == ["sensor_temp2"]
    assert chop.chan("missing") is None and chop["missing"] is None and chop.chan(5) is None
    assert len(chop["a"]) == 4 and chop["a"].index == 0 and chop["a"].eval() == 1.0
    assert chop.warnings == []
    chop.par.Reset.pulse()
    assert comp.fetch("pulsed") == "Reset"
    setup_runs = [c for c in td.callback_costs if c[2] == "onSetupParameters"]
    assert len(setup_runs) == 2, "once for the docked DAT's template, once for the new text"


def test_script_chop_writes_outside_cook_are_refused(comp):
    chop, _ = script_chop(comp, "def onCook(scriptOp):\n    scriptOp.appendChan('x')\n")
    chop.cook(force=True)
    channel = chop["x"]
    for attempt in (lambda: chop.appendChan("y"), lambda: chop.clear(),
                    lambda: setattr(chop, "numSamples", 5), lambda: setattr(chop, "rate", 10),
                    lambda: channel.__setitem__(0, 1.0),
                    lambda: setattr(channel, "vals", [1.0])):
        with pytest.raises(TDError):
            attempt()
    assert channel[0] == 0.0


def test_script_chop_rate_after_length_warning_and_old_cook_name(td, comp):
    chop, _ = script_chop(comp, """
        def cook(scriptOp):
            scriptOp.numSamples = 2
            scriptOp.rate = 30
    """)
    chop.cook(force=True)
    assert chop.warnings == ["rate_set_after_length"] and td.errors == []


def test_invalid_channel_name_in_cook_is_recorded(td, comp):
    chop, _ = script_chop(comp, "def onCook(scriptOp):\n    scriptOp.appendChan('bad name')\n")
    chop.cook()
    assert len(td.errors) == 1 and "TDError" in td.errors[0][2]
    assert td.errors[0][:2] == ("/project1/out", "onCook")


def test_copy_numpy_array_replaces_every_channel(td, comp):
    numpy = pytest.importorskip("numpy")
    comp.store("array", None)
    comp.store("row", None)
    chop, _ = script_chop(comp, """
        def onCook(scriptOp):
            scriptOp.clear()
            scriptOp.appendChan('mine')
            scriptOp.copyNumpyArray(parent().fetch('array'), baseName='v')
            scriptOp['v1'].copyNumpyArray(parent().fetch('row'))
    """)
    comp.storage["array"] = numpy.array([[1, 2], [3, 4]], dtype=numpy.float32)
    comp.storage["row"] = numpy.array([6, 8], dtype=numpy.float32)
    chop.cook(force=True)
    assert td.errors == []
    assert [ch.name for ch in chop.chans()] == ["v1", "v2"], "the name appended before is gone"
    assert chop["v1"].vals == [6.0, 8.0] and chop["v2"].vals == [3.0, 4.0]
    comp.storage["row"] = numpy.array([6, 8, 9], dtype=numpy.float32)
    chop.cook(force=True)                            # a channel copy must match the CHOP's length
    assert len(td.errors) == 1 and "copyNumpyArray" in td.errors[0][2]
    td.errors.clear()


def test_constant_and_null_chops(td, comp):
    const = comp.create("constantCHOP", "const1")
    const.par.name0 = "level"
    const.par.value0 = 0.5
    const.par.const1name = "speed"
    assert [c.name for c in const.chans()] == ["level", "speed"]
    assert const["level"].eval() == 0.5 and const["level"][0] == 0.5 and float(const["speed"]) == 0
    with pytest.raises(TDError):
        const["level"][0] = 1.0
    null = comp.create("nullCHOP", "null1")
    null.set_channels({"x": [1, 2], "y": [3, 4]})
    assert null.numChans == 2 and null.numSamples == 2 and null["y"].vals == [3.0, 4.0]


# ----------------------------------------------------------------------------- storage
def test_store_refuses_ctypes_and_fetch_rules(td, comp):
    with pytest.raises(TDError):
        comp.store("handle", ctypes.c_void_p(1))
    with pytest.raises(TDError):
        comp.store("lib", ctypes.CDLL(None))
    assert "handle" not in comp.storage
    comp.store("config", {"url": "ws://x"})
    inner = comp.create("baseCOMP", "inner")
    assert inner.fetch("config") == {"url": "ws://x"}             # searches parents
    assert inner.fetch("config", None, search=False) is None
    with pytest.raises(KeyError):
        inner.fetch("missing")
    assert inner.fetch("missing", 3, storeDefault=True) == 3 and inner.storage == {"missing": 3}
    comp.unstore("conf*")
    assert comp.storage == {}


def test_save_project_reports_storage_that_became_unpicklable(td, comp):
    bag = comp.store("bag", [])
    bag.append(ctypes.c_void_p(3))                   # mutated after store(): caught at save
    td.save_project()
    assert len(td.errors) == 1 and "bag" in td.errors[0][1]


def test_comp_save_writes_json_description(td, comp, tmp_path):
    page = comp.appendCustomPage("DataNet")
    page.appendStr("Url")[0].val = "ws://x"
    status = page.appendStr("Status")[0]
    status.readOnly = True
    comp.create("textDAT", "DataNet").text = "x = 1\n"
    table = comp.create("tableDAT", "log")
    table.appendRow(["a", "b"])
    comp.store("settings", {"k": 1})
    target = str(tmp_path / "DataNet.tox")
    assert comp.save(target) == target
    saved = json.loads(open(target).read())
    assert saved["type"] == "baseCOMP" and saved["name"] == "project1"
    assert {"page": "DataNet", "name": "Status", "label": "Status", "style": "Str", "value": "",
            "default": "", "readOnly": True} in saved["customPars"]
    children = {c["name"]: c for c in saved["children"]}
    assert children["DataNet"]["text"] == "x = 1\n" and children["log"]["table"] == [["a", "b"]]
    assert saved["storage"] == ["settings"]
    with pytest.raises(TDError):
        comp.save(str(tmp_path / "missing-dir" / "x.tox"))


# ------------------------------------------------------------------------------ run()
def test_run_delay_frames_timing(td, comp):
    ran = comp.store("ran", [])
    execute_dat(comp, "exec1", """
        def onFrameStart(frame):
            if frame == 1:
                run("parent().fetch('ran').append(('two', absTime.frame))", delayFrames=2)
                run(lambda tag: parent().fetch('ran').append((tag, absTime.frame)), 'zero')
                run("parent().fetch('ran').append((args[0], absTime.frame))", 'args', delayFrames=1)
                killed = run("parent().fetch('ran').append('killed')", delayFrames=1)
                killed.kill()
    """)
    td.run_frames(4)
    assert ran == [("zero", 2), ("args", 2), ("two", 3)]
    td.run("parent().store('between', absTime.frame)", fromOP=comp.op("exec1"))
    td.run_frames(1)
    assert comp.fetch("between") == 5 and td.errors == []


# ------------------------------------------------------------------------------ threads
def test_thread_violations_raise_and_are_counted(td, comp):
    table = comp.create("tableDAT", "t")
    table.appendRow(["x"])
    par = comp.appendCustomPage("P").appendStr("Name")[0]
    dat = comp.create("textDAT", "worker")
    dat.text = code("""
        import threading
        def touch_from_thread(result):
            def body():
                import json                         # plain imports still work off-thread
                try:
                    op('t')
                except Exception as exc:
                    result.append(type(exc).__name__)
            thread = threading.Thread(target=body)
            thread.start()
            thread.join()
    """)
    attempts = [lambda: td.op("/project1"), lambda: comp.children, lambda: table[0, 0],
                lambda: par.val, lambda: setattr(par, "val", "x"), lambda: td.frame,
                lambda: table.appendRow(["y"]), lambda: td.tdu.Dependency(1)]
    outcomes = []

    def worker():
        for attempt in attempts:
            try:
                attempt()
                outcomes.append("ok")
            except ThreadViolation:
                outcomes.append("violation")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert outcomes == ["violation"] * len(attempts)
    result = []
    dat.module.touch_from_thread(result)            # violation swallowed by user code
    assert result == ["ThreadViolation"]
    assert td.thread_violations == len(attempts) + 1
    assert issubclass(ThreadViolation, TDError) and table.numRows == 1


# -------------------------------------------------------------------- textport and timing
def test_print_capture_and_debug(td, comp, capsys):
    execute_dat(comp, "exec1", """
        print('module level')
        def onFrameStart(frame):
            print('frame', frame)
            print('two\\nlines', end='')
            debug('value', 3)
    """)
    td.run_frames(1)
    assert td.textport == ["module level", "frame 1", "two", "lines", "debug: value 3"]
    assert "frame 1" not in capsys.readouterr().out


def test_echo_copies_textport_to_stdout(comp, capsys):
    td = TD(echo=True)
    execute_dat(td.root, "exec1", "def onStart():\n    print('hello')\n")
    td.start()
    assert td.textport == ["hello"] and "hello" in capsys.readouterr().out


def test_costs_are_recorded_per_callback_and_frame(td, comp):
    comp.appendCustomPage("P").appendInt("Count")
    parameter_watcher(comp, "def onValueChange(par, prev):\n    pass\n")
    execute_dat(comp, "exec1", """
        import time
        def onFrameStart(frame):
            parent().par.Count = frame
            time.sleep(0.002)
    """)
    td.run_frames(3)
    assert len(td.frame_costs) == 3 and all(c >= 0.002 for c in td.frame_costs)
    names = {(f, n) for f, _, n, _ in td.callback_costs if n != "<module>"}
    assert {(1, "onFrameStart"), (1, "onValueChange"), (3, "onValueChange")} <= names
    nested = sum(c for f, _, n, c in td.callback_costs if f == 1)
    assert td.frame_costs[0] < nested                 # nested time is not counted twice


def test_realtime_frames_are_paced_within_and_across_calls(td, monkeypatch):
    began = time.perf_counter()
    td.run_frames(4, realtime=True)
    for _ in range(3):
        td.run_frames(1, realtime=True)
    # Seven frame starts 1/60 s apart, also across calls (sleep never returns early).
    assert time.perf_counter() - began >= 6 / 60 - 0.002
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    td.run_frames(50)
    assert sleeps == [], "frames that are not realtime never wait"


# --------------------------------------------------------------------------- extensions
def test_extension_promotion_and_lifecycle(td, comp):
    events = []

    class DataNetExt:
        def __init__(self, owner):
            self.owner = owner
            self.Status = "idle"

        def onInitTD(self):
            events.append("init")

        def onDestroyTD(self):
            events.append("destroy")

        def Publish(self, address, value):
            return (address, value)

        def helper(self):
            return "private"

    ext = comp.attachExtension(DataNetExt(comp))
    assert comp.Publish("/a", 1) == ("/a", 1) and comp.Status == "idle"
    comp.Status = "connected"
    assert ext.Status == "connected" and comp.ext.DataNetExt is ext
    assert comp.extensions == [ext]
    with pytest.raises(AttributeError):
        comp.helper
    comp.destroy()
    assert events == ["init", "destroy"]


EXTENSION_TEXT = code("""
    class Ext:
        def __init__(self, ownerComp):
            self.ownerComp = ownerComp
            self.seen_in_init = [type(e).__name__ for e in ownerComp.extensions]
            me.parent().fetch('events').append('init')
        def onInitTD(self):
            self.seen_in_init_td = [type(e).__name__ for e in self.ownerComp.extensions]
            self.found = any(e is self for e in self.ownerComp.extensions)
            me.parent().fetch('events').append('onInitTD')
        def onDestroyTD(self):
            me.parent().fetch('events').append('onDestroyTD')
        def Hello(self):
            return 'hello'
""")


def test_extension_pars_are_ext0object_and_ext0promote(td, comp):
    events = comp.store("events", [])
    comp.create("textDAT", "Ext").text = EXTENSION_TEXT
    for old in ("extension1", "promoteextension1"):
        assert comp.par[old] is None
        with pytest.raises(AttributeError):
            getattr(comp.par, old)
    comp.par.ext0object = "op('./Ext').module.Ext(me)"
    comp.par.ext0promote = True
    comp.par.initextonstart = True
    comp.par.reinitextensions.pulse()
    ext = comp.ext.Ext
    assert comp.Hello() == "hello" and comp.extensions == [ext]
    assert ext.seen_in_init == [] and ext.seen_in_init_td == ["Ext"] and ext.found
    comp.par.ext0name = "Named"
    comp.initializeExtensions()
    assert comp.ext.Named is comp.extensions[0]
    with pytest.raises(AttributeError):
        comp.ext.Ext                                 # ext0name replaces the class name
    assert events == ["init", "onInitTD", "onDestroyTD", "init", "onInitTD"]


def test_legacy_build_has_numbered_extension_pars_and_inits_after_all_attach(tmp_path):
    td = TD(project_folder=str(tmp_path), legacy_extension_pars=True)
    comp = td.root.create("baseCOMP", "project1")
    comp.store("events", [])
    assert comp.par["ext0object"] is None and comp.par["extension1"] is not None
    comp.create("textDAT", "Ext").text = EXTENSION_TEXT
    comp.create("textDAT", "Other").text = "class Other:\n    def __init__(self, owner):\n        pass\n"
    comp.par.extension1 = "op('./Ext').module.Ext(me)"
    comp.par.extension2 = "op('./Other').module.Other(me)"
    comp.par.promoteextension1 = True
    comp.initializeExtensions()
    ext = comp.ext.Ext
    assert ext.seen_in_init == [] and ext.seen_in_init_td == ["Ext", "Other"], "onInitTD after all attach"
    assert comp.Hello() == "hello" and td.errors == []


def test_an_extension_is_made_again_when_its_dat_changes(td, comp):
    events = comp.store("events", [])
    dat = comp.create("textDAT", "Ext")
    dat.text = EXTENSION_TEXT
    comp.par.ext0object = "op('./Ext').module.Ext(me)"
    comp.par.ext0promote = True
    comp.initializeExtensions()
    first = comp.ext.Ext
    assert comp.ext.Ext is first and events == ["init", "onInitTD"]
    dat.text = EXTENSION_TEXT.replace("'hello'", "'edited'")
    assert events == ["init", "onInitTD"], "not before the next use"
    assert comp.Hello() == "edited"                 # the next use makes it again
    assert comp.ext.Ext is not first and events == ["init", "onInitTD", "onDestroyTD", "init", "onInitTD"]
    assert comp.ext.Ext is comp.ext.Ext


def test_par_mode_constant_only(td, comp):
    from tdfake.namespace import ParMode

    comp.par.ext0object.mode = ParMode.CONSTANT
    assert comp.par.ext0object.mode is ParMode.CONSTANT
    with pytest.raises(TDError):
        comp.par.ext0object.mode = ParMode.EXPRESSION


def test_table_change_reported_once_per_frame(td, comp):
    table = comp.create("tableDAT", "t")
    watcher = comp.create("datexecuteDAT", "w")
    watcher.text = "def onTableChange(dat, *rest):\n    parent().fetch('changes').append(dat.numRows)\n"
    watcher.par.dat = table
    changes = comp.store("changes", [])
    td.run_frames(1)
    table.appendRow(["a"])
    table.appendRow(["b"])
    td.run_frames(2)
    assert changes == [2]


def test_table_change_arity_follows_td_build(comp):
    for version, build, expected in (("2023", "11600", 1), ("2025", "30000", 3)):
        td = TD(app_version=version, app_build=build)
        table = td.root.create("tableDAT", "t")
        watcher = td.root.create("datexecuteDAT", "w")
        watcher.text = "def onTableChange(dat, *rest):\n    me.store('arity', 1 + len(rest))\n"
        watcher.par.dat = table
        strict = td.root.create("datexecuteDAT", "strict")
        strict.text = "def onTableChange(dat):\n    pass\n"
        strict.par.dat = table
        table.appendRow(["x"])
        td.run_frames(1)
        assert watcher.fetch("arity") == expected
        assert len(td.errors) == (0 if expected == 1 else 1)


def test_ui_status_and_abstime(td, comp):
    execute_dat(comp, "exec1", """
        def onFrameStart(frame):
            ui.status = 'frame %d' % absTime.frame
            me.store('seconds', absTime.seconds)
    """)
    td.run_frames(2)
    assert td.ui.status == "frame 2" and comp.op("exec1").fetch("seconds") == 2 / 60

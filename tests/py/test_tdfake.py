"""Tests of the TouchDesigner fake (tests/tdfake): the rules other tests rely on.
Callback DATs and extensions: test_tdfake_callbacks.py; parameters and CHOPs:
test_tdfake_pars_chops.py."""

import ctypes
import json
import sys
import threading
import time

import pytest
from tdfake_support import code, comp, execute_dat, parameter_watcher, td  # noqa: F401

from tdfake import TD, TDError, ThreadViolation


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


def test_ui_status_and_abstime(td, comp):
    execute_dat(comp, "exec1", """
        def onFrameStart(frame):
            ui.status = 'frame %d' % absTime.frame
            me.store('seconds', absTime.seconds)
    """)
    td.run_frames(2)
    assert td.ui.status == "frame 2" and comp.op("exec1").fetch("seconds") == 2 / 60

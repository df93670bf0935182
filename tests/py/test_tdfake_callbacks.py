"""Tests of the TouchDesigner fake: Execute, Parameter Execute and DAT Execute DATs,
extensions."""

import pytest
from tdfake_support import EXECUTE_TOGGLES, code, comp, execute_dat, parameter_watcher, td  # noqa: F401

from tdfake import TD, TDError


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

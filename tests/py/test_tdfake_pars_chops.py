"""Tests of the TouchDesigner fake: custom parameters, Script CHOPs and other CHOPs."""

import pytest
from tdfake_support import comp, script_chop, td  # noqa: F401

from tdfake import TD, TDError


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

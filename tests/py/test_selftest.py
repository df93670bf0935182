"""td/selftest.py in the TD fake, run exactly as the README tells a TD user to run it
from the textport (runpy.run_path with the textport's globals): the fake is TD as
the project understands it, so it must pass, and the report must tell the readings
of the build it ran in."""

import importlib.util
import os
import re
import sys

import pytest

from conftest import REPO, closed_at_the_gateway, library_path, run_until

SELFTEST = os.path.join(REPO, "td", "selftest.py")
LINE = re.compile(r"(PASS|FAIL|UNKNOWN)\s+(.*?)(?: -- (.*))?$")


def run_selftest(td, **names):
    """The README's textport line, with names added to init_globals."""
    textport = td.root.create("textDAT", "textport")
    textport.text = "import runpy\nrunpy.run_path(%r, init_globals=dict(globals(), **%r))\n" % (SELFTEST, names)
    textport.run()

    def report():
        dat = td.op("/datanet_selftest_report")
        return dat.text if dat is not None else ""

    run_until(td, lambda: "Summary:" in report(), timeout=40, what="the self-test's report")
    td.run_frames(2)  # it deletes its sandbox on the next frame
    results = {}
    for line in report().splitlines():
        match = LINE.match(line)
        if match:
            results[match.group(2)] = (match.group(1), match.group(3) or "")
    return report(), results


def assert_cleaned_up(td):
    assert td.op("/datanet_selftest") is None, "the sandbox is gone"
    assert [c.name for c in td.root.children] == ["textport", "datanet_selftest_report"]
    assert "_datanet_selftest" not in sys.modules and "_datanet_selftest_rerun" not in sys.modules
    runtime = sys.modules.get("_datanet_td_runtime")
    assert runtime is None or "datanet-selftest" not in runtime.instances


def test_the_fake_passes_the_selftest_with_a_round_trip(td, lib_env):
    text, results = run_selftest(td, DATANET_SELFTEST_URL=lib_env.url)
    assert text.startswith("DataNet self-test: TouchDesigner 2023.11600 (Windows), Python ")
    assert len(results) == 19, text
    try:
        import numpy  # noqa: F401
        numpy_missing = set()
    except ImportError:
        numpy_missing = {"Script CHOP copyNumpyArray channel names"}
    not_passed = {title: outcome for title, outcome in results.items() if outcome[0] != "PASS"}
    assert set(not_passed) <= numpy_missing, text
    assert "own message back" in results["connect / subscribe / publish / receive round trip"][1]
    assert "indices read during the deletion" in results["Table DAT deleteRows (descending order)"][1]
    assert "channels and values kept" in results["Script CHOP channels between cooks"][1]
    assert "every toggle off" in results["Execute DAT callbacks run only while their toggle is on"][1]
    summary = [line for line in td.textport if line.startswith("Summary:")]
    assert len(summary) == 1 and "0 FAIL" in summary[0], "the report goes to the textport too"
    rhythm = re.search(r"^Measured: onFrameStart every (\d+\.\d+) ms \(median of the (\d+) intervals", text, re.M)
    assert rhythm and float(rhythm.group(1)) > 0 and int(rhythm.group(2)) >= 60, text
    quiet = re.search(r"^Measured: a poll with nothing arriving took (\d+) µs in onFrameStart \(median of 60 "
                      r"frames\), 90% under (\d+) µs$", text, re.M)
    assert quiet and 0 < int(quiet.group(1)) <= int(quiet.group(2)), text
    assert_cleaned_up(td)
    assert closed_at_the_gateway(lib_env), "no connection left open"


def test_the_frame_rhythm_line_counts_frames_that_came_early():
    spec = importlib.util.spec_from_file_location("selftest", SELFTEST)
    selftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(selftest)  # as "selftest": it defines, and starts nothing
    starts = [n * 0.0167 for n in range(30)]
    starts[10] -= 0.003  # one frame 3 ms early: its interval is short, the next one long
    line = selftest.frame_rhythm(starts)
    assert line.startswith("Measured: onFrameStart every 16.70 ms (median of the 29 intervals"), line
    assert "longest 19.70 ms; 1 came over 2 ms early" in line, line
    assert "too few frames (3)" in selftest.frame_rhythm(starts[:3])


def test_the_quiet_poll_line_reports_the_median_and_the_ninetieth_percentile():
    spec = importlib.util.spec_from_file_location("selftest", SELFTEST)
    selftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(selftest)
    seconds = [n * 1e-6 for n in range(1, 101)]
    assert selftest.quiet_polls(seconds) == (
        "Measured: a poll with nothing arriving took 51 µs in onFrameStart (median of 100 frames), 90% under 90 µs")
    assert "no quiet polls" in selftest.quiet_polls([])


def test_the_report_tells_the_readings_of_the_build_it_ran_in(tmp_path, lib_env, monkeypatch):
    from tdfake import TD

    monkeypatch.delitem(sys.modules, "_datanet_td_runtime", raising=False)  # as in a TD where DataNet.py never ran
    td = TD(project_folder=str(tmp_path), app_version="2025", app_build="30000", os_name="macOS",
            script_chop_channels="cleared", legacy_extension_pars=True)
    text, results = run_selftest(td)
    assert text.startswith("DataNet self-test: TouchDesigner 2025.30000 (macOS)")
    assert results["connect / subscribe / publish / receive round trip"][0] == "UNKNOWN"
    assert "channels gone at each cook" in results["Script CHOP channels between cooks"][1]
    pars = results["extension parameters ext0object / ext0promote / ext0name"]
    assert pars[0] == "PASS" and "an older build" in pars[1]
    assert results["extension made again when its DAT changes, onDestroyTD on the old one"][0] == "PASS"
    assert td.errors == [] and td.thread_violations == 0
    assert_cleaned_up(td)
    assert "_datanet_td_runtime" not in sys.modules, "it leaves no DataNet.py runtime behind"


def ungated_execute_dat(monkeypatch):
    from tdfake.dat import CallbackDAT, ExecuteDAT
    monkeypatch.setattr(ExecuteDAT, "_invoke", CallbackDAT._invoke)


def delete_rows_read_before(monkeypatch):
    from tdfake.dat import TableDAT

    def delete_rows(self, vals=()):
        doomed = {self._row_index(v) for v in vals}
        self._rows = [row for i, row in enumerate(self._rows) if i not in doomed]
        self._changed("deleteRows")
    monkeypatch.setattr(TableDAT, "deleteRows", delete_rows)


def create_refuses_a_name_in_use(monkeypatch):
    from tdfake.errors import TDError
    from tdfake.ops import COMP

    def refuse(self, name):
        raise TDError("%s already has a child named %r" % (self.path, name))
    monkeypatch.setattr(COMP, "_next_numbered_name", refuse)


def extension_never_made_again(monkeypatch):
    from tdfake.ops import COMP
    monkeypatch.setattr(COMP, "_refresh_extensions", lambda self: None)


def values_changed_at_once(monkeypatch):
    from tdfake.dat import ParameterExecuteDAT
    original = ParameterExecuteDAT._value_changed

    def at_once(self, par, prev):
        original(self, par, prev)
        self._report_values_changed()
    monkeypatch.setattr(ParameterExecuteDAT, "_value_changed", at_once)


def script_chop_without_docked_dat(monkeypatch):
    from tdfake.chop import ScriptCHOP
    from tdfake.ops import OP
    monkeypatch.setattr(ScriptCHOP, "_after_create", OP._after_create)


@pytest.mark.parametrize("sabotage, title, status, detail", [
    (ungated_execute_dat, "Execute DAT callbacks run only while their toggle is on", "FAIL",
     "in 3 frames with Frame Start off"),
    (delete_rows_read_before, "Table DAT deleteRows (descending order)", "PASS", "indices read before the deletion"),
    (create_refuses_a_name_in_use, "create() with a name in use picks the next numbered name", "FAIL",
     "already has a child named 'dup'"),
    (extension_never_made_again, "extension made again when its DAT changes, onDestroyTD on the old one", "FAIL",
     "the same extension"),
    (values_changed_at_once, "Parameter Execute DAT: onValueChange, onPulse, onValuesChanged at frame end", "FAIL",
     "onValuesChanged calls: [['Count'], ['Name'], ['Count']]"),
    (script_chop_without_docked_dat, "create(scriptCHOP) docks a callbacks DAT named <name>_callbacks", "FAIL",
     "made no callbacks DAT"),
])
def test_a_td_that_differs_from_the_fake_is_reported(td, monkeypatch, sabotage, title, status, detail):
    """The self-test is only worth running if it can fail: a fake changed to behave
    otherwise must change the item's outcome and say what it saw."""
    monkeypatch.setenv("DATANET_LIB", library_path())
    sabotage(monkeypatch)
    text, results = run_selftest(td)
    assert results[title][0] == status and detail in results[title][1], text
    others = {t: outcome for t, outcome in results.items() if outcome[0] != "PASS" and t != title}
    assert set(others) <= {"connect / subscribe / publish / receive round trip",
                           "Script CHOP copyNumpyArray channel names"}, text
    td.errors.clear()  # a sabotaged fake may make the self-test's own callbacks fail

"""DataNet self-test for TouchDesigner: checks, live, each TD behaviour this project
relies on (and that its TD fake, tests/tdfake, models), and reports PASS, FAIL or
UNKNOWN per item with TD's version and build.

In TD's textport (Dialogs > Textport and DATs):

    import runpy; runpy.run_path('C:/path/to/datanet-td/td/selftest.py', init_globals=globals())

With a connect / publish / receive round trip against a gateway (the local gateway
works: cargo run --release --bin datanet-gateway -- --port 8080):

    import runpy; runpy.run_path('C:/path/to/datanet-td/td/selftest.py',
        init_globals=dict(globals(), DATANET_SELFTEST_URL='http://127.0.0.1:8080'))

Optional names in init_globals: DATANET_SELFTEST_KEY (default: the DATANET_API_KEY
environment variable, else 'ak_selftest', which the local gateway accepts),
DATANET_SELFTEST_CHANNEL (default 'project.demo.selftest'), DATANET_SELFTEST_LIB
(the library's full path; default: where DataNet.py looks, e.g. next to the .toe).

It builds what it needs in a Base COMP of its own at the root, runs the checks that
need frames one frame at a time from an Execute DAT it made (keep the timeline
playing; a few seconds at most), then prints the report to the textport, writes it
to the Text DAT datanet_selftest_report (in /project1, or the root), disconnects,
and deletes everything else it made. Nothing here blocks TD's main thread.

The report also measures how steadily onFrameStart comes (a second of frames): the
library reads the socket about 2 ms before each expected poll while messages pour
in, so frames that start earlier than that get their messages a frame later.

The checks themselves are in selftest_checks.py beside this file; this one runs
them, measures, and writes the report.

PASS: TD does what the project's code relies on (and the fake is right or stricter).
FAIL: it does not: the detail says what TD did; please send the report.
UNKNOWN: could not be checked here (no gateway URL, no numpy, ran out of time).
"""

import os
import runpy
import sys
import time
import traceback
import types

REGISTRY = "_datanet_selftest"  # sys.modules entry the Execute DAT and callbacks reach the test through
RERUN_RUNTIME = "_datanet_selftest_rerun"
SHIM_RUNTIME = "_datanet_td_runtime"  # DataNet.py's own sys.modules entry
CLIENT_NAME = "datanet-selftest"
REPORT_NAME = "datanet_selftest_report"
CHECKS_FILE = "selftest_checks.py"  # beside this file: the checks themselves
TIMEOUT_SECONDS = 30.0
RHYTHM_INTERVALS = 60  # frames measured for the report's onFrameStart rhythm line

TICKER_TEXT = """import sys


def onFrameStart(frame):
    test = sys.modules.get('%s')
    if test is not None:
        test.tick(frame)
""" % REGISTRY

CHOP_TEXT = """import sys


def onSetupParameters(scriptOp):
    return


def onCook(scriptOp):
    test = sys.modules.get('%s')
    if test is not None:
        test.cook(scriptOp)
""" % REGISTRY


def repo_folder():
    here = globals().get("__file__")
    if not here:
        raise RuntimeError("run this file with runpy.run_path(path, init_globals=globals()), not exec()")
    return os.path.dirname(os.path.dirname(os.path.abspath(here)))


def setting(name, default=None):
    value = globals().get(name)
    return default if value in (None, "") else value


class SelfTest:
    """The checks, the frame-by-frame scheduler and the report."""

    def __init__(self):
        self.results = []
        self.began = time.monotonic()
        self.sandbox = None
        self.ticker = None
        self.live = []  # (title, generator) checks that need frames, run one after another
        self.current = None
        self.finished = False
        self.client = None
        self.shim_runtime_existed = SHIM_RUNTIME in sys.modules
        # What callbacks in the sandbox report back through sys.modules[REGISTRY].
        self.registry = types.ModuleType(REGISTRY)
        self.registry.began = self.began
        self.registry.tick = self.tick
        self.registry.cook = self.cook
        self.registry.counts = {"execute": 0}
        self.registry.parexec = []
        self.registry.destroyed = []
        self.registry.created = []
        self.cooks = {}
        self.cook_plans = {}
        self.frame_starts = []  # perf_counter at each onFrameStart of the ticker
        self.quiet_polls = []  # seconds each poll took, with nothing arriving, after the round trip

    # -- running -----------------------------------------------------------------

    def start(self):
        running = sys.modules.get(REGISTRY)
        if running is not None and time.monotonic() - running.began < TIMEOUT_SECONDS + 5:
            print("DataNet self-test: one is already running; wait for its report")
            return
        sys.modules[REGISTRY] = self.registry
        try:
            self.sandbox = root_comp().create(baseCOMP, "datanet_selftest")
            self.sandbox.comment = "DataNet self-test: deleted when the test ends"
            checks = runpy.run_path(os.path.join(repo_folder(), "td", CHECKS_FILE), init_globals=globals())
            for title, check in checks["CHECKS_NOW"]:
                self.record(title, *self.attempt(check))
            self.live = [(title, check(self)) for title, check in checks["CHECKS_LIVE"]]
            self.ticker = self.sandbox.create(executeDAT, "ticker")
            self.ticker.text = TICKER_TEXT
            self.ticker.par.framestart = True
            self.ticker.par.active = True
        except Exception as error:
            self.record("self-test machinery (its sandbox COMP and Execute DAT)", "FAIL", describe(error))
            self.live = []
            self.finish()
            return
        print("DataNet self-test: %d items checked now, %d more over the next frames (keep the timeline "
              "playing)" % (len(self.results), len(self.live)))

    def attempt(self, check):
        try:
            return check(self)
        except Exception as error:
            return "FAIL", describe(error)

    def tick(self, frame):
        if self.finished:
            return
        self.frame_starts.append(time.perf_counter())
        try:
            if time.monotonic() - self.began > TIMEOUT_SECONDS:
                self.time_out()
            else:
                self.advance()
        except Exception as error:  # never let one failure keep the test running
            self.record("self-test machinery", "FAIL", describe(error))
            self.finish()

    def advance(self):
        while self.current is not None or self.live:
            if self.current is None:
                self.current = self.live.pop(0)
            title, steps = self.current
            try:
                next(steps)
                return  # this check wants another frame
            except StopIteration as done:
                self.record(title, *(done.value or ("FAIL", "no result")))
            except Exception as error:
                self.record(title, "FAIL", describe(error))
            self.current = None
        if len(self.frame_starts) <= RHYTHM_INTERVALS:
            return  # the frame rhythm wants a second's worth of frames
        self.finish()

    def time_out(self):
        for title, _ in ([self.current] if self.current else []) + self.live:
            self.record(title, "UNKNOWN", "no result within %d s" % TIMEOUT_SECONDS)
        self.current, self.live = None, []
        self.finish()

    def record(self, title, status, detail=""):
        self.results.append((status, title, detail))

    def finish(self):
        self.finished = True
        self.close_client()
        for key in (REGISTRY, RERUN_RUNTIME):
            sys.modules.pop(key, None)
        self.report()
        if self.ticker is not None and self.ticker.valid:
            self.ticker.par.active = False
        # Deleted on the next frame, not from inside its own Execute DAT's callback.
        run("args[0]()", self.remove_sandbox, delayFrames=1)

    def remove_sandbox(self):
        if self.sandbox is not None and self.sandbox.valid:
            self.sandbox.destroy()

    def close_client(self):
        if self.client is not None:
            self.client.disconnect()
            self.client = None
        runtime = sys.modules.get(SHIM_RUNTIME)
        if runtime is None:
            return
        runtime.instances.pop(CLIENT_NAME, None)
        if not self.shim_runtime_existed and all(st.get("handle") is None for st in runtime.instances.values()):
            del sys.modules[SHIM_RUNTIME]  # the library stays loaded; a later DataNet.py reloads it

    # -- the report --------------------------------------------------------------

    def report(self):
        counts = {status: sum(1 for s, _, _ in self.results if s == status) for status in ("PASS", "FAIL", "UNKNOWN")}
        lines = ["DataNet self-test: TouchDesigner %s.%s (%s), Python %s%s" % (
            app.version, app.build, getattr(app, "osName", "?"), sys.version.split()[0], numpy_version())]
        lines += ["%-8s %s%s" % (status, title, " -- " + detail if detail else "")
                  for status, title, detail in self.results]
        lines.append(frame_rhythm(self.frame_starts))
        lines.append(quiet_polls(self.quiet_polls))
        where = report_parent()
        path = (where.path.rstrip("/") + "/" + REPORT_NAME)
        lines.append("Summary: %d PASS, %d FAIL, %d UNKNOWN. Report in the Text DAT %s: please send it (an issue "
                     "on the project's repository) with your TouchDesigner version." % (
                         counts["PASS"], counts["FAIL"], counts["UNKNOWN"], path))
        text = "\n".join(lines) + "\n"
        dat = where.op(REPORT_NAME) or where.create(textDAT, REPORT_NAME)
        dat.text = text
        for line in lines:
            print(line)

    # -- Script CHOP cooks (called from the sandbox's callbacks DATs) ------------

    def cook(self, scriptOp):
        name = scriptOp.name
        self.cooks[name] = self.cooks.get(name, 0) + 1
        plan = self.cook_plans.get(name)
        if plan is not None:
            plan(scriptOp)

    def script_chop(self, name, plan):
        chop = self.sandbox.create(scriptCHOP, name)
        callbacks = chop.par.callbacks.eval()
        if callbacks is None:
            callbacks = self.sandbox.create(textDAT, name + "_callbacks")
            chop.par.callbacks = callbacks
        self.cook_plans[chop.name] = plan
        callbacks.text = CHOP_TEXT
        return chop


def frame_rhythm(starts):
    """A measurement, not a check: how steadily onFrameStart came while the test
    ran. While messages pour in, the library reads the socket once a frame, about
    2 ms (read_pace_ms) before the host's next expected poll; a frame that starts
    earlier than that gets its messages a frame later. Reports from real TD tell
    whether that lead suits TD's frame rhythm."""
    intervals = sorted((b - a) * 1000.0 for a, b in zip(starts, starts[1:]))
    if len(intervals) < 10:
        return "Measured: too few frames (%d) for onFrameStart's rhythm" % len(starts)
    median = intervals[len(intervals) // 2]
    deviations = sorted(abs(interval - median) for interval in intervals)
    early = sum(1 for interval in intervals if interval < median - 2.0)
    return ("Measured: onFrameStart every %.2f ms (median of the %d intervals while the test ran), 90%% "
            "within %.2f ms of it, longest %.2f ms; %d came over 2 ms early (the library's read before each "
            "poll leads it by about 2 ms)" % (median, len(intervals), deviations[int(0.9 * (len(deviations) - 1))],
                                              intervals[-1], early))


def quiet_polls(seconds):
    """A measurement, not a check: what one poll costs TD's main thread in a frame
    with nothing arriving, as most frames of a quiet show are. The library and
    DataNet.py do little then, but the frame's first call into them finds the
    CPU's caches cold after TD's own work (README, Benchmarks: the quiet frame,
    measured on the development machine). Reports from real TD tell what it is
    there."""
    if not seconds:
        return "Measured: no quiet polls (they are timed after a round trip that passed)"
    micros = sorted(s * 1e6 for s in seconds)
    return ("Measured: a poll with nothing arriving took %.0f µs in onFrameStart (median of %d frames), 90%% "
            "under %.0f µs" % (micros[len(micros) // 2], len(micros), micros[int(0.9 * (len(micros) - 1))]))


def describe(error):
    lines = traceback.format_exception_only(type(error), error)
    return lines[-1].strip() if lines else repr(error)


def numpy_version():
    try:
        import numpy
    except ImportError:
        return ", no numpy"
    return ", numpy " + numpy.__version__


def root_comp():
    return op("/")


def report_parent():
    return op("/project1") or op("/")


if globals().get("op") is not None and __name__ != "selftest":
    SelfTest().start()

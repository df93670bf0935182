"""The fake TD process: main thread, operator registry, frame loop, scheduling."""

import math
import pickle
import threading
import time

from .chop import ConstantCHOP, NullCHOP, ScriptCHOP
from .dat import DatExecuteDAT, ExecuteDAT, ParameterExecuteDAT, TableDAT, TextDAT
from .errors import TDError
from .guard import TDObject
from .namespace import AbsTime, App, Project, Tdu, UI, td_names
from .ops import OP, BaseCOMP, ContainerCOMP, resolve
from .usercode import UserCodeRunner

OP_CLASSES = {cls.OPType: cls for cls in (
    BaseCOMP, ContainerCOMP, TextDAT, TableDAT, ExecuteDAT, ParameterExecuteDAT,
    DatExecuteDAT, ScriptCHOP, ConstantCHOP, NullCHOP,
)}


class Run(TDObject):
    """What run() returns: a scheduled job that can be killed before it runs."""

    active = True

    def __init__(self, td, due_frame, sequence, op_path, job):
        self._td = td
        self._due_frame = due_frame
        self._sequence = sequence
        self._op_path = op_path
        self._job = job

    def kill(self):
        self.active = False

    def __repr__(self):
        return f"type:Run from:{self._op_path} due frame:{self._due_frame}"


class TD(TDObject):
    """One fake TouchDesigner process. The thread that creates it is the main thread.

    Switches for what TD's documentation leaves open or what differs by build:
    script_chop_channels="kept" (a Script CHOP's channels stay between cooks) or
    "cleared" (they are gone at each cook); legacy_extension_pars=True for a
    2020-era build (extension1/promoteextension1 instead of ext0object/ext0promote).
    """

    SCRIPT_CHOP_CHANNELS = ("kept", "cleared")
    frame = 1
    thread_violations = 0
    root = project = app = ui = absTime = tdu = frame_costs = None

    def __init__(self, project_folder=".", project_name="project", app_version="2023",
                 app_build="11600", os_name="Windows", echo=False, fps=60, script_chop_channels="kept",
                 legacy_extension_pars=False):
        if script_chop_channels not in self.SCRIPT_CHOP_CHANNELS:
            raise TDError(f"script_chop_channels must be one of {self.SCRIPT_CHOP_CHANNELS}")
        self._main_ident = threading.get_ident()
        self._violation_lock = threading.Lock()
        self._td = self  # from here on every access is checked
        self._fps = fps
        self._script_chop_channels = script_chop_channels
        self._legacy_extension_pars = bool(legacy_extension_pars)
        self._module_reads = None  # while an extension expression runs: the Text DATs it read
        self._runner = UserCodeRunner(self._main_ident, echo)
        self._ops = []
        self._jobs = []
        self._job_sequence = 0
        self._cooking = []
        self._in_frame = False
        self._exited = False
        self._next_frame_start = None
        self.frame_costs = []
        self.project = Project(self, project_folder, project_name)
        self.app = App(self, app_version, app_build, os_name)
        self.ui = UI(self)
        self.absTime = AbsTime(self)
        self.tdu = Tdu(self)
        self.root = BaseCOMP(self, None, "")
        self._register(self.root)

    # -- what tests read -----------------------------------------------------------
    textport = property(lambda self: self._runner.textport)
    errors = property(lambda self: self._runner.errors)
    callback_costs = property(lambda self: self._runner.callback_costs)

    def op(self, path):
        return resolve(self.root, path)

    def run(self, script, *args, delayFrames=0, delayMilliSeconds=0, fromOP=None):
        """TD's global run(), as if called from fromOP (default: the root)."""
        source = fromOP if fromOP is not None else self.root
        return td_names(source)["run"](script, *args, delayFrames=delayFrames,
                                       delayMilliSeconds=delayMilliSeconds)

    # -- lifecycle events ------------------------------------------------------------
    def start(self):
        """Project start: onStart() of every active Execute DAT with Start on, in creation order."""
        self._require_running()
        self._fire(ExecuteDAT, "onStart")

    def fire_create(self, comp=None):
        """onCreate() of the Execute DATs (Create on) inside comp (default: all), as when a .tox is placed."""
        self._require_running()
        scope = comp if comp is not None else self.root
        inside = {id(op) for op in scope.findChildren()}
        for dat in self._ops_of(ExecuteDAT):
            if id(dat) in inside and dat.valid:
                dat._invoke("onCreate")

    def save_project(self):
        self._require_running()
        self._fire(ExecuteDAT, "onProjectPreSave")
        for op in self._ops_of(OP):
            for key, value in op.storage.items():
                try:  # TD pickles all storage into the .toe
                    pickle.dumps(value)
                except Exception as exc:
                    self._runner.record_error(op.path, f"save_project storage {key!r}", exc)
        self._fire(ExecuteDAT, "onProjectPostSave")

    def exit(self):
        """onExit() of every Execute DAT with Exit on; afterwards the process is gone."""
        self._require_running()
        self._fire(ExecuteDAT, "onExit")
        self._exited = True

    def _build_at_least(self, version, build):
        try:
            return (int(self.app.version), int(self.app.build)) >= (version, build)
        except ValueError:
            return False

    def _require_running(self):
        if self._exited:
            raise TDError("TD has exited")

    def _fire(self, cls, callback_name, *args):
        for dat in self._ops_of(cls):
            if dat.valid:
                dat._invoke(callback_name, *args)

    # -- frame loop ----------------------------------------------------------------------
    def run_frames(self, count=1, realtime=False):
        """Run frames; realtime=True starts them 1/fps apart, also across calls.

        A late frame is not followed by a burst of catch-up frames: like TD, the
        cadence restarts from the late frame.
        """
        self._require_running()
        for _ in range(int(count)):
            if realtime:
                self._wait_for_frame_start()
            else:
                self._next_frame_start = None
            self._run_frame()

    def _wait_for_frame_start(self):
        now = time.perf_counter()
        target = self._next_frame_start if self._next_frame_start is not None else now
        if target > now:
            time.sleep(target - now)
        self._next_frame_start = max(target, time.perf_counter()) + 1.0 / self._fps

    def _run_frame(self):
        frame = self.frame
        self._in_frame = True
        try:
            self._run_due_jobs(frame)
            self._fire(ExecuteDAT, "onFrameStart", frame)
            for chop in self._ops_of(ScriptCHOP):
                if chop.valid and chop.viewed:  # an open viewer pulls its CHOP each frame
                    chop.cook()
            for dat in self._ops_of(DatExecuteDAT):
                if dat.valid:
                    dat._report_changes()
            self._fire(ExecuteDAT, "onFrameEnd", frame)
            for dat in self._ops_of(ParameterExecuteDAT):
                if dat.valid:
                    dat._report_values_changed()
        finally:
            self._in_frame = False
            self.frame_costs.append(self._runner.pending_frame_cost)
            self._runner.pending_frame_cost = 0.0
            self.frame = frame + 1

    # -- run() scheduling ------------------------------------------------------------------
    def _schedule(self, op_path, name, job, delay_frames=0, delay_ms=0):
        """Due at the start of frame (current + delay), at least the next frame.

        Between frames, "current" is the frame just finished. Milliseconds are
        converted to frames so non-realtime runs stay deterministic.
        """
        current = self.frame if self._in_frame else self.frame - 1
        delay = int(delay_frames) + math.ceil(float(delay_ms) / 1000.0 * self._fps)
        self._job_sequence += 1
        job_run = Run(self, current + max(delay, 1), self._job_sequence, op_path,
                      lambda: self._call_user(op_path, name, job))
        self._jobs.append(job_run)
        return job_run

    def _run_due_jobs(self, frame):
        due = sorted((j for j in self._jobs if j._due_frame <= frame),
                     key=lambda j: (j._due_frame, j._sequence))
        self._jobs = [j for j in self._jobs if j._due_frame > frame]
        for job_run in due:
            if job_run.active:
                job_run._job()

    # -- user code ---------------------------------------------------------------------
    def _call_user(self, op_path, callback_name, fn, *args, propagate=False):
        _, result = self._runner.call(self.frame, op_path, callback_name, fn, *args,
                                      propagate=propagate)
        return result

    # -- operator registry ------------------------------------------------------------
    def _op_class(self, op_type):
        if isinstance(op_type, type) and op_type in OP_CLASSES.values():
            return op_type
        cls = OP_CLASSES.get(op_type) if isinstance(op_type, str) else None
        if cls is None:
            raise TDError(f"unknown operator type {op_type!r}; the fake has {sorted(OP_CLASSES)}")
        return cls

    def _op_classes(self):
        return dict(OP_CLASSES)

    def _register(self, op):
        self._ops.append(op)

    def _unregister(self, op):
        self._ops = [o for o in self._ops if o is not op]

    def _ops_of(self, cls):
        return [op for op in self._ops if isinstance(op, cls)]

    # -- parameter events -------------------------------------------------------------
    def _parameter_changed(self, par, prev):
        for dat in self._ops_of(ParameterExecuteDAT):
            if dat.valid:
                dat._value_changed(par, prev)

    def _parameter_pulsed(self, par):
        for dat in self._ops_of(ParameterExecuteDAT):
            if dat.valid:
                dat._pulsed(par)

    def __repr__(self):
        return f"<fake TD {self.app.version}.{self.app.build} frame {self.frame}>"


for _type_name, _cls in OP_CLASSES.items():
    setattr(TD, _type_name, _cls)

"""CHOPs: channels, the Script CHOP (cook rules, dependencies), Constant and Null CHOPs."""

import fnmatch
import re

from .errors import TDError
from .guard import TDObject
from .ops import OP

# Stricter than TD on purpose: code whose names pass here is valid in TD too.
CHANNEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

def _numpy():
    """numpy, imported when a numpy call is first made (TD ships it; the fake does
    not load it for networks that never use it: its thread pool would run in every
    test and benchmark process)."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - depends on the machine
        raise TDError("numpy is not available") from None
    return numpy


class Channel(TDObject):
    """One CHOP channel. Values can be changed only inside its Script CHOP's cook."""

    def __init__(self, owner, name, vals):
        self._td = owner._td
        self._lifetime_owner = owner
        self._owner = owner
        self._name = name
        self._vals = [float(v) for v in vals]

    name = property(lambda self: self._name)
    owner = property(lambda self: self._owner)

    @property
    def index(self):
        return next(i for i, ch in enumerate(self._owner._channel_list()) if ch._name == self._name)

    @property
    def valid(self):
        return self._owner.valid and any(ch._name == self._name for ch in self._owner._channel_list())

    @property
    def vals(self):
        return list(self._vals)

    @vals.setter
    def vals(self, values):
        self._owner._require_cook("set Channel.vals")
        values = [float(v) for v in values]
        if len(values) != len(self._vals):
            raise TDError(
                f"{self._owner.path}:{self._name}: {len(values)} values for a channel of "
                f"{len(self._vals)} samples (set numSamples first)"
            )
        self._vals = values

    def __getitem__(self, index):
        return self._vals[index]

    def __setitem__(self, index, value):
        self._owner._require_cook("set a channel sample")
        self._vals[index] = float(value)

    def __len__(self):
        return len(self._vals)

    def eval(self, index=None):
        return self._vals[0 if index is None else index]

    def __float__(self):
        return float(self.eval())

    def __int__(self):
        return int(self.eval())

    def numpyArray(self):
        numpy = _numpy()
        return numpy.array(self._vals, dtype=numpy.float32)

    def copyNumpyArray(self, array):
        """The channel's samples from a 1-D float32 array of the CHOP's length."""
        self._owner._require_cook("Channel.copyNumpyArray()")
        numpy = _numpy()
        if (not isinstance(array, numpy.ndarray) or array.ndim != 1 or array.dtype != numpy.float32
                or array.shape[0] != len(self._vals)):
            raise TDError(f"{self._owner.path}:{self._name}: copyNumpyArray needs a float32 array of shape "
                          f"({len(self._vals)},)")
        self._vals = [float(v) for v in array]

    def __repr__(self):
        return f"type:Channel name:{self._name} owner:{self._owner.path} vals:{self._vals}"


class CHOP(OP):
    family = "CHOP"
    isCHOP = True

    def _channel_list(self):
        return []

    def _require_cook(self, action):
        raise TDError(f"{self.path}: cannot {action}: only a Script CHOP can, during its cook")

    @property
    def numChans(self):
        return len(self._channel_list())

    @property
    def numSamples(self):
        channels = self._channel_list()
        return len(channels[0]) if channels else 1

    def chans(self, *patterns):
        patterns = [p for pattern in (patterns or ("*",)) for p in str(pattern).split()]
        return [ch for ch in self._channel_list()
                if any(fnmatch.fnmatchcase(ch.name, p) for p in patterns)]

    def chan(self, name_or_index):
        channels = self._channel_list()
        if isinstance(name_or_index, int):
            return channels[name_or_index] if 0 <= name_or_index < len(channels) else None
        return next((ch for ch in channels if ch.name == name_or_index), None)

    def __getitem__(self, name_or_index):
        return self.chan(name_or_index)


DOCKED_CALLBACKS_TEXT = """# me - this DAT
# scriptOp - the OP which is cooking

def onSetupParameters(scriptOp):
    return

def onPulse(par):
    return

def onCook(scriptOp):
    scriptOp.clear()
    return
"""


class ScriptCHOP(CHOP):
    """Channels written by Python in onCook(scriptOp) of the callbacks DAT.

    create() also makes its callbacks DAT, docked to it and named <name>_callbacks
    (or the next free numbered name), as TD does. It cooks when forced, or when
    something pulls it while it is dirty: a read of its channels from outside its
    cook, cook(), or `viewed` (an open viewer pulls every frame; off here, as
    nothing in a headless network looks at it). Dirty: never cooked, callbacks text
    changed, a tdu.Dependency read in the last cook was set, one of its parameters
    changed, or par.cookeveryframe is on. Whether channels stay between cooks is
    undocumented: TD(script_chop_channels="kept" or "cleared") picks the reading.
    """

    OPType = "scriptCHOP"
    short_type = "script"
    BUILTIN_PARS = (("callbacks", "OP", ""), ("cookeveryframe", "Toggle", False))
    viewed = False
    warnings = None
    append_count = 0

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        self._channels = []
        self._channel_names = set()  # keeps appendChan's duplicate check O(1)
        self._num_samples = 1
        self._rate = float(td._fps)
        self._in_cook = False
        self._length_set_in_cook = False
        self._dirty = True
        self._deps = []
        self._cooked_text_serial = None
        self._setup_text_serial = None
        self.warnings = []

    def _after_create(self):
        callbacks = self._parent.create("textDAT", self._name + "_callbacks")
        callbacks.text = DOCKED_CALLBACKS_TEXT
        callbacks._dock_host = self
        self._docked.append(callbacks)
        self.par.callbacks = callbacks

    def _require_custom_pars(self):
        pass

    def _channel_list(self):
        self._pull()
        return list(self._channels)

    def _pull(self):
        """Reading a dirty CHOP's output from outside its cook cooks it first."""
        if not self._in_cook and self._needs_cook():
            self._cook_now()

    def _require_cook(self, action):
        if not self._in_cook:
            raise TDError(f"{self.path}: cannot {action} outside the Script CHOP's cook")

    # -- cook rules ---------------------------------------------------------------
    def _callbacks_dat(self):
        dat = self.par.callbacks.eval()
        return dat if dat is not None and getattr(dat, "_is_module_dat", False) else None

    def _needs_cook(self):
        dat = self._callbacks_dat()
        text_serial = dat._text_serial if dat is not None else None
        return (self._dirty or self.par.cookeveryframe.eval()
                or text_serial != self._cooked_text_serial)

    def cook(self, force=False, recurse=False):
        if self._in_cook:
            return  # TD ignores a cook request from inside the same cook
        if force or self._needs_cook():
            self._cook_now()

    def _cook_now(self):
        dat = self._callbacks_dat()
        module = dat._callbacks_module() if dat is not None else None
        if module is not None and self._setup_text_serial != dat._text_serial:
            self._call_setup(dat, module)
        for dep in self._deps:
            dep._dependents = [op for op in dep._dependents if op is not self]
        self._deps = []
        self.script_errors = []
        if self._td._script_chop_channels == "cleared":
            self._channels = []
            self._channel_names = set()
        self._in_cook = True
        self._length_set_in_cook = False
        self._td._cooking.append(self)
        try:
            fn = getattr(module, "onCook", None) or getattr(module, "cook", None)
            if callable(fn):
                self._td._call_user(self.path, "onCook", fn, self)
        finally:
            self._td._cooking.pop()
            self._in_cook = False
            self.cook_count += 1
            self._dirty = False
            self._cooked_text_serial = dat._text_serial if dat is not None else None

    def _call_setup(self, dat, module):
        self._setup_text_serial = dat._text_serial
        fn = getattr(module, "onSetupParameters", None)
        if callable(fn):
            self._td._call_user(self.path, "onSetupParameters", fn, self)

    def _note_dependency(self, dep):
        if not any(d is dep for d in self._deps):
            self._deps.append(dep)
        dep._add_dependent(self)

    def _par_changed(self, par, prev):
        self._dirty = True
        if par is self.par.callbacks:
            dat = self._callbacks_dat()
            module = dat._callbacks_module() if dat is not None else None
            if module is not None:
                self._call_setup(dat, module)
        super()._par_changed(par, prev)

    def _par_pulsed(self, par):
        dat = self._callbacks_dat()
        module = dat._callbacks_module() if dat is not None else None
        fn = getattr(module, "onPulse", None) if module is not None else None
        if callable(fn):
            self._td._call_user(self.path, "onPulse", fn, par)
        super()._par_pulsed(par)

    # -- writing channels (inside a cook only) ---------------------------------------
    def clear(self):
        self._require_cook("clear()")
        self._channels = []
        self._channel_names = set()

    def appendChan(self, name):
        self._require_cook("appendChan()")
        if not isinstance(name, str) or not CHANNEL_NAME.fullmatch(name):
            raise TDError(
                f"{self.path}.appendChan({name!r}): channel names are letters, digits "
                "and '_', not starting with a digit"
            )
        if name in self._channel_names:
            raise TDError(f"{self.path}.appendChan({name!r}): channel already exists")
        channel = Channel(self, name, [0.0] * self._num_samples)
        self._channels.append(channel)
        self._channel_names.add(name)
        self.append_count += 1  # for tests: how often channels were made, not reused
        return channel

    @property
    def numSamples(self):
        self._pull()
        return self._num_samples

    @numSamples.setter
    def numSamples(self, count):
        self._require_cook("set numSamples")
        count = int(count)
        if count < 1:
            raise TDError(f"{self.path}: numSamples must be at least 1")
        for ch in self._channels:
            ch._vals = (ch._vals + [0.0] * count)[:count]
        self._num_samples = count
        self._length_set_in_cook = True

    @property
    def rate(self):
        self._pull()
        return self._rate

    @rate.setter
    def rate(self, value):
        self._require_cook("set rate")
        value = float(value)
        if self._length_set_in_cook and value != self._rate:
            # TD wants the rate before the length: setting it after can change the length.
            self.warnings.append("rate_set_after_length")
        self._rate = value

    def copyNumpyArray(self, array, baseName="chan"):
        """The CHOP becomes the array: one channel per row, named baseName1,
        baseName2, ... The documentation names only the channels it creates; the
        fake takes the stricter reading that every channel is replaced, so names
        appended earlier are gone (selftest.py reports what TD does)."""
        self._require_cook("copyNumpyArray()")
        numpy = _numpy()
        if not isinstance(array, numpy.ndarray) or array.ndim != 2 or array.dtype != numpy.float32:
            raise TDError("copyNumpyArray needs a 2-D float32 array shaped (channels, samples)")
        self._channels = []
        self._channel_names = set()
        self.numSamples = array.shape[1]
        for index, row in enumerate(array):
            self.appendChan(f"{baseName}{index + 1}")._vals = [float(v) for v in row]

    def _describe(self):
        info = super()._describe()
        info["channels"] = {ch.name: list(ch._vals) for ch in self._channels}
        return info


class _FixedChannelsCHOP(CHOP):
    """CHOPs whose channels tests set directly with set_channels({name: [values]})."""

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        self._fixed = None

    def set_channels(self, channels):
        """Test helper: replace the output channels (not a TD method)."""
        self._fixed = {str(k): [float(v) for v in vals] for k, vals in channels.items()}
        self.cook_count += 1

    def _channel_list(self):
        return [Channel(self, n, v) for n, v in (self._fixed or {}).items()]


class ConstantCHOP(_FixedChannelsCHOP):
    """Channels from const<i>name / const<i>value (TD 2022+ names; name<i>/value<i> alias them)."""

    OPType = "constantCHOP"
    short_type = "constant"
    PAIRS = 4
    BUILTIN_PARS = tuple(
        par for i in range(PAIRS)
        for par in ((f"const{i}name", "Str", ""), (f"const{i}value", "Float", 0.0))
    )

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        for i in range(self.PAIRS):
            self._pars._by_name[f"name{i}"] = self._pars._by_name[f"const{i}name"]
            self._pars._by_name[f"value{i}"] = self._pars._by_name[f"const{i}value"]

    def _channel_list(self):
        if self._fixed is not None:
            return super()._channel_list()
        channels = []
        for i in range(self.PAIRS):
            name = self._pars._by_name[f"const{i}name"].val
            if name:
                channels.append(Channel(self, name, [self._pars._by_name[f"const{i}value"].val]))
        return channels


class NullCHOP(_FixedChannelsCHOP):
    OPType = "nullCHOP"
    short_type = "null"

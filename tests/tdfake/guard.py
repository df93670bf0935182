"""One guard for every TD object: main thread only, and nothing after destruction.

Every fake TD object derives from TDObject and carries `_td` (the owning TD).
Attribute access goes through one `__getattribute__`, so implicit special methods
(`t[r, c]`, `len(ch)`, `str(par)`) are covered too: their bodies read `self._...`.
"""

import threading

from .errors import TDError, ThreadViolation

# Read before any check (the checks themselves need them) or used by isinstance().
_UNGUARDED = frozenset({"__class__", "_td", "_lifetime_owner", "_destroyed", "_dead_path"})
# Still answerable on a destroyed operator, as in TD.
_OPEN_AFTER_DESTROY = frozenset({"valid", "__repr__", "__eq__", "__hash__"})

_get = object.__getattribute__
_get_ident = threading.get_ident


def check_main_thread(td, what):
    """Raise ThreadViolation (and count it) unless called on td's main thread."""
    if threading.get_ident() != _get(td, "_main_ident"):
        with _get(td, "_violation_lock"):
            object.__setattr__(td, "thread_violations", _get(td, "thread_violations") + 1)
        raise ThreadViolation(
            f"{what} used from thread {threading.current_thread().name!r}: "
            "TD objects may only be used from TD's main thread"
        )


def main_thread_only(td, fn):
    """Wrap a plain function (op, run, parent, ...) with the main-thread check."""

    def guarded(*args, **kwargs):
        check_main_thread(td, fn.__name__)
        return fn(*args, **kwargs)

    guarded.__name__ = fn.__name__
    guarded.__qualname__ = fn.__qualname__
    guarded.__doc__ = fn.__doc__
    return guarded


class TDObject:
    """Base of every object handed to user code."""

    _td = None  # the owning TD; set per instance (or per class for tdu.Dependency)
    _lifetime_owner = None  # the OP whose destruction makes this object unusable

    def __getattribute__(self, name):
        # Inlined rather than calling _check_access: this runs on every attribute read.
        if name not in _UNGUARDED:
            td = _get(self, "_td")
            if td is not None and _get_ident() != _get(td, "_main_ident"):
                check_main_thread(td, f"{type(self).__name__}.{name}")
            owner = _get(self, "_lifetime_owner")
            if owner is not None and _get(owner, "_destroyed") and name not in _OPEN_AFTER_DESTROY:
                raise TDError(f"{_get(owner, '_dead_path')} has been deleted (accessing .{name})")
        return _get(self, name)

    def __setattr__(self, name, value):
        _check_access(self, name)
        if not name.startswith("_") and not hasattr(type(self), name):
            self._set_unknown_attribute(name, value)
            return
        object.__setattr__(self, name, value)

    def _set_unknown_attribute(self, name, value):
        # TD objects are C types without a __dict__: a typo like `t.numrows = 3` fails there.
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")


def _check_access(obj, name):
    td = _get(obj, "_td")
    if td is not None:
        check_main_thread(td, f"{type(obj).__name__}.{name}")
    owner = _get(obj, "_lifetime_owner")
    if owner is not None and _get(owner, "_destroyed") and name not in _OPEN_AFTER_DESTROY:
        raise TDError(f"{_get(owner, '_dead_path')} has been deleted (accessing .{name})")


def disable_for_benchmarks():
    """Removes the guard's checks from every TD object, for benchmarks only: they
    cost about 0.3 µs per attribute access, which would drown the cost of the code
    being measured. Attribute routing (op.par.X = v) stays. Tests keep the guard; a
    process that calls this should not run them."""
    if "__getattribute__" in TDObject.__dict__:
        delattr(TDObject, "__getattribute__")

    def route_setattr(self, name, value):
        if not name.startswith("_") and not hasattr(type(self), name):
            self._set_unknown_attribute(name, value)
            return
        object.__setattr__(self, name, value)

    TDObject.__setattr__ = route_setattr

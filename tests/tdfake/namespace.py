"""The globals TD gives every DAT script: op, me, parent, mod, run, tdu, ... and `import X`."""

import builtins
import enum
import fnmatch
import threading
import types

from .errors import TDError
from .guard import TDObject, main_thread_only
from .ops import resolve


class ParMode(enum.Enum):
    """td.ParMode: how a parameter gets its value (the fake models CONSTANT only)."""

    CONSTANT = 0
    EXPRESSION = 1
    EXPORT = 2
    BIND = 3


class Project(TDObject):
    def __init__(self, td, folder, name):
        self._td = td
        self._folder = folder
        self._name = name

    folder = property(lambda self: self._folder)
    name = property(lambda self: self._name)
    cookRate = property(lambda self: self._td._fps)

    def save(self, path=None):
        self._td.save_project()
        return path


class App(TDObject):
    def __init__(self, td, version, build, os_name):
        self._td = td
        self._version = str(version)
        self._build = str(build)
        self._os_name = str(os_name)

    version = property(lambda self: self._version)
    build = property(lambda self: self._build)
    osName = property(lambda self: self._os_name)
    product = property(lambda self: "TouchDesigner")


class UI(TDObject):
    status = ""

    def __init__(self, td):
        self._td = td


class AbsTime(TDObject):
    def __init__(self, td):
        self._td = td

    frame = property(lambda self: self._td.frame)
    seconds = property(lambda self: self._td.frame / self._td._fps)


class DependencyBase(TDObject):
    """tdu.Dependency: a value whose readers (Script CHOP cooks) re-cook when it is set."""

    def __init__(self, value=None):
        self._value = value
        self._dependents = []

    @property
    def val(self):
        cooking = self._td._cooking
        if cooking:
            cooking[-1]._note_dependency(self)
        return self._value

    @val.setter
    def val(self, value):
        # TD marks dependents dirty on every set, equal value or not.
        self._value = value
        self.modified()

    @property
    def peekVal(self):
        return self._value

    def modified(self):
        dependents, self._dependents = self._dependents, []
        for op in dependents:
            if op.valid:
                op._dirty = True

    def _add_dependent(self, op):
        if not any(d is op for d in self._dependents):
            self._dependents.append(op)

    def __repr__(self):
        return f"tdu.Dependency({self._value!r})"


class Tdu(TDObject):
    """The tdu module. Only Dependency: anything else would be a guess at TD's behaviour."""

    def __init__(self, td):
        self._td = td
        self._dependency_class = type("Dependency", (DependencyBase,), {"_td": td})

    @property
    def Dependency(self):
        return self._dependency_class


class ModFinder(TDObject):
    """`mod.Name` / `mod('path')`: the module of a Text DAT found from the calling op."""

    def __init__(self, me):
        self._td = me._td
        self._me = me

    def __getattr__(self, name):
        dat = find_module_dat(self._me, name)
        if dat is None:
            raise AttributeError(f"mod: no Text DAT named {name!r} from {self._me.path}")
        return dat.module

    def __call__(self, path):
        dat = resolve(_current_comp(self._me), path)
        if dat is None or not getattr(dat, "_is_module_dat", False):
            raise TDError(f"mod({path!r}): no Text DAT there")
        return dat.module


def _current_comp(me):
    """Where scripts of `me` look things up: the component me sits in."""
    return me._parent if me._parent is not None else me


def find_module_dat(me, name):
    """Search me's component, then each ancestor (and its local/modules), for a DAT `name`."""
    comp = _current_comp(me)
    while comp is not None:
        candidates = [comp._children.get(name)]
        local = comp._children.get("local")
        if local is not None and local.isCOMP:
            modules = local._children.get("modules")
            if modules is not None and modules.isCOMP:
                candidates.append(modules._children.get(name))
        for dat in candidates:
            if dat is not None and getattr(dat, "_is_module_dat", False):
                return dat
        comp = comp._parent
    return None


def make_globals(me):
    """A fresh globals dict for code running as `me` (module runs, run() strings)."""
    names = td_names(me)
    td_module = types.ModuleType("td")
    td_module.__dict__.update(names)
    namespace = dict(names)
    namespace["td"] = td_module
    namespace["__name__"] = me.name
    namespace["__builtins__"] = _builtins_with_dat_import(me, td_module)
    return namespace


def td_names(me):
    td = me._td
    guard = lambda fn: main_thread_only(td, fn)  # noqa: E731

    def op(*paths):
        base = _current_comp(me)
        for path in paths:
            found = resolve(base, path)
            if found is not None:
                return found
        return None

    def ops(*patterns):
        found = []
        for pattern in map(str, patterns):
            folder, _, leaf = pattern.rpartition("/")
            if pattern.startswith("/") and not folder:
                folder = "/"
            comp = resolve(_current_comp(me), folder) if folder else _current_comp(me)
            if comp is not None and comp.isCOMP:
                found += [c for c in comp.children if fnmatch.fnmatchcase(c.name, leaf)]
        return found

    def parent(levels=1):
        return me.parent(levels)

    def run(script, *args, delayFrames=0, delayMilliSeconds=0, fromOP=None):
        source = fromOP if fromOP is not None else me
        if callable(script):
            job = lambda: script(*args)  # noqa: E731
        else:
            job = lambda: _exec_script(str(script), source, args)  # noqa: E731
        return td._schedule(source.path, "run", job, delayFrames, delayMilliSeconds)

    def debug(*args):
        td._runner.textport_lines("debug: " + " ".join(str(a) for a in args))

    names = {
        "me": me,
        "op": guard(op),
        "ops": guard(ops),
        "parent": guard(parent),
        "run": guard(run),
        "debug": guard(debug),
        "root": td.root,
        "project": td.project,
        "app": td.app,
        "ui": td.ui,
        "absTime": td.absTime,
        "tdu": td.tdu,
        "mod": ModFinder(me),
        "tdError": TDError,
        "ParMode": ParMode,
    }
    names.update(td._op_classes())
    return names


def _exec_script(text, source, args):
    namespace = make_globals(source)
    namespace["args"] = args
    exec(compile(text, f"<run from {source.path}>", "exec"), namespace)


def _builtins_with_dat_import(me, td_module):
    """builtins whose __import__ resolves Text DAT names (and `td`, `tdu`) first.

    Kept per namespace instead of in sys.modules so that an import after a text
    change gets the re-run module, never a stale cached one.
    """
    real_import = builtins.__import__
    main_ident = me._td._main_ident

    def dat_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and "." not in name and threading.get_ident() == main_ident:
            if name == "td":
                return td_module
            if name == "tdu":
                return me._td.tdu
            dat = find_module_dat(me, name)
            if dat is not None:
                return dat.module
        return real_import(name, globals, locals, fromlist, level)

    table = dict(builtins.__dict__)
    table["__import__"] = dat_import
    return table

"""Operators: the OP base class, COMPs, path lookup, storage and custom pages."""

import fnmatch
import itertools
import json
import pickle
import re

from .errors import StorageKeyError, TDError
from .guard import TDObject
from .pars import Page, Par, ParCollection, match_pars

OP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TRAILING_DIGITS = re.compile(r"(.*?)([0-9]+)")
_MISSING = object()
_ids = itertools.count(1)


class OP(TDObject):
    """Common to every operator. Subclasses set OPType, family and BUILTIN_PARS.

    BUILTIN_PARS: (name, style, default) triples for the built-in parameters.
    """

    OPType = "OP"
    family = ""
    short_type = ""  # TD's OP.type: "text" for a textDAT, "base" for a baseCOMP
    BUILTIN_PARS = ()
    isDAT = False
    isCHOP = False
    isCOMP = False
    # Public per-instance attributes must be declared on the class (see TDObject.__setattr__).
    script_errors = ()
    cook_count = 0
    _destroyed = False
    _dead_path = ""

    def __init__(self, td, parent, name):
        self._td = td
        self._lifetime_owner = self
        self._parent = parent
        self._name = name
        self._id = next(_ids)
        self._pars = ParCollection(self)
        self._custom_pages = []
        self._storage = {}
        self.script_errors = []
        self._nodeX = 0
        self._nodeY = 0
        self._comment = ""
        self.cook_count = 0
        self._dock_host = None
        self._docked = []
        for par_name, style, default in self._builtin_pars(td):
            self._pars._add(Par(self, par_name, style, default))

    def _builtin_pars(self, td):
        return self.BUILTIN_PARS

    def _after_create(self):
        """Hook: what TD makes along with the operator (a Script CHOP's callbacks DAT)."""

    def _copy_contents(self, source):
        """Hook: COMP.copy() takes the source's contents (text, rows)."""

    def _after_copy(self):
        """Hook: what a copy does once made (an Execute DAT's onCreate)."""

    # -- identity and hierarchy -------------------------------------------------
    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, new_name):
        if self._parent is None:
            raise TDError("the root cannot be renamed")
        self._parent._rename_child(self, new_name)

    @property
    def path(self):
        if self._parent is None:
            return "/"
        parent_path = self._parent.path
        return ("" if parent_path == "/" else parent_path) + "/" + self._name

    @property
    def type(self):
        return self.short_type

    @property
    def id(self):
        return self._id

    @property
    def valid(self):
        return not self._destroyed

    @property
    def dock(self):
        """The operator this one is docked to, or None."""
        return self._dock_host

    @property
    def docked(self):
        return [op for op in self._docked if op.valid]

    def parent(self, levels=1):
        node = self
        for _ in range(int(levels)):
            node = node._parent
            if node is None:
                return None
        return node

    def _lookup_base(self):
        """The COMP that relative paths start from: a COMP itself, else its parent."""
        return self._parent

    def op(self, path):
        return resolve(self._lookup_base(), path)

    @property
    def par(self):
        return self._pars

    def pars(self, pattern="*"):
        return match_pars(self._pars._all(), pattern)

    @property
    def customPars(self):
        return [p for page in self._custom_pages for p in page.pars]

    # -- node state -------------------------------------------------------------
    @property
    def nodeX(self):
        return self._nodeX

    @nodeX.setter
    def nodeX(self, value):
        self._nodeX = int(value)

    @property
    def nodeY(self):
        return self._nodeY

    @nodeY.setter
    def nodeY(self, value):
        self._nodeY = int(value)

    @property
    def comment(self):
        return self._comment

    @comment.setter
    def comment(self, value):
        self._comment = str(value)

    def cook(self, force=False, recurse=False):
        self.cook_count += 1

    def addScriptError(self, msg):
        self.script_errors.append(str(msg))

    def clearScriptErrors(self, recurse=False, error="*"):
        self.script_errors = [e for e in self.script_errors if not fnmatch.fnmatchcase(e, error)]
        if recurse:
            for child in self._children_list():
                child.clearScriptErrors(recurse=True, error=error)

    def scriptErrors(self, recurse=False):
        errors = list(self.script_errors)
        if recurse:
            errors += [child.scriptErrors(recurse=True) for child in self._children_list()]
        return "\n".join(e for e in errors if e)

    def _children_list(self):
        return []

    # -- storage (pickled into the .toe/.tox by TD) ------------------------------
    @property
    def storage(self):
        return self._storage

    def store(self, key, value):
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise TDError(
                f"{self.path}.store({key!r}): value cannot be pickled into the project "
                f"({type(exc).__name__}: {exc}); ctypes handles must live elsewhere"
            ) from exc
        self._storage[key] = value
        return value

    def fetch(self, key, default=_MISSING, search=True, storeDefault=False):
        node = self
        while node is not None:
            if key in node._storage:
                return node._storage[key]
            if not search:
                break
            node = node._parent
        if default is _MISSING:
            raise StorageKeyError(f"{self.path}.fetch({key!r}): not found and no default given")
        if storeDefault:
            self.store(key, default)
        return default

    def unstore(self, *patterns):
        for key in list(self._storage):
            if any(fnmatch.fnmatchcase(str(key), str(p)) for p in patterns):
                del self._storage[key]

    # -- custom parameters (COMPs and Script operators) --------------------------
    def _require_custom_pars(self):
        raise TDError(f"{self.path}: only components and script operators have custom pages")

    def appendCustomPage(self, name):
        self._require_custom_pars()
        page = Page(self, str(name))
        self._custom_pages.append(page)
        return page

    @property
    def customPages(self):
        return list(self._custom_pages)

    def _remove_custom_par(self, par):
        self._pars._remove(par)
        page = par.page
        page._pars[:] = [p for p in page._pars if p is not par]

    # -- parameter events --------------------------------------------------------
    def _par_changed(self, par, prev):
        self._td._parameter_changed(par, prev)

    def _par_pulsed(self, par):
        self._td._parameter_pulsed(par)

    # -- lifetime ----------------------------------------------------------------
    def destroy(self):
        if self._parent is None:
            raise TDError("the root cannot be destroyed")
        self._before_destroy()
        path = self.path
        self._parent._detach_child(self)
        self._td._unregister(self)
        self._dead_path = path
        self._destroyed = True

    def _before_destroy(self):
        """Hook: children and extensions go first. Docked operators go with their host."""
        for docked in self.docked:
            docked.destroy()

    def _describe(self):
        """JSON-ready description used by COMP.save()."""
        info = {"type": self.OPType, "name": self._name, "path": self.path, "nodeX": self._nodeX,
                "nodeY": self._nodeY}
        builtin = {p.name: p.val for p in self._pars._all()
                   if not p.isCustom and p.val != p.default}
        if builtin:
            info["pars"] = builtin
        if self._custom_pages:
            info["customPars"] = [
                {"page": page.name, "name": p.name, "label": p.label, "style": p.style,
                 "value": p.val, "default": p.default, "readOnly": p.readOnly,
                 **({"menuNames": p.menuNames} if p.isMenu else {})}
                for page in self._custom_pages for p in page.pars
            ]
        if self._storage:
            info["storage"] = sorted(str(k) for k in self._storage)
        return info

    def __repr__(self):
        if self._destroyed:  # type(self): attribute reads on a deleted op raise
            return f"<{type(self).OPType} {self._dead_path} (deleted)>"
        return f"{self.OPType}:{self.path}"


class COMP(OP):
    """A component: holds children, custom pages, storage and extensions."""

    family = "COMP"
    isCOMP = True
    # The Extensions page. Current builds: a sequence whose first block is
    # ext0object / ext0name / ext0promote (only block 0 exists until a script adds
    # blocks). TD(legacy_extension_pars=True) models a 2020-era build instead:
    # extension1..4 / promoteextension1..4 and no ext0* parameters.
    EXTENSION_PARS = (("ext0object", "Str", ""), ("ext0name", "Str", ""), ("ext0promote", "Toggle", False))
    LEGACY_SLOTS = 4
    LEGACY_EXTENSION_PARS = tuple((f"extension{i}", "Str", "") for i in range(1, LEGACY_SLOTS + 1)) + tuple(
        (f"promoteextension{i}", "Toggle", False) for i in range(1, LEGACY_SLOTS + 1))
    COMMON_EXTENSION_PARS = (("initextonstart", "Toggle", False), ("reinitextensions", "Pulse", False))

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        self._children = {}
        self._extensions = []
        self._extension_names = {}  # id(extension) -> its ext0name, when set
        self._promoted = []
        self._extension_sources = []  # (Text DAT, text serial) each extension was made from
        self._initializing_extensions = False

    def _builtin_pars(self, td):
        own = self.LEGACY_EXTENSION_PARS if td._legacy_extension_pars else self.EXTENSION_PARS
        return self.BUILTIN_PARS + own + self.COMMON_EXTENSION_PARS

    def _lookup_base(self):
        return self

    def _require_custom_pars(self):
        pass

    # -- children ----------------------------------------------------------------
    def create(self, op_type, name=None):
        """As TD: a name in use gives the next numbered name ('values' -> 'values1',
        'text1' -> 'text2'), never an error; check the returned operator's name."""
        cls = self._td._op_class(op_type)
        if name is None:
            name = self._free_name(cls.short_type)
        _check_op_name(name)
        if name in self._children:
            name = self._next_numbered_name(name)
        child = cls(self._td, self, name)
        self._children[name] = child
        self._td._register(child)
        child._after_create()
        return child

    def copy(self, source, name=None, includeDocked=True):
        """Copies an operator (not a COMP) into this COMP: its built-in parameter
        values and contents. As TD, a copy is a creation: an Execute DAT copied
        with Create on runs onCreate()."""
        if not isinstance(source, OP) or not source.valid or source.isCOMP:
            raise TDError(f"{self.path}.copy({source!r}): the fake copies operators other than COMPs only")
        name = name or source.name
        if name in self._children:
            name = self._next_numbered_name(name)
        _check_op_name(name)
        copied = type(source)(self._td, self, name)
        self._children[name] = copied
        self._td._register(copied)
        for par in source._pars._all():
            if not par.isCustom and par.style != "Pulse":
                copied._pars._lookup(par.name)._value = par._value
        copied._copy_contents(source)
        copied._after_copy()
        return copied

    def _free_name(self, base):
        for n in itertools.count(1):
            if f"{base}{n}" not in self._children:
                return f"{base}{n}"

    def _next_numbered_name(self, name):
        match = TRAILING_DIGITS.fullmatch(name)
        base, n = (match.group(1), int(match.group(2)) + 1) if match else (name, 1)
        while f"{base}{n}" in self._children:
            n += 1
        return f"{base}{n}"

    def _rename_child(self, child, new_name):
        _check_op_name(new_name)
        if new_name in self._children and self._children[new_name] is not child:
            raise TDError(f"{self.path} already has a child named {new_name!r}")
        items = [(new_name if op is child else key, op) for key, op in self._children.items()]
        self._children = dict(items)
        child._name = new_name

    def _detach_child(self, child):
        del self._children[child._name]

    @property
    def children(self):
        return list(self._children.values())

    def _children_list(self):
        return list(self._children.values())

    def findChildren(self, name=None, type=None, depth=None, maxDepth=None, path=None):
        """Recursive search like TD's; name/path are glob patterns, type a class or type name."""
        found = []
        self._find(found, 1, name, type, depth, maxDepth, path)
        return found

    def _find(self, found, level, name, op_type, depth, max_depth, path):
        for child in self._children.values():
            if (depth is None or level == depth) and _matches(child, name, op_type, path):
                found.append(child)
            if child.isCOMP and (max_depth is None or level < max_depth) and (depth is None or level < depth):
                child._find(found, level + 1, name, op_type, depth, max_depth, path)

    def ops(self, *patterns):
        return [c for c in self._children.values()
                if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]

    def _before_destroy(self):
        self._destroy_extensions()
        for child in reversed(list(self._children.values())):
            if child.valid:  # a docked operator may have gone with its host
                child.destroy()
        super()._before_destroy()

    # -- extensions ----------------------------------------------------------------
    def attachExtension(self, obj, promote=True):
        """Test helper: attaches an extension object directly (TD's way is the
        Extensions page and initializeExtensions()); onInitTD follows at once."""
        self._attach(obj, promote, "")
        if hasattr(obj, "onInitTD"):
            self._td._call_user(self.path, "onInitTD", obj.onInitTD)
        return obj

    def _attach(self, obj, promote, name):
        self._extensions.append(obj)
        if name:
            self._extension_names[id(obj)] = name
        if promote:
            self._promoted.append(obj)

    def _extension_slots(self):
        """(object par, promote par, name par or None) for each extension slot."""
        if self._td._legacy_extension_pars:
            return [(f"extension{i}", f"promoteextension{i}", None) for i in range(1, self.LEGACY_SLOTS + 1)]
        return [("ext0object", "ext0promote", "ext0name")]

    def initializeExtensions(self, index=None):
        """As TD: onDestroyTD of the extensions it had, then each slot's object
        expression evaluated (me = this COMP, './x' = a child) and attached, and
        onInitTD of each only once all are attached. An extension is made again when
        a Text DAT its expression read changes (at the next use of the COMP's
        extensions). The fake re-initializes every slot whatever `index` says."""
        from .namespace import make_globals

        self._initializing_extensions = True
        try:
            self._destroy_extensions()
            made = []
            for object_par, promote_par, name_par in self._extension_slots():
                expression = self._pars._lookup(object_par).eval()
                if not expression:
                    continue
                namespace = make_globals(self)
                outer_op = namespace["op"]
                namespace["op"] = lambda path, *more: (
                    resolve(self, path) if isinstance(path, str) and path.startswith("./") else outer_op(path, *more))
                obj = self._td._call_user(self.path, object_par, self._evaluate_extension, expression, namespace)
                if obj is not None:
                    name = self._pars._lookup(name_par).eval() if name_par else ""
                    self._attach(obj, bool(self._pars._lookup(promote_par).eval()), name)
                    made.append(obj)
        finally:
            self._initializing_extensions = False
        for obj in made:
            if hasattr(obj, "onInitTD"):
                self._td._call_user(self.path, "onInitTD", obj.onInitTD)
        return self._extensions

    def _evaluate_extension(self, expression, namespace):
        reads = []
        outer, self._td._module_reads = self._td._module_reads, reads
        try:
            return eval(expression, namespace)
        finally:
            self._td._module_reads = outer
            self._extension_sources += [(dat, dat._text_serial) for dat in reads]

    def _refresh_extensions(self):
        """TD makes an extension again when its DAT changed, at the next use."""
        if self._initializing_extensions or not self._extension_sources:
            return
        if any(dat.valid and dat._text_serial != serial for dat, serial in self._extension_sources):
            self.initializeExtensions()

    def _destroy_extensions(self):
        for ext in list(self._extensions):
            if hasattr(ext, "onDestroyTD"):
                self._td._call_user(self.path, "onDestroyTD", ext.onDestroyTD)
        self._extensions.clear()
        self._extension_names.clear()
        self._promoted.clear()
        self._extension_sources = []

    def _par_pulsed(self, par):
        if par.name == "reinitextensions":
            self.initializeExtensions()
        super()._par_pulsed(par)

    @property
    def extensions(self):
        self._refresh_extensions()
        return list(self._extensions)

    @property
    def ext(self):
        self._refresh_extensions()
        return _ExtensionFinder(self)

    def __getattr__(self, name):
        if name[:1].isupper():
            self._refresh_extensions()
            for ext in self._promoted:
                if hasattr(ext, name):
                    return getattr(ext, name)
        raise AttributeError(f"'{self.OPType}' object has no attribute '{name}'")

    def _set_unknown_attribute(self, name, value):
        self._refresh_extensions()
        for ext in self._promoted:
            if name[:1].isupper() and hasattr(ext, name):
                setattr(ext, name, value)
                return
        super()._set_unknown_attribute(name, value)

    # -- save ----------------------------------------------------------------------
    def save(self, path, createFolders=False):
        """Writes a JSON description (the fake's .tox) and returns path.

        Storage is pickled into a real .tox, so an unpicklable value fails the save.
        """
        description = self._describe()
        try:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(description, handle, indent=2, sort_keys=True)
        except OSError as exc:
            raise TDError(f"{self.path}.save({path!r}) failed: {exc}") from exc
        return path

    def _describe(self):
        for op in [self] + self.findChildren():
            for key, value in op._storage.items():
                try:
                    pickle.dumps(value)
                except Exception as exc:
                    raise TDError(f"{op.path} storage {key!r} cannot be pickled: {exc}") from exc
        info = super()._describe()
        info["children"] = [child._describe() for child in self._children.values()]
        return info


class BaseCOMP(COMP):
    OPType = "baseCOMP"
    short_type = "base"


class ContainerCOMP(COMP):
    OPType = "containerCOMP"
    short_type = "container"


class _ExtensionFinder(TDObject):
    """comp.ext.ClassName -> the attached extension object of that class."""

    def __init__(self, comp):
        self._td = comp._td
        self._lifetime_owner = comp
        self._comp = comp

    def __getattr__(self, name):
        names = self._comp._extension_names
        for ext in self._comp._extensions:
            if names.get(id(ext), type(ext).__name__) == name:
                return ext
        raise AttributeError(f"{self._comp.path} has no extension {name!r}")


def _check_op_name(name):
    if not isinstance(name, str) or not OP_NAME.fullmatch(name):
        raise TDError(f"invalid operator name {name!r}")


def _matches(op, name, op_type, path):
    if name is not None and not fnmatch.fnmatchcase(op.name, name):
        return False
    if path is not None and not fnmatch.fnmatchcase(op.path, path):
        return False
    if op_type is None:
        return True
    if isinstance(op_type, str):
        return op.OPType == op_type
    return isinstance(op, op_type)


def resolve(base, path):
    """TD's op(): absolute or relative path (with . and ..), an OP, or None. Never raises."""
    if isinstance(path, OP):
        return path if path.valid else None
    if not isinstance(path, str) or base is None:
        return None
    node = base
    if path.startswith("/"):
        while node._parent is not None:
            node = node._parent
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            node = node._parent
        elif node.isCOMP:
            node = node._children.get(part)
        else:
            node = None
        if node is None:
            return None
    return node

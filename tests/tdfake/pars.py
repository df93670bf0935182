"""Parameters: Par, ParGroup, custom Pages and the op.par collection."""

import fnmatch
import re

from .errors import TDError
from .guard import TDObject

STYLES = ("Str", "Toggle", "Pulse", "Int", "Float", "Menu", "File", "Header", "OP")
_DEFAULTS = {"Str": "", "Toggle": False, "Pulse": False, "Int": 0, "Float": 0.0,
             "Menu": "", "File": "", "Header": "", "OP": ""}
CUSTOM_PAR_NAME = re.compile(r"[A-Z][a-z0-9]*")
_TRUE_WORDS = {"1", "true", "on", "yes"}
_FALSE_WORDS = {"0", "false", "off", "no", ""}


class Par(TDObject):
    """One parameter. Built-in pars have lowercase names; custom ones are capitalised.

    Style "OP" is the fake's name for TD's OP/DAT/CHOP/COMP reference pars: like TD,
    `.val` is the path string and `.eval()` is the operator (or None).
    """

    def __init__(self, owner, name, style, default=None, label=None, page=None,
                 custom=False, menu_names=()):
        if style not in STYLES:
            raise TDError(f"unknown parameter style {style!r}")
        self._td = owner._td
        self._lifetime_owner = owner
        self._owner = owner
        self._name = name
        self._label = label if label is not None else name
        self._style = style
        self._page = page
        self._custom = custom
        self._readOnly = False
        self._enable = True
        self._menuNames = list(menu_names)
        self._menuLabels = list(menu_names)
        self._default = self._coerce(_DEFAULTS[style] if default is None else default)
        self._value = self._default
        self._removed = False
        self._mode = _constant_mode()

    # -- identity ---------------------------------------------------------------
    name = property(lambda self: self._name)
    owner = property(lambda self: self._owner)
    style = property(lambda self: self._style)
    page = property(lambda self: self._page)
    isCustom = property(lambda self: self._custom)
    isPulse = property(lambda self: self._style == "Pulse")
    isToggle = property(lambda self: self._style == "Toggle")
    isString = property(lambda self: self._style in ("Str", "File", "Menu", "OP"))
    isNumber = property(lambda self: self._style in ("Int", "Float"))
    isMenu = property(lambda self: self._style == "Menu")
    isOP = property(lambda self: self._style == "OP")

    @property
    def valid(self):
        return not self._removed and self._owner.valid

    @property
    def label(self):
        return self._label

    @label.setter
    def label(self, value):
        self._label = str(value)

    @property
    def readOnly(self):
        return self._readOnly

    @readOnly.setter
    def readOnly(self, value):
        self._readOnly = bool(value)

    @property
    def enable(self):
        return self._enable

    @enable.setter
    def enable(self, value):
        self._enable = bool(value)

    @property
    def default(self):
        return self._default

    @default.setter
    def default(self, value):
        self._default = self._coerce(value)

    @property
    def menuNames(self):
        return list(self._menuNames)

    @menuNames.setter
    def menuNames(self, names):
        self._menuNames = [str(n) for n in names]
        if len(self._menuLabels) != len(self._menuNames):
            self._menuLabels = list(self._menuNames)
        if self._menuNames and self._value not in self._menuNames:
            self._value = self._menuNames[0]

    @property
    def menuLabels(self):
        return list(self._menuLabels)

    @menuLabels.setter
    def menuLabels(self, labels):
        self._menuLabels = [str(n) for n in labels]

    @property
    def menuIndex(self):
        return self._menuNames.index(self._value) if self._value in self._menuNames else 0

    @menuIndex.setter
    def menuIndex(self, index):
        self.val = self._menuNames[int(index)]

    # -- value ------------------------------------------------------------------
    @property
    def val(self):
        return self._value

    @val.setter
    def val(self, value):
        # TD lets Python set read-only parameters; readOnly only locks the UI.
        if self._style == "Header":
            raise TDError(f"{self._describe()} is a header and has no value")
        new = self._coerce(value)
        prev = self._value
        self._value = new
        if new != prev:
            self._owner._par_changed(self, prev)

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, value):
        from .namespace import ParMode

        if value is not ParMode.CONSTANT:
            raise TDError(f"{self._describe()}: the fake models constant parameters only, not {value!r}")
        self._mode = value

    def eval(self):
        if self._style == "OP":
            return self._owner.op(self._value) if self._value else None
        return self._value

    def pulse(self):
        if self._style != "Pulse":
            raise TDError(f"{self._describe()} is not a pulse parameter")
        self._owner._par_pulsed(self)

    def reset(self):
        self.val = self._default

    def destroy(self):
        if not self._custom:
            raise TDError(f"{self._describe()} is built in and cannot be destroyed")
        self._owner._remove_custom_par(self)
        self._removed = True

    def _coerce(self, value):
        style = self._style
        if isinstance(value, Par):
            value = value.eval()
        try:
            if style in ("Toggle", "Pulse"):
                return _to_bool(value)
            if style == "Int":
                return int(float(value)) if isinstance(value, str) else int(value)
            if style == "Float":
                return float(value)
            if style == "Menu":
                return self._menu_value(value)
            if style == "OP":
                return value.path if hasattr(value, "OPType") else str(value)
            return str(value)
        except (TypeError, ValueError) as exc:
            raise TDError(f"{self._describe()}: cannot set {style} parameter to {value!r}") from exc

    def _menu_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool) and self._menuNames:
            return self._menuNames[value]
        value = str(value)
        if self._menuNames and value not in self._menuNames:
            raise TDError(f"{self._describe()}: {value!r} is not one of {self._menuNames}")
        return value

    def _describe(self):
        return f"{self._owner.path}:{self._name}"

    # -- Python protocol: a Par behaves like its evaluated value ----------------
    def __bool__(self):
        return bool(self.eval())

    def __str__(self):
        return str(self.eval())

    def __int__(self):
        return int(self.eval())

    def __float__(self):
        return float(self.eval())

    def __eq__(self, other):
        if isinstance(other, Par):
            other = other.eval()
        return self.eval() == other

    def __ne__(self, other):
        return not self.__eq__(other)

    def __lt__(self, other):
        return self.eval() < (other.eval() if isinstance(other, Par) else other)

    def __le__(self, other):
        return self.eval() <= (other.eval() if isinstance(other, Par) else other)

    def __gt__(self, other):
        return self.eval() > (other.eval() if isinstance(other, Par) else other)

    def __ge__(self, other):
        return self.eval() >= (other.eval() if isinstance(other, Par) else other)

    __hash__ = object.__hash__

    def __repr__(self):
        try:
            return f"type:Par name:{self._name} owner:{self._owner.path} value:{self._value!r}"
        except TDError:
            return f"type:Par name:{self._name} (owner deleted)"


def _constant_mode():
    from .namespace import ParMode

    return ParMode.CONSTANT


def _to_bool(value):
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise ValueError(value)
    return bool(value)


class ParGroup(TDObject):
    """What Page.append*() returns: a tuple-like group; [0] is the Par.

    As in TD 2025, the value-like members are tuples with one item per parameter
    (`group.val == ("x",)`, `group.readOnly == (True,)`, `bool((False,))` is
    True): use `group[0]` for one parameter. Setting `val` or `default` takes a
    tuple of that length; `readOnly` and `enable` also take one bool for all.
    """

    def __init__(self, pars):
        self._td = pars[0]._td
        self._lifetime_owner = pars[0]._lifetime_owner
        self._pars = tuple(pars)

    def __getitem__(self, index):
        return self._pars[index]

    def __len__(self):
        return len(self._pars)

    def __iter__(self):
        return iter(self._pars)

    name = property(lambda self: self._pars[0].name)
    style = property(lambda self: self._pars[0].style)
    owner = property(lambda self: self._pars[0].owner)
    page = property(lambda self: self._pars[0].page)

    @property
    def label(self):
        return self._pars[0].label

    @label.setter
    def label(self, value):
        for par in self._pars:
            par.label = value

    def eval(self):
        return tuple(par.eval() for par in self._pars)

    def pulse(self):
        self._pars[0].pulse()

    def _set_each(self, attr, values):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != len(self._pars):
            raise TDError(
                f"{self._pars[0]._describe()}: ParGroup.{attr} takes a tuple of {len(self._pars)} value(s), "
                f"not {values!r} (use group[0].{attr} for one parameter)"
            )
        for par, value in zip(self._pars, values):
            setattr(par, attr, value)

    def __repr__(self):
        return f"type:ParGroup name:{self._pars[0].name}"


def _tuple_property(attr, one_for_all):
    def getter(self):
        return tuple(getattr(par, attr) for par in self._pars)

    def setter(self, value):
        if one_for_all and isinstance(value, (bool, int)):
            for par in self._pars:
                setattr(par, attr, value)
        else:
            self._set_each(attr, value)

    return property(getter, setter)


for _attr, _one_for_all in (("val", False), ("default", False), ("menuNames", False), ("menuLabels", False),
                            ("readOnly", True), ("enable", True)):
    setattr(ParGroup, _attr, _tuple_property(_attr, _one_for_all))


class Page(TDObject):
    """A custom parameter page (comp.appendCustomPage)."""

    def __init__(self, owner, name):
        self._td = owner._td
        self._lifetime_owner = owner
        self._owner = owner
        self._name = name
        self._pars = []

    name = property(lambda self: self._name)
    owner = property(lambda self: self._owner)
    isCustom = property(lambda self: True)

    @property
    def pars(self):
        return list(self._pars)

    @property
    def index(self):
        return self._owner.customPages.index(self)

    def appendStr(self, name, label=None, replace=False):
        return self._append(name, "Str", label, replace)

    def appendToggle(self, name, label=None, replace=False):
        return self._append(name, "Toggle", label, replace)

    def appendPulse(self, name, label=None, replace=False):
        return self._append(name, "Pulse", label, replace)

    def appendInt(self, name, label=None, size=1, replace=False):
        return self._append(name, "Int", label, replace, size)

    def appendFloat(self, name, label=None, size=1, replace=False):
        return self._append(name, "Float", label, replace, size)

    def appendMenu(self, name, label=None, replace=False):
        return self._append(name, "Menu", label, replace)

    def appendFile(self, name, label=None, replace=False):
        return self._append(name, "File", label, replace)

    def appendHeader(self, name, label=None, replace=False):
        return self._append(name, "Header", label, replace)

    def destroy(self):
        for par in list(self._pars):
            par.destroy()
        self._owner._custom_pages.remove(self)

    def _append(self, name, style, label, replace, size=1):
        # TD's own default is replace=True; the fake refuses duplicates unless asked,
        # so setup code that runs twice by accident is caught.
        if size != 1:
            raise TDError("the fake supports only size=1 parameters")
        if not isinstance(name, str) or not CUSTOM_PAR_NAME.fullmatch(name):
            raise TDError(
                f"invalid custom parameter name {name!r}: "
                "a capital letter followed by lowercase letters or digits"
            )
        pars = self._owner.par
        existing = pars._lookup(name)
        if existing is not None:
            if not replace:
                raise TDError(f"{self._owner.path} already has a parameter named {name!r}")
            existing.destroy()
        par = Par(self._owner, name, style, label=label, page=self, custom=True)
        self._pars.append(par)
        pars._add(par)
        return ParGroup([par])

    def __repr__(self):
        return f"type:Page name:{self._name}"


class ParCollection(TDObject):
    """op.par: attribute access to parameters; unknown names raise AttributeError."""

    def __init__(self, owner):
        self._td = owner._td
        self._lifetime_owner = owner
        self._owner = owner
        self._by_name = {}

    def _add(self, par):
        self._by_name[par.name] = par

    def _remove(self, par):
        del self._by_name[par.name]

    def _lookup(self, name):
        return self._by_name.get(name)

    def _all(self):
        unique = []  # aliases (Constant CHOP name0 -> const0name) map to the same Par
        for par in self._by_name.values():
            if not any(p is par for p in unique):
                unique.append(par)
        return unique

    def __getattr__(self, name):
        par = self._by_name.get(name) if not name.startswith("_") else None
        if par is None:
            raise AttributeError(f"{self._owner.path} has no parameter {name!r}")
        return par

    def _set_unknown_attribute(self, name, value):
        par = self._by_name.get(name)
        if par is None:
            raise AttributeError(f"{self._owner.path} has no parameter {name!r}")
        par.val = value

    def __getitem__(self, name):
        """op.par['name']: the Par, or None when there is none (documented)."""
        return self._by_name.get(name) if isinstance(name, str) else None

    def __iter__(self):
        return iter(self._all())

    def __repr__(self):
        return f"type:ParCollection owner:{self._owner.path}"


def match_pars(pars, pattern):
    """TD pattern: space-separated glob patterns, case-sensitive."""
    patterns = str(pattern).split() or ["*"]
    return [p for p in pars if any(fnmatch.fnmatchcase(p.name, pat) for pat in patterns)]

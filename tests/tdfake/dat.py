"""DATs: Text DAT (and modules), Table DAT, and the three callback DATs."""

import collections
import linecache
import types

from .errors import TDError
from .guard import TDObject
from .namespace import make_globals
from .ops import OP
from .pars import match_pars


class DAT(OP):
    family = "DAT"
    isDAT = True

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        self._change_serial = 0  # bumped on every content change; DAT Execute compares it

    def _mark_changed(self):
        self._change_serial += 1


# ---------------------------------------------------------------------------- text
class TextDAT(DAT):
    """Free text; usable as a Python module (op('X').module, mod.X, import X)."""

    OPType = "textDAT"
    short_type = "text"
    _is_module_dat = True
    module_runs = 0

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        self._text = ""
        self._text_serial = 0
        self._module = None
        self._module_serial = -1
        self._module_in_progress = None
        self._failed_serial = -1

    @property
    def text(self):
        return self._text

    @text.setter
    def text(self, value):
        # Every assignment counts as a change (stricter than comparing): the next
        # module access re-runs the file in a fresh namespace.
        self._text = str(value)
        self._text_serial += 1
        self._mark_changed()

    def _copy_contents(self, source):
        self.text = source.text

    def write(self, *args):
        self.text = self._text + "".join(str(a) for a in args)

    def clear(self):
        self.text = ""

    @property
    def numRows(self):
        return len(self._text.splitlines())

    @property
    def numCols(self):
        return max((len(line) for line in self._text.splitlines()), default=0)

    # -- modules ----------------------------------------------------------------
    @property
    def module(self):
        """The module of this DAT's text: cached until the text changes. Errors propagate."""
        if self._module_in_progress is not None:  # circular import: hand out the partial module
            return self._module_in_progress
        if self._module is not None and self._module_serial == self._text_serial:
            if self._td._module_reads is not None:
                self._td._module_reads.append(self)
            return self._module
        serial = self._text_serial
        if self._td._module_reads is not None:
            self._td._module_reads.append(self)
        module = types.ModuleType(self._name)
        module.__dict__.update(make_globals(self))
        self.module_runs += 1
        self._module_in_progress = module
        try:
            code = self._compile()
            self._td._call_user(self.path, "<module>", exec, code, module.__dict__, propagate=True)
        finally:
            self._module_in_progress = None
        self._module, self._module_serial = module, serial
        return module

    def _callbacks_module(self):
        """The module for calling callbacks: a failing text is reported once, then skipped."""
        if self._failed_serial == self._text_serial:
            return None
        try:
            return self.module
        except Exception as exc:
            self._failed_serial = self._text_serial
            self._td._runner.record_error(self.path, "<module>", exc)
            return None

    def _compile(self):
        filename = self.path
        lines = self._text.splitlines(keepends=True)
        # Registered so tracebacks show the DAT's source lines, as TD's textport does.
        linecache.cache[filename] = (len(self._text), None, lines, filename)
        return compile(self._text, filename, "exec")

    def _describe(self):
        info = super()._describe()
        info["text"] = self._text
        return info

    def run(self, *args, delayFrames=0, delayMilliSeconds=0, fromOP=None):
        """Run the text as a script with `args` defined (TD's DAT.run)."""
        source = fromOP if fromOP is not None else self

        def job():
            namespace = make_globals(source)
            namespace["args"] = args
            exec(self._compile(), namespace)

        if delayFrames or delayMilliSeconds:
            return self._td._schedule(self.path, "run", job, delayFrames, delayMilliSeconds)
        self._td._call_user(self.path, "run", job)
        return None


class CallbackDAT(TextDAT):
    """A DAT whose text holds callbacks TD calls; `par.active` gates all of them."""

    BUILTIN_PARS = (("active", "Toggle", True),)

    def _invoke(self, callback_name, *args):
        if not self.par.active.eval():
            return
        module = self._callbacks_module()
        fn = getattr(module, callback_name, None) if module is not None else None
        if callable(fn):
            # Called with exactly TD's arguments: a wrong signature is an error, as in TD.
            self._td._call_user(self.path, callback_name, fn, *args)


class ExecuteDAT(CallbackDAT):
    """onStart(), onCreate(), onFrameStart(frame), ...: each runs only while its
    toggle is on, and a new Execute DAT has every toggle off (as in TD)."""

    OPType = "executeDAT"
    short_type = "execute"
    TOGGLES = {"onStart": "start", "onCreate": "create", "onExit": "exit", "onFrameStart": "framestart",
               "onFrameEnd": "frameend", "onPlayStateChange": "playstatechange",
               "onDeviceChange": "devicechange", "onProjectPreSave": "projectpresave",
               "onProjectPostSave": "projectpostsave"}
    BUILTIN_PARS = CallbackDAT.BUILTIN_PARS + tuple((toggle, "Toggle", False) for toggle in TOGGLES.values())

    def _after_copy(self):
        self._invoke("onCreate")

    def _invoke(self, callback_name, *args):
        toggle = self.TOGGLES.get(callback_name)
        if toggle is not None and not self._pars._lookup(toggle).eval():
            return
        super()._invoke(callback_name, *args)


ParChange = collections.namedtuple("ParChange", "par prev")


class ParameterExecuteDAT(CallbackDAT):
    """onValueChange(par, prev) and onPulse(par) at once, onValuesChanged(changes)
    at the end of the frame with every change of that frame, for the parameters of
    `par.op` matching `par.pars` (custom and/or built-in).

    TD does not document the defaults of pars/custom/builtin/valuechange/onpulse/
    valueschanged, so the fake starts them where relying on a default goes wrong
    for a watcher of custom parameters: pars empty, custom, valuechange and onpulse
    off, builtin and valueschanged on. Code that creates one must set every one.
    """

    OPType = "parameterexecuteDAT"
    short_type = "parameterexecute"
    BUILTIN_PARS = CallbackDAT.BUILTIN_PARS + (
        ("op", "OP", ""),
        ("pars", "Str", ""),
        ("custom", "Toggle", False),
        ("builtin", "Toggle", True),
        ("valuechange", "Toggle", False),
        ("valueschanged", "Toggle", True),
        ("onpulse", "Toggle", False),
    )

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        self._frame_changes = []

    def _watches(self, par):
        owners = [self.op(path) for path in self.par.op.val.split()]
        kind_on = self.par.custom.eval() if par.isCustom else self.par.builtin.eval()
        return kind_on and any(o is par.owner for o in owners) and bool(match_pars([par], self.par.pars.val))

    def _value_changed(self, par, prev):
        if not (self.par.active.eval() and self._watches(par)):
            return
        if self.par.valuechange.eval():
            self._invoke("onValueChange", par, prev)
        if self.par.valueschanged.eval():
            self._frame_changes.append(ParChange(par, prev))

    def _report_values_changed(self):
        changes, self._frame_changes = self._frame_changes, []
        if changes and self.par.active.eval():
            self._invoke("onValuesChanged", changes)

    def _pulsed(self, par):
        if self.par.active.eval() and self.par.onpulse.eval() and self._watches(par):
            self._invoke("onPulse", par)


class DatExecuteDAT(CallbackDAT):
    """Calls onTableChange at frame end when the watched DAT changed.

    With (dat) before TD 2025.30000 and (dat, prevDAT, info) from it on, so a
    handler written without `*rest` fails under one of the two. The fake passes
    None for prevDAT and info: code must not rely on them.
    """

    OPType = "datexecuteDAT"
    short_type = "datexecute"
    BUILTIN_PARS = CallbackDAT.BUILTIN_PARS + (("dat", "OP", ""),)

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        self._seen_serials = {}  # watched DAT id -> _change_serial last reported

    def _par_changed(self, par, prev):
        if par is self.par.dat:
            target = par.eval()
            if target is not None and target.isDAT:
                self._seen_serials[target.id] = target._change_serial
        super()._par_changed(par, prev)

    def _report_changes(self):
        target = self.par.dat.eval()
        if target is None or not target.isDAT:
            return
        seen = self._seen_serials.get(target.id)
        self._seen_serials[target.id] = target._change_serial
        if seen is not None and seen != target._change_serial:
            extra = (None, None) if self._td._build_at_least(2025, 30000) else ()
            self._invoke("onTableChange", target, *extra)


# --------------------------------------------------------------------------- table
class Cell(TDObject):
    """A table cell reference: (table, row, col). Reads the table at use time."""

    def __init__(self, table, row, col):
        self._td = table._td
        self._lifetime_owner = table
        self._table = table
        self._row = row
        self._col = col

    row = property(lambda self: self._row)
    col = property(lambda self: self._col)
    owner = property(lambda self: self._table)

    @property
    def val(self):
        return self._table._cell_value(self._row, self._col)

    @val.setter
    def val(self, value):
        self._table._set_cell(self._row, self._col, value)

    def __str__(self):
        return self.val

    def __int__(self):
        return int(self.val)

    def __float__(self):
        return float(self.val)

    def __eq__(self, other):
        return self.val == (other.val if isinstance(other, Cell) else other)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = object.__hash__

    def __repr__(self):
        return f"type:Cell cell:({self._row}, {self._col}) owner:{self._table.path}"


class TableDAT(DAT):
    """Rows of string cells, always rectangular (short rows padded with "")."""

    OPType = "tableDAT"
    short_type = "table"
    op_counts = None

    def __init__(self, td, parent, name):
        super().__init__(td, parent, name)
        self._rows = []
        self._ncols = 0
        self.op_counts = {}

    # -- bookkeeping ------------------------------------------------------------
    def _changed(self, operation):
        self.op_counts[operation] = self.op_counts.get(operation, 0) + 1
        if not self._rows:
            self._ncols = 0
        self._mark_changed()

    def _make_row(self, vals):
        if isinstance(vals, (str, bytes)) or not hasattr(vals, "__iter__"):
            vals = [vals]
        row = [str(v) for v in vals]
        if len(row) > self._ncols:
            for existing in self._rows:
                existing.extend([""] * (len(row) - self._ncols))
            self._ncols = len(row)
        return row + [""] * (self._ncols - len(row))

    def _row_index(self, name_or_index, allow_end=False):
        """Row number for an int or a name in column 0; TDError if there is none."""
        if isinstance(name_or_index, str):
            for i, row in enumerate(self._rows):
                if row and row[0] == name_or_index:
                    return i
            raise TDError(f"{self.path}: no row named {name_or_index!r}")
        index = int(name_or_index)
        limit = len(self._rows) + (1 if allow_end else 0)
        if not 0 <= index < limit:
            raise TDError(f"{self.path}: row {index} out of range (numRows {len(self._rows)})")
        return index

    def _col_index(self, name_or_index):
        """Column number for an int or a name in row 0; None if there is none."""
        if isinstance(name_or_index, str):
            if self._rows and name_or_index in self._rows[0]:
                return self._rows[0].index(name_or_index)
            return None
        index = int(name_or_index)
        return index if 0 <= index < self._ncols else None

    def _lookup(self, r, c):
        if isinstance(r, str):
            r = next((i for i, row in enumerate(self._rows) if row and row[0] == r), None)
        elif not 0 <= int(r) < len(self._rows):
            r = None
        c = self._col_index(c)
        return (None, None) if r is None or c is None else (int(r), c)

    # -- size -------------------------------------------------------------------
    @property
    def numRows(self):
        return len(self._rows)

    @property
    def numCols(self):
        return self._ncols

    def setSize(self, numrows, numcols):
        numrows, numcols = int(numrows), int(numcols)
        self._rows = [(row + [""] * numcols)[:numcols] for row in self._rows[:numrows]]
        self._rows += [[""] * numcols for _ in range(numrows - len(self._rows))]
        self._ncols = numcols if numrows else 0
        self._changed("setSize")

    # -- rows ---------------------------------------------------------------------
    def appendRow(self, vals=(), nameOrIndex=None, sort=None):
        self._rows.append(self._make_row(vals))
        self._changed("appendRow")
        return len(self._rows) - 1

    def appendRows(self, rows):
        for vals in rows:
            self._rows.append(self._make_row(vals))
        self._changed("appendRows")
        return len(self._rows) - 1

    def insertRow(self, vals=(), nameOrIndex=0, sort=None):
        index = self._row_index(nameOrIndex, allow_end=True)
        self._rows.insert(index, self._make_row(vals))
        self._changed("insertRow")
        return index

    def replaceRow(self, nameOrIndex, vals=(), entireRow=True):
        index = self._row_index(nameOrIndex)
        row = self._make_row(vals)
        if not entireRow:
            given = len(vals) if hasattr(vals, "__len__") and not isinstance(vals, str) else 1
            row = row[:given] + self._rows[index][given:]
        self._rows[index] = row
        self._changed("replaceRow")
        return index

    def deleteRow(self, nameOrIndex):
        index = self._row_index(nameOrIndex)
        del self._rows[index]
        self._changed("deleteRow")
        return index

    def deleteRows(self, vals=()):
        """Deletes rows one at a time, each index or name read against the table as
        it is at that moment. TD does not document whether the indices refer to the
        table before or during the deletion; this is the reading under which an
        ascending list deletes the wrong rows (descending is right under both)."""
        for name_or_index in list(vals):
            del self._rows[self._row_index(name_or_index)]
        self._changed("deleteRows")

    def clear(self, keepSize=False, keepFirstRow=False, keepFirstCol=False):
        if keepSize:
            self._rows = [[""] * self._ncols for _ in self._rows]
        else:
            self._rows = self._rows[:1] if keepFirstRow else []
            if keepFirstCol:
                self._rows = [row[:1] for row in self._rows]
                self._ncols = min(self._ncols, 1)
        self._changed("clear")

    # -- cells ----------------------------------------------------------------------
    def __getitem__(self, key):
        r, c = key
        r, c = self._lookup(r, c)
        return None if r is None else Cell(self, r, c)

    def __setitem__(self, key, value):
        r, c = key
        found = self._lookup(r, c)
        if found[0] is None:
            raise TDError(f"{self.path}[{r!r}, {c!r}]: no such cell")
        self._set_cell(found[0], found[1], value)

    def cell(self, r, c):
        return self[r, c]

    def _cell_value(self, r, c):
        if not (0 <= r < len(self._rows) and 0 <= c < self._ncols):
            raise TDError(f"{self.path}: cell ({r}, {c}) no longer exists")
        return self._rows[r][c]

    def _set_cell(self, r, c, value):
        self._cell_value(r, c)
        self._rows[r][c] = str(value)
        self._changed("setCell")

    def row(self, nameOrIndex):
        r, _ = self._lookup(nameOrIndex, 0) if self._ncols else (None, None)
        return None if r is None else [Cell(self, r, c) for c in range(self._ncols)]

    def col(self, nameOrIndex):
        c = self._col_index(nameOrIndex)
        return None if c is None else [Cell(self, r, c) for r in range(len(self._rows))]

    def rows(self, *nameOrIndexes):
        indexes = [self._row_index(n) for n in nameOrIndexes] or range(len(self._rows))
        return [[Cell(self, r, c) for c in range(self._ncols)] for r in indexes]

    def cols(self, *nameOrIndexes):
        indexes = [self._col_index(n) for n in nameOrIndexes] or range(self._ncols)
        return [[Cell(self, r, c) for r in range(len(self._rows))] for c in indexes if c is not None]

    def _copy_contents(self, source):
        self._rows = [list(row) for row in source._rows]
        self._ncols = source._ncols

    # -- text -----------------------------------------------------------------------
    @property
    def text(self):
        return "".join("\t".join(row) + "\n" for row in self._rows)

    @text.setter
    def text(self, value):
        self._rows, self._ncols = [], 0
        for line in str(value).splitlines():
            self._rows.append(self._make_row(line.split("\t")))
        self._changed("text")

    def _describe(self):
        info = super()._describe()
        info["table"] = [list(row) for row in self._rows]
        return info

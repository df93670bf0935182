"""DataNet for TouchDesigner: the Python side of the native DataNet client.

Paste this file into a Text DAT named ``DataNet``. Then, from any DAT:

    dn = op('DataNet').module          # or: op('DataNet').module.datanet
    dn.connect('ak_your_key')          # returns at once; connects in the background
    dn.subscribe('project.abc.sensor', lambda channel, data, from_, ts: print(data))
    dn.subscribe('project.abc.knob', on_knob, latest=True)   # newest per frame only

and poll once per frame from an Execute DAT:

    def onFrameStart(frame):
        dn = op('DataNet').module
        dn.poll()
        dn.update_table(op('messages'))
        if dn.values_changed():
            op('values').cook(force=True)

The socket lives in the native library on its own thread; this module only makes
one library call per frame to drain a batch of events, turns a frame's JSON
messages into Python objects with one C-level call (a data-only pickle the library
writes), and dispatches the Python
callbacks on the calling (main) thread. Channels without callbacks cost nothing
per message here: the table rows and CHOP values come from the library, already
prepared. It uses the standard library and ctypes only (numpy when present),
starts no threads, and never lets the library call back into Python.
"""

import builtins
import ctypes
import json
import math
import os
import pickle
import re
import struct
import sys
import traceback
import types

__version__ = "0.1.0"

#: The C ABI this file speaks (``DN_ABI_VERSION`` in include/datanet.h).
ABI_VERSION = 4

DEFAULT_API_URL = "https://api.datanet.art"
DEFAULT_WS_URL = "wss://ws.datanet.art"

# Result codes and record layout of include/datanet.h.
_OK = 0
_ERR_BUFFER_TOO_SMALL = -5
_ERR_NOT_FOUND = -6
_ERROR_CODES = {
    -1: "null_pointer",
    -2: "invalid_handle",
    -3: "invalid_utf8",
    -4: "invalid_argument",
    -5: "buffer_too_small",
    -6: "not_found",
    -7: "internal_error",
}
_EVENT_JSON, _EVENT_BINARY, _EVENT_CONNECTED, _EVENT_DISCONNECTED = 1, 2, 3, 4
_EVENT_ERROR, _EVENT_SUB_ACK, _EVENT_PRESENCE, _EVENT_MESSAGES_PICKLE = 5, 6, 7, 9
_FLAG_RAW, _FLAG_ERROR = 1, 2
_POLL_GROUP_PICKLE = 2
_DELIVER_EVERY, _DELIVER_LATEST, _DELIVER_STORE_ONLY = 0, 1, 2
_HEADER = struct.Struct("<IBBHqIIIIII")
_GENERATION_NONE = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1
_ROW_SEPARATOR, _CELL_SEPARATOR = "\x1e", "\x1f"

EVENTS = ("connect", "disconnect", "error", "presence")
TABLE_HEADER = ["channel", "data", "from", "timestamp"]

# Everything that must survive TouchDesigner re-running this file when its text
# changes: the loaded library, the native handles, and every instance's callbacks.
# A re-run re-attaches to it instead of opening a second connection.
_RUNTIME_KEY = "_datanet_td_runtime"
_runtime = sys.modules.get(_RUNTIME_KEY)
if _runtime is None:
    _runtime = types.ModuleType(_RUNTIME_KEY)
    _runtime.libraries = {}  # path -> ctypes.CDLL
    _runtime.instances = {}  # instance name -> state dict
    sys.modules[_RUNTIME_KEY] = _runtime


class DataNetError(Exception):
    """A DataNet error with every field the gateway or the client can attach."""

    FIELDS = ("code", "message", "channel", "operation", "required", "retry_ms", "scope", "limit", "status")

    def __init__(self, code, message="", channel=None, operation=None, required=None, retry_ms=None,
                 scope=None, limit=None, status=None):
        super().__init__("%s: %s" % (code, message) if message else code)
        self.code = code
        self.message = message
        self.channel = channel
        self.operation = operation
        self.required = required
        self.retry_ms = retry_ms
        self.scope = scope
        self.limit = limit
        self.status = status

    @classmethod
    def from_dict(cls, fields):
        known = {k: fields.get(k) for k in cls.FIELDS}
        known["code"] = known["code"] or "gateway_error"
        known["message"] = known["message"] or ""
        return cls(**known)

    def to_dict(self):
        return {k: getattr(self, k) for k in self.FIELDS}


_UNPARSED = object()


class Message:
    """One received message. ``data`` is the JSON value (parsed on first access)
    or the bytes of a binary message."""

    __slots__ = ("kind", "channel", "from_", "timestamp", "content_type", "metadata", "raw", "_payload", "_value")

    def __init__(self, kind, channel, from_, timestamp, payload, content_type=None, metadata=None, raw=False,
                 value=_UNPARSED):
        # ``value``: the JSON value when it was already parsed.
        self.kind = kind
        self.channel = channel
        self.from_ = from_
        self.timestamp = timestamp
        self.content_type = content_type
        self.metadata = metadata
        self.raw = raw
        self._payload = payload
        self._value = value

    @property
    def data(self):
        if self.kind == "binary":
            return self._payload
        if self._value is _UNPARSED:
            self._value = json.loads(self._payload)
        return self._value

    @property
    def text(self):
        """The JSON text exactly as the publisher sent it (JSON messages only)."""
        return self._payload if self.kind == "json" else None

    @property
    def bytes(self):
        return len(self._payload) if self.kind == "binary" else len(self._payload.encode("utf-8"))

    def meta(self):
        """The binary metadata dict of the official SDK's handlers."""
        return {"channel": self.channel, "from": self.from_, "timestamp": self.timestamp,
                "content_type": self.content_type, "bytes": self.bytes, "metadata": self.metadata}

    def __repr__(self):
        return "Message(%s %s from %s at %s)" % (self.kind, self.channel, self.from_, self.timestamp)


def _shared_struct(cls):
    """The loaded library's signatures name its structure classes, and ctypes
    refuses a look-alike: every run of this file must use the classes of the run
    that loaded the library, so they are kept in the runtime."""
    return _runtime.__dict__.setdefault("struct_" + cls.__name__, cls)


@_shared_struct
class _ValuesInfo(ctypes.Structure):
    _fields_ = [("generation", ctypes.c_uint64), ("version", ctypes.c_uint64),
                ("count", ctypes.c_uint64), ("names_len", ctypes.c_uint64)]


@_shared_struct
class _PollInfo(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint64), ("events", ctypes.c_uint32), ("records", ctypes.c_uint32),
                ("pending", ctypes.c_uint64), ("values_version", ctypes.c_uint64), ("row_seq", ctypes.c_uint64)]


@_shared_struct
class _RowsInfo(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint64), ("rows", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("newest_seq", ctypes.c_uint64), ("skipped", ctypes.c_uint64)]


@_shared_struct
class _ArtDmx(ctypes.Structure):
    _fields_ = [("universe", ctypes.c_uint8), ("subnet", ctypes.c_uint8), ("net", ctypes.c_uint8),
                ("sequence", ctypes.c_uint8), ("physical", ctypes.c_uint8), ("reserved", ctypes.c_uint8),
                ("port_address", ctypes.c_uint16), ("length", ctypes.c_uint32)]


# ---------------------------------------------------------------------------
# Loading the native library


def library_file_parts():
    """(stem, suffix) of the library file on this OS."""
    if sys.platform.startswith("win"):
        return "datanet", ".dll"
    if sys.platform == "darwin":
        return "libdatanet", ".dylib"
    return "libdatanet", ".so"


def td_project_folder():
    project = globals().get("project") or getattr(builtins, "project", None)
    if project is None:
        project = getattr(sys.modules.get("td"), "project", None)
    return getattr(project, "folder", None) or None


def _candidate_paths(lib_path):
    """Full paths to try, in order. Only full paths: Windows' ctypes no longer
    searches PATH or the working directory."""
    if lib_path:
        return [os.path.abspath(lib_path)]
    stem, suffix = library_file_parts()
    folders = []
    if os.environ.get("DATANET_LIB"):
        return [os.path.abspath(os.environ["DATANET_LIB"])]
    folder = td_project_folder()
    if folder:
        folders.append(folder)
    here = globals().get("__file__")
    if here:
        here = os.path.dirname(os.path.abspath(here))
        folders += [here, os.path.join(here, "target", "release")]
    paths = []
    for folder in folders:
        paths.append(os.path.join(folder, stem + suffix))
        # setup_packages.py copies the library under a versioned name, because
        # Windows locks a loaded DLL: prefer the newest copy.
        try:
            versioned = [os.path.join(folder, f) for f in os.listdir(folder)
                         if f.startswith(stem + "-") and f.endswith(suffix)]
        except OSError:
            versioned = []
        paths[-1:-1] = sorted(versioned, key=os.path.getmtime, reverse=True)
    return paths


def _declare(lib):
    c = ctypes
    u64, i32, i64, size, text = c.c_uint64, c.c_int32, c.c_int64, c.c_size_t, c.c_char_p
    signatures = {
        "dn_version": (text, []),
        "dn_abi_version": (c.c_uint32, []),
        "dn_last_error": (i32, [c.c_void_p, size, c.POINTER(size)]),
        "dn_client_new": (i32, [text, c.POINTER(u64)]),
        "dn_client_free": (i32, [u64]),
        "dn_connect": (i32, [u64]),
        "dn_disconnect": (i32, [u64]),
        "dn_subscribe": (i32, [u64, text]),
        "dn_unsubscribe": (i32, [u64, text]),
        "dn_set_delivery": (i32, [u64, text, c.c_uint32]),
        "dn_publish_json": (i32, [u64, text, text]),
        "dn_publish_binary": (i32, [u64, text, c.c_char_p, size, text, text]),
        "dn_poll": (i32, [u64, c.c_void_p, size, c.c_uint32, c.c_uint32, c.POINTER(_PollInfo)]),
        "dn_rows": (i32, [u64, u64, c.c_uint32, c.c_void_p, size, c.POINTER(_RowsInfo)]),
        "dn_values": (i32, [u64, u64, c.POINTER(c.c_double), size, c.c_void_p, size, c.POINTER(_ValuesInfo)]),
        "dn_value": (i32, [u64, text, text, c.POINTER(c.c_double)]),
        "dn_last_message": (i32, [u64, text, c.c_void_p, size, c.POINTER(size)]),
        "dn_status": (i32, [u64, c.c_void_p, size, c.POINTER(size)]),
        "dn_request_presence": (i32, [u64, text]),
        "dn_build_dmx_frame": (i32, [c.POINTER(c.c_double), size, i64, c.c_void_p, size, c.POINTER(size)]),
        "dn_build_art_dmx_packet": (i32, [c.c_char_p, size, i64, i64, i64, i64, i64, c.c_void_p, size,
                                          c.POINTER(size)]),
        "dn_decode_art_dmx": (i32, [c.c_char_p, size, c.POINTER(_ArtDmx), c.c_void_p, size, c.POINTER(size)]),
        "dn_base64_encode": (i32, [c.c_char_p, size, c.c_void_p, size, c.POINTER(size)]),
        "dn_base64_decode": (i32, [text, c.c_void_p, size, c.POINTER(size)]),
        "dn_stream_json": (i32, [u64, text, text, c.c_double]),
        "dn_stream_dmx": (i32, [u64, text, c.POINTER(c.c_double), size, i64, text, c.c_double]),
        "dn_stream_artnet": (i32, [u64, text, c.POINTER(c.c_double), size, i64, i64, i64, i64, text, c.c_double]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


def load_library(lib_path=None):
    """Loads (once per process) and checks the native library; returns it."""
    tried = []
    for path in _candidate_paths(lib_path):
        if path in _runtime.libraries:
            return _runtime.libraries[path]
        if not os.path.isfile(path):
            tried.append(path)
            continue
        try:
            lib = ctypes.CDLL(path)
            abi = lib.dn_abi_version()
        except (OSError, AttributeError) as exc:
            raise _not_loadable(path, exc) from None
        if abi != ABI_VERSION:
            raise DataNetError(
                "abi_mismatch",
                "%s speaks ABI %d but this DataNet.py needs ABI %d: rebuild the library "
                "(cargo build --release), run setup_packages.py, and restart TouchDesigner "
                "(a loaded library cannot be replaced)" % (path, abi, ABI_VERSION))
        _declare(lib)
        _runtime.libraries[path] = lib
        return lib
    raise DataNetError(
        "library_not_found",
        "the DataNet library was not found; looked in: %s. Run setup_packages.py, or pass "
        "lib_path=, or set DATANET_LIB to the library's full path" % ", ".join(tried))


def _not_loadable(path, exc):
    """The error for a file that exists but is not a DataNet library this
    process can load: its name, the loader's reason and the fix."""
    if isinstance(exc, AttributeError):
        reason = "it loads but has no dn_abi_version: not a DataNet library"
    else:
        reason = str(exc).replace(path, "").strip(" :") or type(exc).__name__
    stem, suffix = library_file_parts()
    fix = ("point lib_path= or DATANET_LIB at the DataNet library built for this OS (%s%s), "
           "rebuild it with cargo build --release or take it from the release zip for your OS, "
           "then run setup_packages.py" % (stem, suffix))
    if sys.platform == "darwin":
        fix += ("; on macOS use the build for TouchDesigner's architecture (or universal2), "
                "xattr -dr com.apple.quarantine and codesign -s - the file")
    return DataNetError("library_not_loadable", "cannot load %s (%s): %s" % (path, reason, fix))


def _last_error(lib):
    buf = ctypes.create_string_buffer(2048)
    length = ctypes.c_size_t()
    if lib.dn_last_error(buf, len(buf), ctypes.byref(length)) != _OK:
        return "unknown error"
    return buf.value.decode("utf-8", "replace")


def _check(lib, rc):
    if rc == _OK:
        return
    text = _last_error(lib)
    code, sep, message = text.partition(": ")
    if not (sep and re.fullmatch(r"[a-z_]+", code)):
        code, message = _ERROR_CODES.get(rc, "internal_error"), text
    raise DataNetError(code, message)


def _bytes_out(lib, call, capacity, missing=False):
    """Runs a library call that writes to (out, cap, *out_len), growing the buffer
    once when it is too small; returns the bytes written (text without its NUL).
    *out_len is the output's length without a NUL either way, so a retry asks for
    one byte more. With ``missing``, DN_ERR_NOT_FOUND returns None instead of raising."""
    out, length = ctypes.create_string_buffer(capacity), ctypes.c_size_t()
    rc = call(out, capacity, ctypes.byref(length))
    if rc == _ERR_BUFFER_TOO_SMALL:
        out = ctypes.create_string_buffer(length.value + 1)
        rc = call(out, length.value + 1, ctypes.byref(length))
    if missing and rc == _ERR_NOT_FOUND:
        return None
    _check(lib, rc)
    return out.raw[:length.value]


def _c_text(value, what):
    if not isinstance(value, str):
        raise DataNetError("invalid_argument", "%s must be a string, not %s" % (what, type(value).__name__))
    if "\x00" in value:
        raise DataNetError("invalid_argument", "%s contains a NUL character" % what)
    return value.encode("utf-8")


# ---------------------------------------------------------------------------
# Reading the batch records


def _records(data):
    """Yields (kind, flags, ts, replaced, channel, from_, content_type, meta, payload)
    per record; meta and payload stay bytes."""
    at, end = 0, len(data)
    unpack = _HEADER.unpack_from
    header_len = _HEADER.size
    while at < end:
        length, kind, flags, _, ts, replaced, cl, fl, tl, ml, pl = unpack(data, at)
        p = at + header_len
        channel = data[p:p + cl].decode("utf-8")
        p += cl
        from_ = data[p:p + fl].decode("utf-8")
        p += fl
        content_type = data[p:p + tl].decode("utf-8")
        p += tl
        meta = data[p:p + ml]
        p += ml
        payload = data[p:p + pl]
        yield kind, flags, ts, replaced, channel, from_, content_type, meta, payload
        at += length


# [(channel, from, ts, data, replaced), ...] of a DN_EVENT_MESSAGES_PICKLE record:
# one C-level call builds the whole frame's objects. Plain pickle.loads (no
# Unpickler subclass, no file object: that cost ~15 us a frame here) is safe on
# these bytes: the library writes only data opcodes (list, tuple, dict, str, int,
# float, bool, None) and checks each message for any other opcode before handing it over
# (only_data_opcodes in src/protocol/pickle.rs); such a message comes as JSON text.
_messages = pickle.loads


def _message_from_record(kind, flags, ts, replaced, channel, from_, content_type, meta, payload):
    if kind == _EVENT_JSON:
        return Message("json", channel, from_, ts, payload.decode("utf-8"))
    metadata = {"raw": True} if flags & _FLAG_RAW else (json.loads(meta) if meta else None)
    return Message("binary", channel, from_, ts, bytes(payload), content_type, metadata, bool(flags & _FLAG_RAW))


_CHANNEL_NAME_JUNK = re.compile(r"[^A-Za-z0-9_]+")
_PROJECT_PREFIX = re.compile(r"^project\.[^.]+\.")


def chop_channel_name(channel, key, strip_prefix=True):
    """The CHOP channel name of a numeric field: the channel (without its
    ``project.<id>.`` prefix) and the key path, joined by ``_``, with every
    character that is not a letter, digit or ``_`` replaced by ``_``."""
    if strip_prefix:
        channel = _PROJECT_PREFIX.sub("", channel)
    name = channel + ("_" + key if key else "")
    name = _CHANNEL_NAME_JUNK.sub("_", name).strip("_") or "value"
    return "_" + name if name[0].isdigit() else name


# ---------------------------------------------------------------------------
# Lighting: DMX and Art-Net, built and decoded by the library (PROTOCOL.md §9)

_INT64 = (1 << 62)


def _library():
    """A loaded library: the one a client loaded, else the default lookup."""
    return next(iter(_runtime.libraries.values()), None) or load_library()


def _as_double(value):
    """Numbers (bool included) as floats; anything else is NaN, which DMX turns into 0."""
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return math.nan


def _doubles(values):
    values = [_as_double(v) for v in values]
    return (ctypes.c_double * len(values))(*values), len(values)


def _int64(value, what):
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            raise DataNetError("invalid_argument", "%s must be an integer" % what) from None
    return max(-_INT64, min(_INT64, value))


def build_dmx_frame(values, length=512):
    """A DMX frame: ``length`` clamped to 1..512 slots; each value truncated toward
    zero and clamped to 0..255; non-numbers (and NaN) are 0; missing values are 0."""
    lib = _library()
    array, count = _doubles(values)
    length = _int64(length, "length")
    return _bytes_out(lib, lambda out, cap, n: lib.dn_build_dmx_frame(array, count, length, out, cap, n), 512)


def build_art_dmx_packet(dmx, universe=0, subnet=0, net=0, sequence=0, physical=0):
    """An Art-Net ArtDMX packet from DMX bytes or channel values. Fields are clamped
    (universe, subnet 0..15; net 0..127; sequence, physical 0..255); the data is
    padded to at least 2 bytes and to an even length."""
    if not isinstance(dmx, (bytes, bytearray, memoryview)):
        values = list(dmx)
        dmx = build_dmx_frame(values, max(len(values), 2))
    data = bytes(dmx)
    lib = _library()
    fields = [_int64(v, name) for v, name in ((universe, "universe"), (subnet, "subnet"), (net, "net"),
                                              (sequence, "sequence"), (physical, "physical"))]
    return _bytes_out(lib, lambda out, cap, n: lib.dn_build_art_dmx_packet(data, len(data), *fields, out, cap, n),
                      18 + 512)


def decode_art_dmx(packet):
    """An ArtDMX packet's fields: universe, subnet, net, port_address, sequence,
    physical, data (bytes). Raises DataNetError for anything else."""
    lib, data, header = _library(), bytes(packet), _ArtDmx()
    body = _bytes_out(lib, lambda out, cap, n: lib.dn_decode_art_dmx(data, len(data), ctypes.byref(header), out,
                                                                      cap, n), 512)
    return {"universe": header.universe, "subnet": header.subnet, "net": header.net,
            "port_address": header.port_address, "sequence": header.sequence, "physical": header.physical,
            "data": body}


def base64_encode(data):
    """Standard padded base64 text of bytes."""
    lib, data = _library(), bytes(data)
    text = _bytes_out(lib, lambda out, cap, n: lib.dn_base64_encode(data, len(data), out, cap, n),
                      4 * (len(data) // 3 + 1) + 1)
    return text.decode("ascii")


def base64_decode(text):
    """Bytes of standard padded base64 text."""
    lib, encoded = _library(), _c_text(text, "text")
    return _bytes_out(lib, lambda out, cap, n: lib.dn_base64_decode(encoded, out, cap, n), len(encoded))


def _chop_layout(pairs, wanted, strip_prefix):
    """(indices into the values, CHOP channel names) for the names ``pairs``,
    limited to the DataNet channels ``wanted``; duplicate names get _2, _3..."""
    indices, names, used = [], [], set()
    for index, (channel, key) in enumerate(pairs):
        if wanted is not None and channel not in wanted:
            continue
        name = base = chop_channel_name(channel, key, strip_prefix)
        suffix = 2
        while name in used:
            name, suffix = "%s_%d" % (base, suffix), suffix + 1
        used.add(name)
        indices.append(index)
        names.append(name)
    return tuple(indices), tuple(names)


def _gather(values, count, indices):
    """The values at ``indices`` of a ctypes double array: one numpy call when the
    host has numpy loaded (TouchDesigner does), a list comprehension otherwise.
    This file never imports numpy itself: in a host without it loaded, the import
    costs more than it saves (and starts its BLAS threads)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and indices:
        return numpy.frombuffer(values, dtype=numpy.float64, count=count).take(indices).tolist()
    return [values[i] for i in indices]


def _chop_values(chop):
    """(names, first-sample values) of a CHOP's channels."""
    channels = chop.chans()
    return [ch.name for ch in channels], [ch[0] for ch in channels]


# ---------------------------------------------------------------------------
# The client


class _CallBuffer:
    """The output buffer of dn_poll or dn_rows, with what each call would otherwise
    make again: a view to read the bytes from without copying, and the info
    struct with its reference."""

    def __init__(self, size, info_type):
        self.buffer = ctypes.create_string_buffer(size)
        self.size = size
        self.view = memoryview(self.buffer).cast("B")
        self.info = info_type()
        self.info_ref = ctypes.byref(self.info)

    def grown(self):
        """A buffer big enough for what the last call said it needs."""
        return _CallBuffer(max(self.info.len, 2 * self.size), type(self.info))


def _frame_call(st, key, name, *args):
    """Keeps (function, args) for library call ``name`` under ``key`` in the
    state's ``frame_calls``: ``args`` as C values, and a function object of its
    own without argtypes, so ctypes converts nothing per call. In a frame's first
    library call, after the thread did other work, that conversion cost ~20 µs
    here, as much as the call (README: "A frame's library calls pass C values").
    ``frame_calls`` is emptied whenever the handle or a buffer they point to changes."""
    # Indexing a library makes a new function object each time (ctypes docs,
    # "Loading shared libraries"): its argtypes stay unset, lib.<name>'s stay.
    function = st["lib"][name]
    function.restype = ctypes.c_int32
    call = st["frame_calls"][key] = (function, args)
    return call


def _poll_call(st, limit, flags):
    """dn_poll's _frame_call for the state's poll buffer, ``limit`` and ``flags``."""
    poll = st["poll"]
    return _frame_call(st, flags if limit == 0 else None, "dn_poll", ctypes.c_uint64(st["handle"]), poll.buffer,
                       ctypes.c_size_t(poll.size), ctypes.c_uint32(limit), ctypes.c_uint32(flags), poll.info_ref)


def _new_state():
    return {
        "lib": None,
        "handle": None,
        "config": None,
        "subscribers": {},  # channel -> list of (kind, callback, content_type); kind json|latest|binary|any
        "routes": {},  # channel -> (every, latest, any) callbacks, derived from subscribers
        "delivery": {},  # channel -> the native delivery mode set for it
        "group_json": True,  # group a poll's JSON messages; False while a subscribe_any needs each text
        "handlers": {event: [] for event in EVENTS},
        "row_seq": 0,  # newest table row, from the last poll
        "table_cursors": {},  # table key -> newest row shown
        "table_counts": {},  # table key -> [rows shown, rows not shown]
        "occupancy": {},
        "values_version": 0,  # of the native last values, from the last poll
        "chop": {"generation": _GENERATION_NONE, "pairs": [], "layouts": {}, "written": {},
                 "version": None},
        "callback_errors": 0,
        "decode_errors": 0,
        "poll": _CallBuffer(1 << 20, _PollInfo),
        "rows": _CallBuffer(1 << 16, _RowsInfo),
        "values": (ctypes.c_double * 0)(),
        "names": ctypes.create_string_buffer(1 << 16),
        "values_info": _ValuesInfo(),
        "frame_calls": {},  # see _frame_call
        "last_status": None,
    }


# A re-run of a newer copy of this file finds the older runs' states: give them
# what they lack.
for _old_state in _runtime.instances.values():
    for _key, _default in _new_state().items():
        _old_state.setdefault(_key, _default)


class DataNet:
    """One DataNet connection. The module-level functions act on ``datanet``,
    the default instance; create more with ``DataNet('name')``. Instances with
    the same name share one native client, across re-runs of this file."""

    def __init__(self, name="default"):
        self.name = name
        self._state  # noqa: B018 - creates the shared state now

    @property
    def _state(self):
        # Looked up on every use, so every instance of a name, from any run of
        # this file, always shares the one state.
        state = _runtime.instances.get(self.name)
        if state is None:
            state = _runtime.instances[self.name] = _new_state()
        return state

    # -- connection ----------------------------------------------------------

    def connect(self, api_key, *, api_url=DEFAULT_API_URL, ws_url=DEFAULT_WS_URL, device_id=None,
                client_id=None, device_name=None, lib_path=None, **options):
        """Starts connecting in the background and returns at once. Calling it
        again with the same settings keeps the running connection."""
        config = {"api_key": api_key, "api_url": api_url, "ws_url": ws_url, "device_id": device_id,
                  "client_id": client_id, "device_name": device_name}
        config.update(options)
        config = {k: v for k, v in config.items() if v is not None}
        config_text = json.dumps(config, sort_keys=True)
        st = self._state
        lib = load_library(lib_path)
        if st["handle"] is not None and st["config"] == config_text and st["lib"] is lib:
            _check(lib, lib.dn_connect(st["handle"]))
            return
        self.disconnect()
        handle = ctypes.c_uint64()
        _check(lib, lib.dn_client_new(_c_text(config_text, "config"), ctypes.byref(handle)))
        # A new client numbers its table rows from 1 again: the tables' cursors
        # start over with it (their counts go on).
        st.update(lib=lib, handle=handle.value, config=config_text, row_seq=0, values_version=0, table_cursors={})
        st["chop"].update(generation=_GENERATION_NONE, written={}, version=None)
        st["delivery"].clear()
        for channel, entries in st["subscribers"].items():
            for _ in entries:
                _check(lib, lib.dn_subscribe(st["handle"], _c_text(channel, "channel")))
            self._routes_changed(channel)
        _check(lib, lib.dn_connect(st["handle"]))

    def disconnect(self):
        """Closes the connection (at most 500 ms, even against a dead gateway).
        Safe to call twice or before connect. Subscriptions are kept for the next
        connect."""
        st = self._state
        if st["handle"] is None:
            return
        try:
            status = self.status()
            status["state"] = "closed"
            st["last_status"] = status
        except DataNetError:
            pass
        st["lib"].dn_client_free(st["handle"])
        st.update(handle=None, config=None, frame_calls={})

    def is_connected(self):
        return self.status().get("state") == "connected"

    @property
    def conn_id(self):
        """This connection's id (the ``from`` of its own messages), once connected."""
        return self.status().get("conn_id")

    # -- subscriptions -------------------------------------------------------

    def subscribe(self, channel, callback=None, latest=False):
        """``callback(channel, data, from_, timestamp)`` for every JSON message.
        With ``latest=True`` the callback runs at most once per poll for the channel,
        with the newest message and how many older ones it replaced:
        ``callback(channel, data, from_, timestamp, replaced)``; its cost grows with
        channels, not messages. Without a callback the channel still fills
        update_table and update_chop, and its messages never reach Python."""
        if latest and callback is None:
            raise DataNetError("invalid_argument", "latest=True needs a callback")
        self._add_subscriber(channel, "latest" if latest else "json", callback, None)
        return callback

    def subscribe_binary(self, channel, callback, content_type=None):
        """``callback(channel, data: bytes, meta: dict)`` for binary messages (of
        one content type, if given)."""
        self._add_subscriber(channel, "binary", callback, content_type)
        return callback

    def subscribe_any(self, channel, callback):
        """``callback(message)`` for JSON and binary messages; ``message.kind``
        is ``"json"`` or ``"binary"``."""
        self._add_subscriber(channel, "any", callback, None)
        return callback

    def unsubscribe(self, channel, callback=None):
        """Removes one callback, or every callback of the channel."""
        st = self._state
        entries = st["subscribers"].get(channel, [])
        removed = [e for e in entries if callback is None or e[1] == callback]
        if not removed:
            return 0
        kept = [e for e in entries if e not in removed]
        if kept:
            st["subscribers"][channel] = kept
        else:
            del st["subscribers"][channel]
        if st["handle"] is not None:
            for _ in removed:
                _check(st["lib"], st["lib"].dn_unsubscribe(st["handle"], _c_text(channel, "channel")))
        self._routes_changed(channel)
        return len(removed)

    def _add_subscriber(self, channel, kind, callback, content_type):
        if not (callable(callback) or (callback is None and kind == "json")):
            raise DataNetError("invalid_argument", "callback must be callable")
        st = self._state
        entry = (kind, callback, content_type)
        entries = st["subscribers"].setdefault(channel, [])
        if entry in entries:
            return
        if st["handle"] is not None:
            try:
                _check(st["lib"], st["lib"].dn_subscribe(st["handle"], _c_text(channel, "channel")))
            except DataNetError:
                if not entries:
                    del st["subscribers"][channel]
                raise
        else:
            _c_text(channel, "channel")
        entries.append(entry)
        self._routes_changed(channel)

    def _routes_changed(self, channel):
        """Recomputes who gets a channel's messages, and tells the library how much
        of the channel this side needs: every message, the newest per poll, or
        nothing (the table and CHOP read the library directly)."""
        st = self._state
        entries = st["subscribers"].get(channel, ())
        every = tuple(cb for kind, cb, _ in entries if kind == "json" and cb is not None)
        latest = tuple(cb for kind, cb, _ in entries if kind == "latest")
        anys = tuple(cb for kind, cb, _ in entries if kind == "any")
        binary = tuple((cb, ct) for kind, cb, ct in entries if kind == "binary")
        if entries:
            st["routes"][channel] = (every, latest, anys, binary)
        else:
            st["routes"].pop(channel, None)
        st["group_json"] = not any(route[2] for route in st["routes"].values())
        if every or anys or binary:
            mode = _DELIVER_EVERY
        elif latest:
            mode = _DELIVER_LATEST
        else:
            mode = _DELIVER_STORE_ONLY
        if not entries:
            st["delivery"].pop(channel, None)
        elif st["handle"] is not None and st["delivery"].get(channel) != mode:
            _check(st["lib"], st["lib"].dn_set_delivery(st["handle"], _c_text(channel, "channel"), mode))
            st["delivery"][channel] = mode

    def subscriptions(self):
        """The channels with at least one subscriber."""
        return list(self._state["subscribers"])

    def on(self, event, callback=None):
        """Registers a handler: ``connect()``, ``disconnect()``, ``error(exc)``
        with a DataNetError, ``presence(channel, {"occupancy", "members"})``.
        Usable as a decorator: ``@dn.on("error")``."""
        if event not in EVENTS:
            raise DataNetError("invalid_argument", "unknown event %r; use one of %s" % (event, ", ".join(EVENTS)))
        if callback is None:
            return lambda fn: self.on(event, fn)
        handlers = self._state["handlers"][event]
        if callback not in handlers:
            handlers.append(callback)
        return callback

    def off(self, event, callback=None):
        """Removes one handler, or every handler of the event."""
        handlers = self._state["handlers"].get(event, [])
        handlers[:] = [h for h in handlers if callback is not None and h != callback]

    # -- publishing ----------------------------------------------------------

    def publish(self, channel, data, content_type=None, metadata=None):
        """Publishes any JSON value, or bytes-like data (bytes, bytearray,
        memoryview) as binary. Never blocks: while disconnected it is queued."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            return self.publish_binary(channel, data, content_type or "application/octet-stream", metadata)
        try:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise DataNetError("invalid_argument", "data is not JSON-serialisable: %s" % e) from None
        lib, handle = self._live()
        _check(lib, lib.dn_publish_json(handle, _c_text(channel, "channel"), _c_text(text, "data")))

    def publish_binary(self, channel, data, content_type="application/octet-stream", metadata=None):
        """Publishes bytes with a content type and an optional metadata dict."""
        payload = bytes(data)
        meta = None if metadata is None else json.dumps(metadata, separators=(",", ":"), allow_nan=False)
        lib, handle = self._live()
        _check(lib, lib.dn_publish_binary(
            handle, _c_text(channel, "channel"), payload, len(payload),
            _c_text(content_type or "", "content_type"), None if meta is None else _c_text(meta, "metadata")))

    def publish_dmx(self, channel, values, length=512, metadata=None):
        """Publishes a DMX frame (see build_dmx_frame) as ``binary/dmx``."""
        self.publish_binary(channel, build_dmx_frame(values, length), "binary/dmx", metadata)

    def publish_artnet(self, channel, dmx, universe=0, subnet=0, net=0, sequence=0, physical=0, metadata=None):
        """Publishes an ArtDMX packet (see build_art_dmx_packet) as ``binary/artnet``."""
        packet = build_art_dmx_packet(dmx, universe, subnet, net, sequence, physical)
        self.publish_binary(channel, packet, "binary/artnet", metadata)

    def publish_chop(self, chop, channel, mode="json", rate=44.0, metadata=None, length=512, universe=0, subnet=0,
                     net=0, physical=0):
        """Publishes a CHOP's current values (first sample of each channel); call it
        every frame. The library sends at most ``rate`` frames a second on the
        channel (0 = every call), always the newest, and counts the values it
        replaced as ``coalesced``. ``mode``: ``"json"`` (an object of channel name to
        value), ``"dmx"`` (a DMX frame of ``length`` slots) or ``"artnet"`` (ArtDMX
        packets whose Sequence advances per packet sent)."""
        names, values = _chop_values(chop)
        lib, handle = self._live()
        meta = None if metadata is None else _c_text(json.dumps(metadata, separators=(",", ":"), allow_nan=False),
                                                      "metadata")
        c_channel = _c_text(channel, "channel")
        if mode == "json":
            try:
                text = json.dumps(dict(zip(names, values)), separators=(",", ":"), allow_nan=False)
            except ValueError as e:
                raise DataNetError("invalid_argument", "CHOP values are not JSON numbers: %s" % e) from None
            rc = lib.dn_stream_json(handle, c_channel, _c_text(text, "data"), float(rate))
        elif mode == "dmx":
            array, count = _doubles(values)
            rc = lib.dn_stream_dmx(handle, c_channel, array, count, _int64(length, "length"), meta, float(rate))
        elif mode == "artnet":
            array, count = _doubles(values)
            fields = [_int64(v, n) for v, n in ((universe, "universe"), (subnet, "subnet"), (net, "net"),
                                                (physical, "physical"))]
            rc = lib.dn_stream_artnet(handle, c_channel, array, count, *fields, meta, float(rate))
        else:
            raise DataNetError("invalid_argument", "mode must be 'json', 'dmx' or 'artnet', not %r" % (mode,))
        _check(lib, rc)
        return len(values)

    def _live(self):
        st = self._state
        if st["handle"] is None:
            raise DataNetError("not_connected", "call connect() first")
        return st["lib"], st["handle"]

    # -- the per-frame poll --------------------------------------------------

    def poll(self, max_events=None):
        """Drains a batch of events with one library call and dispatches the
        callbacks here, on the calling thread. Returns how many events it handled.
        At most ``max_events`` (default: the config's ``max_events_per_poll``);
        the rest wait for the next frame. A frame's JSON messages become Python
        objects with one C-level call; channels without callbacks send nothing here."""
        st = self._state
        if st["handle"] is None:
            return 0
        lib = st["lib"]
        limit = 0 if max_events is None else min(max(1, int(max_events)), _U32_MAX)
        flags = _POLL_GROUP_PICKLE if st["group_json"] else 0
        # Kept by flags (the other frame calls by name); a limit is rare: made anew.
        call = st["frame_calls"].get(flags) if limit == 0 else None
        if call is None:
            call = _poll_call(st, limit, flags)
        rc = call[0](*call[1])
        if rc == _ERR_BUFFER_TOO_SMALL:
            st["poll"] = st["poll"].grown()
            st["frame_calls"].clear()
            call = _poll_call(st, limit, flags)
            rc = call[0](*call[1])
        if rc:
            _check(lib, rc)
        poll = st["poll"]
        info = poll.info
        st["values_version"] = info.values_version
        st["row_seq"] = info.row_seq
        if not info.records:
            return 0
        view = poll.view
        newest = {}
        if info.records == 1 and view[4] == _EVENT_MESSAGES_PICKLE:
            # The usual frame: one batch of JSON messages and nothing else.
            try:
                messages = _messages(view[_HEADER.size:info.len])
            except Exception as error:
                self._undecodable(next(_records(view[:info.len].tobytes())), error)
            else:
                self._dispatch_json(st, messages, newest)
        else:
            for record in _records(view[:info.len].tobytes()):
                try:
                    self._dispatch(st, newest, *record)
                except Exception as error:  # callbacks are guarded one by one: this is a record
                    self._undecodable(record, error)
        if newest:
            self._run_latest(st, newest)
        return info.events

    def _dispatch_json(self, st, messages, newest, text=None):
        """Runs the callbacks of [channel, from, ts, data, replaced] messages; the
        newest message of each channel with latest-callbacks is collected in
        ``newest`` for the end of the poll. ``text``: the JSON text of a single
        message, for subscribe_any."""
        routes = st["routes"]
        for channel, from_, ts, data, replaced in messages:
            route = routes.get(channel)
            if route is None:
                continue
            every, latest, anys, _ = route
            for callback in every:
                # _call inlined: this runs per message, and a Python call is a
                # measurable part of it; everything else goes through _call.
                try:
                    callback(channel, data, from_, ts)
                except Exception:
                    self._callback_failed(callback)
            if anys:
                message = Message("json", channel, from_, ts, text, value=data)
                for callback in anys:
                    self._call(callback, message)
            if latest:
                older = newest.get(channel)
                if older is not None:
                    replaced += older[3] + 1
                newest[channel] = (data, from_, ts, replaced)

    def _run_latest(self, st, newest):
        routes = st["routes"]
        for channel, (data, from_, ts, replaced) in newest.items():
            route = routes.get(channel)
            for callback in route[1] if route else ():
                self._call(callback, channel, data, from_, ts, replaced)

    def _dispatch(self, st, newest, kind, flags, ts, replaced, channel, from_, content_type, meta, payload):
        if kind == _EVENT_MESSAGES_PICKLE:
            self._dispatch_json(st, _messages(payload), newest)
        elif kind == _EVENT_JSON:
            # One message per record: only while a subscribe_any wants each text.
            route = st["routes"].get(channel)
            if route is not None:
                text = payload.decode("utf-8")
                data = json.loads(text) if route[0] or route[1] else _UNPARSED
                self._dispatch_json(st, [(channel, from_, ts, data, replaced)], newest, text)
        elif kind == _EVENT_BINARY:
            message = _message_from_record(kind, flags, ts, replaced, channel, from_, content_type, meta, payload)
            targets = list(st["routes"]) if message.raw else [channel]
            for target in targets:
                route = st["routes"].get(target)
                if route is None:
                    continue
                delivered = message if target == message.channel else Message(
                    "binary", target, from_, ts, message.data, content_type, message.metadata, message.raw)
                for callback, wanted_type in route[3]:
                    if wanted_type in (None, content_type):
                        self._call(callback, target, delivered.data, delivered.meta())
                for callback in route[2]:
                    self._call(callback, delivered)
        elif kind == _EVENT_CONNECTED:
            self._emit("connect")
        elif kind == _EVENT_DISCONNECTED:
            self._emit("disconnect")
        elif kind == _EVENT_ERROR:
            self._emit_error(DataNetError.from_dict(json.loads(payload)))
        elif kind == _EVENT_SUB_ACK:
            st["occupancy"][channel] = json.loads(payload).get("occupancy")
        elif kind == _EVENT_PRESENCE:
            result = json.loads(payload)
            if flags & _FLAG_ERROR:
                self._emit_error(DataNetError.from_dict(result))
            else:
                st["occupancy"][channel] = result.get("occupancy")
                self._emit("presence", channel, result)

    def _undecodable(self, record, error):
        """A record this side could not read (the library writes none: defence in
        depth). Counted in status()["decode_errors"] and reported; the poll goes on."""
        st = self._state
        st["decode_errors"] += 1
        self._emit_error(DataNetError("protocol_error", "could not read a %d-byte record of kind %d: %s: %s" % (
            len(record[-1]), record[0], type(error).__name__, str(error)[:200])))

    def _emit(self, event, *args):
        for handler in self._state["handlers"][event]:
            self._call(handler, *args)

    def _emit_error(self, error):
        if self._state["handlers"]["error"]:
            self._emit("error", error)
        else:
            print("DataNet error: %s" % error)

    def _call(self, callback, *args):
        """A failing callback is reported and counted; it never stops the poll."""
        try:
            callback(*args)
        except Exception:
            self._callback_failed(callback)

    def _callback_failed(self, callback):
        self._state["callback_errors"] += 1
        print("DataNet: callback %r raised:\n%s" % (callback, traceback.format_exc()))

    # -- last values -----------------------------------------------------------

    def get_value(self, channel, key=None, default=None):
        """The newest value of a channel (its whole JSON value or bytes), or of
        one numeric field at a key path such as ``"pos/x"``."""
        st = self._state
        if st["handle"] is None:
            return default
        if key is None:
            message = self.last_message(channel)
            return default if message is None else message.data
        value = ctypes.c_double()
        rc = st["lib"].dn_value(st["handle"], _c_text(channel, "channel"), _c_text(key, "key"), ctypes.byref(value))
        if rc == _ERR_NOT_FOUND:
            return default
        _check(st["lib"], rc)
        return value.value

    def last_message(self, channel):
        """The newest Message of a subscribed channel, or None."""
        st = self._state
        if st["handle"] is None:
            return None
        lib, handle, c_channel = st["lib"], st["handle"], _c_text(channel, "channel")
        record = _bytes_out(lib, lambda out, cap, n: lib.dn_last_message(handle, c_channel, out, cap, n), 4096,
                            missing=True)
        return None if record is None else _message_from_record(*next(_records(record)))

    def values_changed(self):
        """True when a numeric last value changed since the last update_chop (as of
        the last poll): force-cook the Script CHOP only then."""
        st = self._state
        return st["handle"] is not None and st["values_version"] != st["chop"]["version"]

    def numeric_values(self):
        """The numeric last values as ``[(channel, key, value), ...]``."""
        pairs, values, count = self._read_values()
        return [(c, k, v) for (c, k), v in zip(pairs, values[:count])]

    def _read_values(self):
        """(pairs, values, count): the names as [channel, key] pairs, and a ctypes
        array whose first ``count`` doubles are the values (no copy)."""
        st = self._state
        chop = st["chop"]
        if st["handle"] is None:
            return [], st["values"], 0
        lib, info = st["lib"], st["values_info"]
        for _ in range(3):
            values, names = st["values"], st["names"]
            call = st["frame_calls"].get("dn_values")
            if call is None:
                call = _frame_call(st, "dn_values", "dn_values", ctypes.c_uint64(st["handle"]), ctypes.c_uint64(),
                                   values, ctypes.c_size_t(len(values)), names, ctypes.c_size_t(len(names)),
                                   ctypes.byref(info))
            function, args = call
            args[1].value = chop["generation"]
            rc = function(*args)
            if rc != _ERR_BUFFER_TOO_SMALL:
                break
            if info.count > len(values):
                st["values"] = (ctypes.c_double * (2 * info.count))()
            if info.names_len + 1 > len(names):
                st["names"] = ctypes.create_string_buffer(2 * info.names_len + 1)
            st["frame_calls"].clear()
        _check(lib, rc)
        if info.names_len:
            chop["pairs"] = json.loads(st["names"].value.decode("utf-8"))
            chop["generation"] = info.generation
            chop["layouts"] = {}
        chop["version"] = info.version
        return chop["pairs"], st["values"], info.count

    # -- TouchDesigner helpers ---------------------------------------------------

    def update_table(self, dat, max_rows=100):
        """Appends the messages that arrived since the last call for this table
        (columns channel, data, from, timestamp; binary rows show content type and
        size) with one library call and one appendRows, then trims the oldest rows
        in one batch to keep ``max_rows``. A frame costs at most ``max_rows`` rows,
        whatever the message rate; rows this table never showed are counted in
        ``status()["tables"]``. Call it after poll()."""
        st = self._state
        key = getattr(dat, "path", id(dat))
        if dat.numRows == 0:
            dat.appendRow(TABLE_HEADER)
        cursor = st["table_cursors"].get(key, 0)
        if st["handle"] is None or cursor == st["row_seq"]:
            return 0
        lib = st["lib"]
        wanted = min(max(0, int(max_rows)), _U32_MAX)
        for _ in range(3):
            rows = st["rows"]
            call = st["frame_calls"].get("dn_rows")
            if call is None:
                call = _frame_call(st, "dn_rows", "dn_rows", ctypes.c_uint64(st["handle"]), ctypes.c_uint64(),
                                   ctypes.c_uint32(), rows.buffer, ctypes.c_size_t(rows.size), rows.info_ref)
            function, args = call
            args[1].value = cursor
            args[2].value = wanted
            rc = function(*args)
            if rc != _ERR_BUFFER_TOO_SMALL:
                break
            st["rows"] = rows.grown()
            st["frame_calls"].clear()
        if rc:
            _check(lib, rc)
        info = rows.info
        st["table_cursors"][key] = info.newest_seq
        counts = st["table_counts"].setdefault(key, [0, 0])
        counts[0] += info.rows
        counts[1] += info.skipped
        if not info.rows:
            return 0
        # Every row has the header's cells: one split of the whole text, then rows
        # of that many cells, all in C.
        cells = str(rows.view[:info.len], "utf-8").replace(_ROW_SEPARATOR, _CELL_SEPARATOR).split(_CELL_SEPARATOR)
        if len(cells) != len(TABLE_HEADER) * info.rows:
            raise DataNetError("protocol_error", "dn_rows gave %d cells for %d rows" % (len(cells), info.rows))
        dat.appendRows(list(map(list, zip(*[iter(cells)] * len(TABLE_HEADER)))))
        excess = dat.numRows - 1 - wanted
        if excess > 0:
            # Descending: right whether TD reads the indices before or during the
            # deletion (Table DAT Class docs do not say).
            dat.deleteRows(list(range(excess, 0, -1)))
        return info.rows

    def update_chop(self, scriptOp, channels=None, strip_prefix=True):
        """Fills a Script CHOP from the native last-value store: one channel per
        numeric field (see chop_channel_name), one sample. ``channels`` limits it to
        some DataNet channels. Call it from the Script CHOP's onCook. While the set
        of names is unchanged and the CHOP still holds exactly the channels this
        wrote last time, only the values are updated in place."""
        st = self._state
        chop = st["chop"]
        pairs, values, count = self._read_values()
        wanted = None if channels is None else tuple([channels] if isinstance(channels, str) else channels)
        layout_key = (wanted, strip_prefix)
        layout = chop["layouts"].get(layout_key)
        if layout is None:
            layout = chop["layouts"][layout_key] = _chop_layout(pairs, wanted, strip_prefix)
        indices, names = layout
        if len(indices) == count:
            current = values[:count]  # every value, in order: one C-level copy
        else:
            current = _gather(values, count, indices)
        n = len(names)
        path = getattr(scriptOp, "path", id(scriptOp))
        # Whether a Script CHOP keeps its channels between cooks is not documented
        # (Script CHOP docs): reuse them only when the CHOP holds what this wrote.
        if (chop["written"].get(path) is layout and scriptOp.numChans == n and
                (n == 0 or scriptOp[n - 1].name == names[-1])):
            for channel, value in zip(scriptOp.chans(), current):
                channel[0] = value
        else:
            scriptOp.clear()
            scriptOp.numSamples = 1
            for name, value in zip(names, current):
                scriptOp.appendChan(name)[0] = value
            chop["written"][path] = layout
        return n

    # -- status and presence ---------------------------------------------------

    def status(self):
        """State, connection id, counters, last error, RTT and more, as a dict."""
        st = self._state
        if st["handle"] is None:
            status = dict(st["last_status"] or {"state": "idle", "conn_id": None, "counters": {},
                                                  "last_error": None, "rtt_ms": None})
        else:
            lib, handle = st["lib"], st["handle"]
            text = _bytes_out(lib, lambda out, cap, n: lib.dn_status(handle, out, cap, n), 8192)
            status = json.loads(text.decode("utf-8"))
        status["callback_errors"] = st["callback_errors"]
        status["decode_errors"] = st["decode_errors"]
        status["occupancy"] = dict(st["occupancy"])
        status["tables"] = {str(key): {"shown": shown, "not_shown": not_shown}
                            for key, (shown, not_shown) in st["table_counts"].items()}
        return status

    def get_presence(self, channel):
        """Requests presence; the answer arrives as a ``presence`` event (or an
        ``error`` event). Meant for occasional use, never every frame."""
        lib, handle = self._live()
        _check(lib, lib.dn_request_presence(handle, _c_text(channel, "channel")))


# -- Recordings ----------------------------------------------------------------
# Files written by the local gateway's ``--record`` (docs/GATEWAY.md, "Record and
# replay"): JSON lines, a versioned header first, one message per line. Reading one
# needs neither the native library nor a connection, so a recording can be looked
# at or edited from any Python; base64 here is the standard library's decoder.

import base64 as _stdlib_base64  # noqa: E402  (kept inside this section)
import warnings as _warnings  # noqa: E402

RECORDING_FORMAT = "datanet-recording"
RECORDING_VERSION = 1
_MAX_CHANNEL_BYTES = 255


class RecordedMessage(Message):
    """A message read from a recording: a ``Message`` (``kind``, ``channel``,
    ``from_``, ``timestamp`` = the server time it was relayed at, in ms,
    ``data``, ``text`` = the JSON payload exactly as published, ``content_type``,
    ``metadata``) plus ``offset``, seconds since the recording started."""

    __slots__ = ("offset",)

    def __repr__(self):
        return "RecordedMessage(%.6f s %s %s from %s)" % (self.offset, self.kind, self.channel, self.from_)


def _no_constants(name):
    raise ValueError("%s is not JSON" % name)


_JSON = json.JSONDecoder(parse_constant=_no_constants)
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _raw_fields(text):
    """{name: raw JSON text} of one JSON object's top-level fields, so payloads
    keep their exact text; ValueError when the text is not one JSON object."""
    def space(at):
        return _JSON_SPACE.match(text, at).end()

    at = space(0)
    if text[at:at + 1] != "{":
        raise ValueError("not a JSON object")
    at, fields = space(at + 1), {}
    if text[at:at + 1] == "}":
        at += 1
    else:
        while True:
            if text[at:at + 1] != '"':
                raise ValueError("expected a field name at column %d" % (at + 1))
            name, at = _JSON.raw_decode(text, at)
            at = space(at)
            if text[at:at + 1] != ":":
                raise ValueError("expected ':' at column %d" % (at + 1))
            start = space(at + 1)
            _, at = _JSON.raw_decode(text, start)
            fields[name] = text[start:at]
            at = space(at)
            if text[at:at + 1] == ",":
                at = space(at + 1)
            elif text[at:at + 1] == "}":
                at += 1
                break
            else:
                raise ValueError("expected ',' or '}' at column %d" % (at + 1))
    if space(at) != len(text):
        raise ValueError("extra text after the JSON object")
    return fields


def _raw_or_text(fields, name):
    """The raw JSON text of ``name``, or of the JSON text held by ``name_text``."""
    text_name = name + "_text"
    if name in fields and text_name in fields:
        raise ValueError('give "%s" or "%s", not both' % (name, text_name))
    if text_name in fields:
        text = _JSON.decode(fields[text_name])
        if not isinstance(text, str):
            raise ValueError('"%s" must be a string of JSON text' % text_name)
        _JSON.decode(text)
        return text
    return fields.get(name)


def _recorded_message(text):
    """A RecordedMessage from one line's text; None for a blank line."""
    if not text.strip():
        return None
    try:
        fields = _raw_fields(text)
    except ValueError as e:
        raise ValueError("not a JSON object (%s)" % e) from None
    value = {name: _JSON.decode(raw) for name, raw in fields.items() if not name.endswith("_text")}
    offset = value.get("t")
    if "t" not in value:
        raise ValueError('missing "t" (seconds since the recording started)')
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or offset < 0:
        raise ValueError('"t" must be a number of seconds, 0 or more')
    channel = value.get("ch")
    if "ch" not in value:
        raise ValueError('missing "ch" (the channel)')
    if not isinstance(channel, str) or not 1 <= len(channel.encode("utf-8")) <= _MAX_CHANNEL_BYTES:
        raise ValueError('"ch" must be a channel name of 1 to 255 bytes')
    from_ = value.get("from")
    if from_ is None:
        from_ = "replay"
    elif not isinstance(from_, str):
        raise ValueError('"from" must be a string')
    ts = value.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or ts < 0):
        raise ValueError('"ts" must be a non-negative integer (milliseconds)')
    data = _raw_or_text(fields, "d")
    b64 = value.get("b64")
    if data is not None and "b64" in value:
        raise ValueError('a line holds "d" (JSON) or "b64" (binary), not both')
    if data is not None:
        message = RecordedMessage("json", channel, from_, ts, data)
    elif "b64" in value:
        if not isinstance(b64, str):
            raise ValueError('"b64" must be a base64 string')
        try:
            payload = _stdlib_base64.b64decode(b64, validate=True)
        except ValueError as e:
            raise ValueError('"b64" is not valid base64 (%s)' % e) from None
        content_type = value.get("ct")
        if content_type is not None and not isinstance(content_type, str):
            raise ValueError('"ct" must be a string')
        meta = _raw_or_text(fields, "meta")
        metadata = None if meta is None else _JSON.decode(meta)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError('"meta" must be a JSON object')
        message = RecordedMessage("binary", channel, from_, ts, payload,
                                  content_type or "application/octet-stream", metadata)
    else:
        raise ValueError('no payload: give "d" (JSON) or "b64" (binary)')
    message.offset = float(offset)
    return message


def read_recording(path):
    """Yields the messages of a gateway recording, in order, as ``RecordedMessage``.

    A missing, corrupt or wrong-version file raises ``DataNetError`` with code
    ``invalid_recording`` and a message naming the line; an incomplete last
    line (the recording was interrupted) is skipped with a ``RuntimeWarning``."""
    name = os.fspath(path)

    def invalid(number, why):
        return DataNetError("invalid_recording", "%s line %d: %s" % (name, number, why))

    try:
        f = open(name, "rb")
    except OSError as e:
        raise DataNetError("invalid_recording", "cannot open %s: %s" % (name, e)) from None
    with f:
        number = 0
        for raw in f:
            number += 1
            complete = raw.endswith(b"\n")
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                text = None
            if number == 1:
                header = None
                try:
                    header = _JSON.decode(text) if text is not None else None
                except ValueError:
                    pass
                if not isinstance(header, dict) or header.get("format") != RECORDING_FORMAT:
                    raise invalid(1, 'not a DataNet recording: the first line must be a header like '
                                     '{"format":"%s","version":%d}' % (RECORDING_FORMAT, RECORDING_VERSION))
                if header.get("version") != RECORDING_VERSION:
                    raise invalid(1, "recording format version %r; this DataNet.py reads version %d"
                                  % (header.get("version"), RECORDING_VERSION))
                continue
            try:
                if text is None:
                    raise ValueError("not UTF-8 text")
                message = _recorded_message(text)
            except ValueError as e:
                if not complete:
                    _warnings.warn("%s line %d: incomplete last line skipped (the recording was interrupted?): %s"
                                   % (name, number, e), RuntimeWarning, stacklevel=2)
                    return
                raise invalid(number, str(e)) from None
            if message is not None:
                yield message
        if number == 0:
            raise DataNetError("invalid_recording", "%s is empty (line 1 should be the recording header)" % name)


#: The default instance; the module-level functions below act on it.
datanet = DataNet()

connect = datanet.connect
disconnect = datanet.disconnect
subscribe = datanet.subscribe
subscribe_binary = datanet.subscribe_binary
subscribe_any = datanet.subscribe_any
unsubscribe = datanet.unsubscribe
subscriptions = datanet.subscriptions
on = datanet.on
off = datanet.off
publish = datanet.publish
publish_binary = datanet.publish_binary
publish_dmx = datanet.publish_dmx
publish_artnet = datanet.publish_artnet
publish_chop = datanet.publish_chop
poll = datanet.poll
get_value = datanet.get_value
last_message = datanet.last_message
values_changed = datanet.values_changed
numeric_values = datanet.numeric_values
update_table = datanet.update_table
update_chop = datanet.update_chop
status = datanet.status
is_connected = datanet.is_connected
get_presence = datanet.get_presence

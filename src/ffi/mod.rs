//! The C ABI. Conventions (see `include/datanet.h`):
//! - clients are opaque `uint64_t` handles that are never reused, so a stale or
//!   double-freed handle is `DN_ERR_INVALID_HANDLE`, never undefined behaviour;
//! - every function returns an `int32_t` result code (`DN_OK` = 0, errors < 0)
//!   and writes its outputs through out-parameters, only on success (the one
//!   exception: `DN_ERR_BUFFER_TOO_SMALL` writes the size needed);
//! - every export runs inside a panic guard: a panic becomes `DN_ERR_PANIC`;
//! - the text of the last failure on the calling thread is kept for `dn_last_error`.
//!
//! This module holds all of the crate's `unsafe`: turning C pointers into slices
//! and strings, with null checks first.

mod batch;
mod codecs;
mod reads;
pub use codecs::*;
pub use reads::*;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use once_cell::sync::Lazy;

use crate::client::{Client, Config};
use crate::protocol::error::DataNetError;
use crate::protocol::lighting::ArtDmxHeader;
use crate::protocol::subscriptions::Delivery;

/// Success.
pub const DN_OK: i32 = 0;
/// A required pointer argument was NULL (or an output buffer was NULL with a
/// non-zero capacity).
pub const DN_ERR_NULL_POINTER: i32 = -1;
/// The handle is unknown: never created, or already freed. Handle 0 is never valid.
pub const DN_ERR_INVALID_HANDLE: i32 = -2;
/// A string argument is not valid UTF-8.
pub const DN_ERR_INVALID_UTF8: i32 = -3;
/// An argument was refused (bad config, bad JSON, bad channel name, too large,
/// unknown flag or mode).
pub const DN_ERR_INVALID_ARGUMENT: i32 = -4;
/// The output buffer is too small; `*out_len` (or the info struct's length
/// fields) holds the length needed. Nothing else was written or consumed.
pub const DN_ERR_BUFFER_TOO_SMALL: i32 = -5;
/// Nothing is stored for that channel or key, or the channel is not subscribed.
pub const DN_ERR_NOT_FOUND: i32 = -6;
/// A bug inside the library was caught at the boundary.
pub const DN_ERR_PANIC: i32 = -7;

/// The ABI version `DataNet.py` checks at load time. Bumped on any change to a
/// signature, a constant, a struct, a rule of this header or the record format.
pub const DN_ABI_VERSION: u32 = 4;

/// Record kind (`kind` byte): one JSON message; payload = the `d` value's text exactly as the gateway sent it.
pub const DN_EVENT_MESSAGE_JSON: u8 = 1;
/// One binary message; payload = the bytes, content_type set, meta = the JSON object
/// text of its metadata as sent, or empty.
pub const DN_EVENT_MESSAGE_BINARY: u8 = 2;
/// Connected; payload = the connection id (the `from` of this client's own messages).
pub const DN_EVENT_CONNECTED: u8 = 3;
/// The connection was lost; payload = the reason. Not emitted by `dn_disconnect`.
pub const DN_EVENT_DISCONNECTED: u8 = 4;
/// An error; payload = JSON object {code, message, channel, operation, required,
/// retry_ms, scope, limit, status}; the record's channel repeats `channel`.
pub const DN_EVENT_ERROR: u8 = 5;
/// The gateway acknowledged a subscription (one per channel per (re)subscribe);
/// payload = `{"occupancy": n}` or `{"occupancy": null}`; channel set.
pub const DN_EVENT_SUB_ACK: u8 = 6;
/// A presence answer; payload = `{"occupancy": n, "members": [...]}`, or with
/// `DN_FLAG_ERROR` an error object as for `DN_EVENT_ERROR`; channel set.
pub const DN_EVENT_PRESENCE: u8 = 7;
/// Several JSON messages in one record (only with `DN_POLL_GROUP_JSON`); payload =
/// one JSON array `[[channel, from, ts, data, replaced], ...]`, each `data` the
/// gateway's own text; the record's channel and from are empty, ts is 0.
pub const DN_EVENT_MESSAGES_JSON: u8 = 8;
/// Several JSON messages in one record (only with `DN_POLL_GROUP_PICKLE`), for
/// Python hosts: payload = a Python pickle (protocol 4, data only: list, tuple, dict,
/// str, int, float, bool, None) of the list `[(channel, from, ts, data, replaced), ...]`,
/// each `data` the value Python's `json.loads` makes of the gateway's text (big
/// integers exact); the record's channel and from are empty, ts is 0. One pickle
/// frame; every message in it was checked by the library to hold only data
/// opcodes (nothing that imports or calls), so `pickle.loads` may read it.
pub const DN_EVENT_MESSAGES_PICKLE: u8 = 9;
/// Record flag: a raw binary frame from an older gateway (no channel; deliver to
/// every binary subscriber).
pub const DN_FLAG_RAW: u8 = 1;
/// Record flag: a presence record whose payload is an error object.
pub const DN_FLAG_ERROR: u8 = 2;
/// Size of a record header.
pub const DN_RECORD_HEADER_LEN: u32 = 40;
/// `known_generation` value meaning "I have no names yet".
pub const DN_GENERATION_NONE: u64 = u64::MAX;
/// `dn_poll` flag: put consecutive JSON messages into one `DN_EVENT_MESSAGES_JSON`
/// record, so a host parses a whole batch with one JSON call.
pub const DN_POLL_GROUP_JSON: u32 = 1;
/// `dn_poll` flag: put consecutive JSON messages into one `DN_EVENT_MESSAGES_PICKLE`
/// record, which Python's `pickle.loads` turns into objects faster than `json.loads`
/// (not with `DN_POLL_GROUP_JSON`).
pub const DN_POLL_GROUP_PICKLE: u32 = 2;
/// `dn_set_delivery` mode: every message of the channel is an event (the default).
pub const DN_DELIVER_EVERY: u32 = 0;
/// `dn_set_delivery` mode: at most one message of the channel per `dn_poll`, the
/// newest, with the count of older ones it replaced in the record's `replaced`.
pub const DN_DELIVER_LATEST: u32 = 1;
/// `dn_set_delivery` mode: no events; messages only update the last values
/// (`dn_values`) and the table rows (`dn_rows`).
pub const DN_DELIVER_STORE_ONLY: u32 = 2;

/// The header fields of a decoded ArtDMX packet.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DnArtDmx {
    pub universe: u8,
    pub subnet: u8,
    pub net: u8,
    pub sequence: u8,
    pub physical: u8,
    pub reserved: u8,
    /// Net, Sub-Net and Universe as one 15-bit Port-Address.
    pub port_address: u16,
    /// Bytes of DMX data (2..512).
    pub length: u32,
}

/// What `dn_values` wrote. With `DN_ERR_BUFFER_TOO_SMALL` only `count` and
/// `names_len` are written: the capacities needed.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DnValuesInfo {
    /// Changes whenever the set of numeric channels changes.
    pub generation: u64,
    /// Changes whenever any value changes.
    pub version: u64,
    /// Number of values (= number of names).
    pub count: u64,
    /// Length of the names text without its NUL (the buffer needs one more byte),
    /// or 0 when the caller's generation was current and names were not written.
    pub names_len: u64,
}

/// What `dn_poll` did. With `DN_ERR_BUFFER_TOO_SMALL` only `len` is written: the
/// bytes the first waiting event needs.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DnPollInfo {
    /// Bytes of records written.
    pub len: u64,
    /// Events taken (a `DN_EVENT_MESSAGES_JSON` record holds several).
    pub events: u32,
    /// Records written.
    pub records: u32,
    /// Events still waiting after this call.
    pub pending: u64,
    /// The last values' version (as `DnValuesInfo.version`): a host refreshes its
    /// CHOP or display only when it changed.
    pub values_version: u64,
    /// Sequence number of the newest table row (0 = none yet): a host calls
    /// `dn_rows` only when it passed its cursor.
    pub row_seq: u64,
}

/// What `dn_rows` wrote. With `DN_ERR_BUFFER_TOO_SMALL` only `len` is written.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DnRowsInfo {
    /// Bytes of rows text written (no NUL).
    pub len: u64,
    /// Rows written.
    pub rows: u32,
    pub reserved: u32,
    /// Sequence number of the newest row: the caller's next `after_seq`.
    pub newest_seq: u64,
    /// Rows newer than `after_seq` not written: beyond `max_rows`, or already gone
    /// from the ring (`table_history`). Counted, so nothing is lost silently.
    pub skipped: u64,
}

static VERSION: &CStr = c"0.1.0";

static CLIENTS: Lazy<Mutex<HashMap<u64, Arc<Client>>>> = Lazy::new(|| Mutex::new(HashMap::new()));
/// Starts at 1: handle 0 is never valid, so a zeroed variable is never a client.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A failed call: its result code and the text kept for `dn_last_error`.
struct Failure(i32, String);

impl From<DataNetError> for Failure {
    fn from(error: DataNetError) -> Self {
        Failure(DN_ERR_INVALID_ARGUMENT, error.to_string())
    }
}

type FfiResult = Result<(), Failure>;

/// The panic boundary every export goes through.
fn guard(body: impl FnOnce() -> FfiResult) -> i32 {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return DN_OK,
        Ok(Err(failure)) => failure,
        Err(_) => Failure(DN_ERR_PANIC, "internal error (panic caught at the C boundary)".into()),
    };
    LAST_ERROR.with(|last| *last.borrow_mut() = failure.1);
    failure.0
}

fn client(handle: u64) -> Result<Arc<Client>, Failure> {
    let clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    clients
        .get(&handle)
        .cloned()
        .ok_or_else(|| Failure(DN_ERR_INVALID_HANDLE, format!("unknown client handle {handle}")))
}

fn null(name: &str) -> Failure {
    Failure(DN_ERR_NULL_POINTER, format!("{name} is NULL"))
}

fn too_small(cap: usize, needed: usize) -> Failure {
    Failure(DN_ERR_BUFFER_TOO_SMALL, format!("buffer of {cap} bytes; {needed} needed"))
}

/// # Safety
/// `ptr` is NULL or a NUL-terminated string valid for reads.
unsafe fn text<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(null(name));
    }
    CStr::from_ptr(ptr).to_str().map_err(|e| Failure(DN_ERR_INVALID_UTF8, format!("{name} is not valid UTF-8: {e}")))
}

/// # Safety
/// As `text`; NULL means absent.
unsafe fn optional_text<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        Ok(None)
    } else {
        text(ptr, name).map(Some)
    }
}

/// A C array as a slice; NULL is allowed only with a zero length.
///
/// # Safety
/// `ptr` is NULL or valid for `len` reads of `T`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    if len == 0 {
        Ok(&[])
    } else if ptr.is_null() {
        Err(null(name))
    } else {
        Ok(std::slice::from_raw_parts(ptr, len))
    }
}

/// The one rule for output buffers: NULL with capacity 0 is a size query (the
/// call answers `DN_ERR_BUFFER_TOO_SMALL` with the length needed, unless nothing
/// needs writing); NULL with a non-zero capacity is `DN_ERR_NULL_POINTER`.
fn check_buffer<T>(ptr: *const T, cap: usize, name: &str) -> FfiResult {
    if ptr.is_null() && cap > 0 {
        return Err(Failure(DN_ERR_NULL_POINTER, format!("{name} is NULL with a capacity of {cap}")));
    }
    Ok(())
}

/// An out-parameter that must not be NULL, checked before any work is done.
fn check_out<T>(ptr: *mut T, name: &str) -> FfiResult {
    if ptr.is_null() {
        Err(null(name))
    } else {
        Ok(())
    }
}

/// Copies `bytes` into `out`, or answers BUFFER_TOO_SMALL; `*out_len` gets the
/// length either way. Arguments were checked by the caller.
///
/// # Safety
/// `out` is NULL (then `cap` is 0) or valid for `cap` bytes of writes; `out_len` valid.
unsafe fn write_bytes(bytes: &[u8], out: *mut u8, cap: usize, out_len: *mut usize) -> FfiResult {
    out_len.write(bytes.len());
    if cap < bytes.len() {
        return Err(too_small(cap, bytes.len()));
    }
    if !bytes.is_empty() {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
    }
    Ok(())
}

/// Copies `bytes` and a NUL into `buf`, or answers BUFFER_TOO_SMALL; `*out_len`
/// gets the length without the NUL either way (the buffer needs one more byte).
///
/// # Safety
/// `buf` is NULL (then `cap` is 0) or valid for `cap` bytes of writes; `out_len` valid.
unsafe fn write_text(bytes: &[u8], buf: *mut c_char, cap: usize, out_len: *mut usize) -> FfiResult {
    out_len.write(bytes.len());
    if cap < bytes.len() + 1 {
        return Err(too_small(cap, bytes.len() + 1));
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
    buf.add(bytes.len()).write(0);
    Ok(())
}

/// The library version, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn dn_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The ABI version; compare with `DN_ABI_VERSION` from the header you built against.
#[no_mangle]
pub extern "C" fn dn_abi_version() -> u32 {
    DN_ABI_VERSION
}

/// Copies the text of the calling thread's last failure (empty if none) into `buf`
/// with a NUL. Secrets never appear in it. Reading it does not change it.
///
/// # Safety
/// `buf` NULL with `cap` 0, or valid for `cap` bytes; `out_len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_last_error(buf: *mut c_char, cap: usize, out_len: *mut usize) -> i32 {
    let message = LAST_ERROR.with(|last| last.borrow().clone());
    // Not through `guard`: reporting this failure must not overwrite the message.
    let body = || {
        check_buffer(buf, cap, "buf")?;
        check_out(out_len, "out_len")?;
        write_text(message.as_bytes(), buf, cap, out_len)
    };
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => DN_OK,
        Ok(Err(Failure(code, _))) => code,
        Err(_) => DN_ERR_PANIC,
    }
}

/// Creates a client from a JSON config object (`api_key` required; docs/REFERENCE.md
/// lists every key; unknown keys are refused). Does not connect.
///
/// # Safety
/// `config_json` a NUL-terminated string; `out_handle` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_client_new(config_json: *const c_char, out_handle: *mut u64) -> i32 {
    guard(|| {
        let config_json = text(config_json, "config_json")?;
        check_out(out_handle, "out_handle")?;
        let client = Client::new(Config::from_json(config_json)?)?;
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        CLIENTS.lock().unwrap_or_else(|p| p.into_inner()).insert(handle, Arc::new(client));
        out_handle.write(handle);
        Ok(())
    })
}

/// Disconnects (within 500 ms) and frees the client. The handle is invalid afterwards.
#[no_mangle]
pub extern "C" fn dn_client_free(handle: u64) -> i32 {
    guard(|| {
        let removed = CLIENTS.lock().unwrap_or_else(|p| p.into_inner()).remove(&handle);
        let client =
            removed.ok_or_else(|| Failure(DN_ERR_INVALID_HANDLE, format!("unknown client handle {handle}")))?;
        client.disconnect();
        Ok(())
    })
}

/// Starts connecting in the background and returns at once.
#[no_mangle]
pub extern "C" fn dn_connect(handle: u64) -> i32 {
    guard(|| Ok(client(handle)?.connect()?))
}

/// Stops the connection within 500 ms; subscriptions and queued publishes are kept.
/// Emits no `DN_EVENT_DISCONNECTED` record (the caller knows).
#[no_mangle]
pub extern "C" fn dn_disconnect(handle: u64) -> i32 {
    guard(|| {
        client(handle)?.disconnect();
        Ok(())
    })
}

/// Adds a subscriber to a channel (the first one sends `sub`; its delivery starts
/// as `DN_DELIVER_EVERY`). Channel names: 1..255 bytes of ASCII letters, digits and
/// `_ - . : /`, no leading or trailing `.`, no empty segment (docs/PROTOCOL.md §8);
/// anything else is `DN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `channel` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn dn_subscribe(handle: u64, channel: *const c_char) -> i32 {
    guard(|| {
        let channel = text(channel, "channel")?;
        Ok(client(handle)?.subscribe(channel)?)
    })
}

/// Removes a subscriber (the last one sends `unsub` and forgets the channel's last
/// values). `DN_ERR_NOT_FOUND` when the channel had no subscriber.
///
/// # Safety
/// `channel` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn dn_unsubscribe(handle: u64, channel: *const c_char) -> i32 {
    guard(|| {
        let channel = text(channel, "channel")?;
        if client(handle)?.unsubscribe(channel)? {
            Ok(())
        } else {
            Err(Failure(DN_ERR_NOT_FOUND, format!("not subscribed to {channel}")))
        }
    })
}

/// Chooses how a subscribed channel's messages reach `dn_poll`: `DN_DELIVER_EVERY`,
/// `DN_DELIVER_LATEST` or `DN_DELIVER_STORE_ONLY`. Every message still updates
/// `dn_values` and `dn_rows`. `DN_ERR_NOT_FOUND` when the channel is not subscribed
/// (the mode lives as long as the subscription); an unknown mode is
/// `DN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `channel` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn dn_set_delivery(handle: u64, channel: *const c_char, mode: u32) -> i32 {
    guard(|| {
        let channel = text(channel, "channel")?;
        let delivery = match mode {
            DN_DELIVER_EVERY => Delivery::Every,
            DN_DELIVER_LATEST => Delivery::Latest,
            DN_DELIVER_STORE_ONLY => Delivery::StoreOnly,
            other => return Err(Failure(DN_ERR_INVALID_ARGUMENT, format!("invalid_argument: unknown mode {other}"))),
        };
        if client(handle)?.set_delivery(channel, delivery)? {
            Ok(())
        } else {
            Err(Failure(DN_ERR_NOT_FOUND, format!("not subscribed to {channel}")))
        }
    })
}

/// Publishes JSON text (any JSON value), sent as given. Never blocks: queued while
/// disconnected.
///
/// # Safety
/// `channel` and `json` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn dn_publish_json(handle: u64, channel: *const c_char, json: *const c_char) -> i32 {
    guard(|| {
        let (channel, json) = (text(channel, "channel")?, text(json, "json")?);
        Ok(client(handle)?.publish_json(channel, json)?)
    })
}

/// Publishes bytes. `content_type` NULL or "" = application/octet-stream;
/// `meta_json` NULL or a JSON object. `data` may be NULL only when `len` is 0.
///
/// # Safety
/// `data` valid for `len` bytes; strings NUL-terminated or NULL where allowed.
#[no_mangle]
pub unsafe extern "C" fn dn_publish_binary(
    handle: u64,
    channel: *const c_char,
    data: *const u8,
    len: usize,
    content_type: *const c_char,
    meta_json: *const c_char,
) -> i32 {
    guard(|| {
        let channel = text(channel, "channel")?;
        let bytes = slice(data, len, "data")?;
        let content_type = optional_text(content_type, "content_type")?.unwrap_or("");
        let meta = optional_text(meta_json, "meta_json")?;
        Ok(client(handle)?.publish_binary(channel, bytes, content_type, meta)?)
    })
}

/// Status as NUL-terminated JSON text: state, conn_id, counters, last_error,
/// last_message_ms, rtt_ms and more (docs/REFERENCE.md lists every field).
///
/// # Safety
/// `buf` NULL with `cap` 0 or valid for `cap` bytes; `out_len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_status(handle: u64, buf: *mut c_char, cap: usize, out_len: *mut usize) -> i32 {
    guard(|| {
        check_buffer(buf, cap, "buf")?;
        check_out(out_len, "out_len")?;
        let status = client(handle)?.status().to_string();
        write_text(status.as_bytes(), buf, cap, out_len)
    })
}

/// Requests a channel's presence; returns at once. The answer (or error) arrives
/// later as a `DN_EVENT_PRESENCE` record.
///
/// # Safety
/// `channel` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn dn_request_presence(handle: u64, channel: *const c_char) -> i32 {
    guard(|| {
        let channel = text(channel, "channel")?;
        Ok(client(handle)?.request_presence(channel)?)
    })
}

/// Streams JSON on a channel: the newest value is sent at most `max_hz` times a
/// second (0 = no cap); values replaced before sending count as `coalesced`.
///
/// # Safety
/// `channel`, `json` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn dn_stream_json(handle: u64, channel: *const c_char, json: *const c_char, max_hz: f64) -> i32 {
    guard(|| {
        let (channel, json) = (text(channel, "channel")?, text(json, "json")?);
        Ok(client(handle)?.stream_json(channel, json, max_hz)?)
    })
}

/// Streams a DMX frame built from `values` (rules of `dn_build_dmx_frame`) as
/// `binary/dmx`, at most `max_hz` per second, newest value only.
///
/// # Safety
/// `channel` NUL-terminated; `values` valid for `count` doubles; `meta_json` NULL
/// or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn dn_stream_dmx(
    handle: u64,
    channel: *const c_char,
    values: *const f64,
    count: usize,
    length: i64,
    meta_json: *const c_char,
    max_hz: f64,
) -> i32 {
    guard(|| {
        let (channel, values) = (text(channel, "channel")?, slice(values, count, "values")?);
        let meta = optional_text(meta_json, "meta_json")?;
        Ok(client(handle)?.stream_dmx(channel, values, length, meta, max_hz)?)
    })
}

/// Streams ArtDMX packets of `values` as `binary/artnet`, at most `max_hz` per
/// second, newest value only; the Sequence field advances per packet sent (1..255).
///
/// # Safety
/// As `dn_stream_dmx`.
#[no_mangle]
pub unsafe extern "C" fn dn_stream_artnet(
    handle: u64,
    channel: *const c_char,
    values: *const f64,
    count: usize,
    universe: i64,
    subnet: i64,
    net: i64,
    physical: i64,
    meta_json: *const c_char,
    max_hz: f64,
) -> i32 {
    guard(|| {
        let (channel, values) = (text(channel, "channel")?, slice(values, count, "values")?);
        let meta = optional_text(meta_json, "meta_json")?;
        let header = ArtDmxHeader::clamped(universe, subnet, net, 0, physical);
        Ok(client(handle)?.stream_artnet(channel, values, header, meta, max_hz)?)
    })
}

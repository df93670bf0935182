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

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use once_cell::sync::Lazy;

use crate::client::{Client, Config};
use crate::protocol::base64;
use crate::protocol::error::DataNetError;
use crate::protocol::lighting::{self, ArtDmxHeader};

/// Success.
pub const DN_OK: i32 = 0;
/// A required pointer argument was NULL.
pub const DN_ERR_NULL_POINTER: i32 = -1;
/// The handle is unknown: never created, or already freed.
pub const DN_ERR_INVALID_HANDLE: i32 = -2;
/// A string argument is not valid UTF-8.
pub const DN_ERR_INVALID_UTF8: i32 = -3;
/// An argument was refused (bad config, bad JSON, bad channel name, too large).
pub const DN_ERR_INVALID_ARGUMENT: i32 = -4;
/// The caller's buffer is too small; the size needed was written.
pub const DN_ERR_BUFFER_TOO_SMALL: i32 = -5;
/// Nothing is stored for that channel or key.
pub const DN_ERR_NOT_FOUND: i32 = -6;
/// A bug inside the library was caught at the boundary.
pub const DN_ERR_PANIC: i32 = -7;

/// The ABI version `DataNet.py` checks at load time. Bump on any change to a
/// signature, a constant or the record format.
pub const DN_ABI_VERSION: u32 = 2;

/// Event kinds in a poll batch record (`kind` byte).
pub const DN_EVENT_MESSAGE_JSON: u8 = 1;
pub const DN_EVENT_MESSAGE_BINARY: u8 = 2;
pub const DN_EVENT_CONNECTED: u8 = 3;
pub const DN_EVENT_DISCONNECTED: u8 = 4;
pub const DN_EVENT_ERROR: u8 = 5;
pub const DN_EVENT_SUB_ACK: u8 = 6;
pub const DN_EVENT_PRESENCE: u8 = 7;
/// Record flag: a raw binary frame from an older gateway (no channel; deliver to
/// every binary subscriber).
pub const DN_FLAG_RAW: u8 = 1;
/// Record flag: a presence record whose payload is an error object.
pub const DN_FLAG_ERROR: u8 = 2;
/// Size of a record header in a poll batch.
pub const DN_RECORD_HEADER_LEN: u32 = 36;
/// `known_generation` value meaning "I have no names yet".
pub const DN_GENERATION_NONE: u64 = u64::MAX;

/// The header fields of a decoded ArtDMX packet.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DnArtDmx {
    pub universe: u8,
    pub subnet: u8,
    pub net: u8,
    pub sequence: u8,
    pub physical: u8,
    /// Net, Sub-Net and Universe as one 15-bit Port-Address.
    pub port_address: u16,
    /// Bytes of DMX data.
    pub length: usize,
}

/// What `dn_values` wrote (or, with `DN_ERR_BUFFER_TOO_SMALL`, needs).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DnValuesInfo {
    /// Changes whenever the set of numeric channels changes.
    pub generation: u64,
    /// Changes whenever any value changes.
    pub version: u64,
    /// Number of values (= number of names).
    pub count: usize,
    /// Bytes of names text written including the NUL, or 0 when the caller's
    /// generation was current and names were not written.
    pub names_len: usize,
}

static VERSION: &CStr = c"0.1.0";

static CLIENTS: Lazy<Mutex<HashMap<u64, Arc<Client>>>> = Lazy::new(|| Mutex::new(HashMap::new()));
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

/// # Safety
/// `out` is NULL or valid for one write of `T`.
unsafe fn write_out<T>(out: *mut T, value: T, name: &str) -> FfiResult {
    if out.is_null() {
        return Err(null(name));
    }
    out.write(value);
    Ok(())
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

/// Copies `bytes` into `out`; BUFFER_TOO_SMALL writes the size needed.
///
/// # Safety
/// `out` is NULL or valid for `cap` bytes of writes; `out_len` is NULL or valid.
unsafe fn write_bytes(bytes: &[u8], out: *mut u8, cap: usize, out_len: *mut usize) -> FfiResult {
    if out_len.is_null() {
        return Err(null("out_len"));
    }
    if out.is_null() || cap < bytes.len() {
        out_len.write(bytes.len());
        return Err(Failure(DN_ERR_BUFFER_TOO_SMALL, format!("buffer of {cap} bytes; {} needed", bytes.len())));
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len());
    out_len.write(bytes.len());
    Ok(())
}

/// Copies `bytes` and a NUL into `buf`; BUFFER_TOO_SMALL writes the size needed.
///
/// # Safety
/// `buf` is NULL or valid for `cap` bytes of writes; `out_len` is NULL or valid.
unsafe fn write_text(bytes: &[u8], buf: *mut c_char, cap: usize, out_len: *mut usize) -> FfiResult {
    if out_len.is_null() {
        return Err(null("out_len"));
    }
    let needed = bytes.len() + 1;
    if buf.is_null() || cap < needed {
        out_len.write(needed);
        return Err(Failure(DN_ERR_BUFFER_TOO_SMALL, format!("buffer of {cap} bytes; {needed} needed")));
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
    buf.add(bytes.len()).write(0);
    out_len.write(bytes.len());
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
/// with a NUL; `*out_len` gets its length without the NUL. Secrets never appear in it.
///
/// # Safety
/// `buf` valid for `cap` bytes; `out_len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_last_error(buf: *mut c_char, cap: usize, out_len: *mut usize) -> i32 {
    let message = LAST_ERROR.with(|last| last.borrow().clone());
    // Not through `guard`: reporting this failure must not overwrite the message.
    match catch_unwind(AssertUnwindSafe(|| write_text(message.as_bytes(), buf, cap, out_len))) {
        Ok(Ok(())) => DN_OK,
        Ok(Err(Failure(code, _))) => code,
        Err(_) => DN_ERR_PANIC,
    }
}

/// Creates a client from a JSON config object (`api_key` required; see README for
/// every key). Does not connect.
///
/// # Safety
/// `config_json` a NUL-terminated string; `out_handle` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_client_new(config_json: *const c_char, out_handle: *mut u64) -> i32 {
    guard(|| {
        let config = Config::from_json(text(config_json, "config_json")?)?;
        if out_handle.is_null() {
            return Err(null("out_handle"));
        }
        let client = Client::new(config)?;
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        CLIENTS.lock().unwrap_or_else(|p| p.into_inner()).insert(handle, Arc::new(client));
        write_out(out_handle, handle, "out_handle")
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
#[no_mangle]
pub extern "C" fn dn_disconnect(handle: u64) -> i32 {
    guard(|| {
        client(handle)?.disconnect();
        Ok(())
    })
}

/// Adds a subscriber to a channel (the first one sends `sub`).
///
/// # Safety
/// `channel` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn dn_subscribe(handle: u64, channel: *const c_char) -> i32 {
    guard(|| Ok(client(handle)?.subscribe(text(channel, "channel")?)?))
}

/// Removes a subscriber (the last one sends `unsub`). `DN_ERR_NOT_FOUND` when the
/// channel had no subscriber.
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

/// Publishes JSON text (any JSON value). Never blocks: queued while disconnected.
///
/// # Safety
/// `channel` and `json` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn dn_publish_json(handle: u64, channel: *const c_char, json: *const c_char) -> i32 {
    guard(|| Ok(client(handle)?.publish_json(text(channel, "channel")?, text(json, "json")?)?))
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
        let bytes = slice(data, len, "data")?;
        let channel = text(channel, "channel")?;
        let content_type = optional_text(content_type, "content_type")?.unwrap_or("");
        let meta = optional_text(meta_json, "meta_json")?;
        Ok(client(handle)?.publish_binary(channel, bytes, content_type, meta)?)
    })
}

/// Moves up to `max_events` events (0 = the config's `max_events_per_poll`) into
/// `buf` as consecutive records (format in this header's introduction).
/// `*out_len` gets the bytes written and `*out_count` the records. Events that do
/// not fit stay queued for the next call. When not even the first event fits,
/// returns `DN_ERR_BUFFER_TOO_SMALL` with the bytes it needs in `*out_len`.
///
/// # Safety
/// `buf` valid for `cap` bytes of writes; `out_len`, `out_count` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_poll(
    handle: u64,
    buf: *mut u8,
    cap: usize,
    max_events: u32,
    out_len: *mut usize,
    out_count: *mut u32,
) -> i32 {
    guard(|| {
        if out_len.is_null() || out_count.is_null() {
            return Err(null("out_len/out_count"));
        }
        if buf.is_null() && cap > 0 {
            return Err(null("buf"));
        }
        let client = client(handle)?;
        let max = if max_events == 0 { client.config().max_events_per_poll } else { max_events as usize };
        let mut batch = Vec::new();
        let mut count = 0u32;
        while (count as usize) < max {
            let Some(event) = client.next_event() else { break };
            let needed = batch::encoded_len(&event);
            if batch.len() + needed > cap {
                client.hold_event(event);
                if count == 0 {
                    out_len.write(needed);
                    return Err(Failure(
                        DN_ERR_BUFFER_TOO_SMALL,
                        format!("poll buffer of {cap} bytes; {needed} needed"),
                    ));
                }
                break;
            }
            batch::encode_event(&event, &mut batch);
            count += 1;
        }
        if !batch.is_empty() {
            std::ptr::copy_nonoverlapping(batch.as_ptr(), buf, batch.len());
        }
        out_len.write(batch.len());
        out_count.write(count);
        Ok(())
    })
}

/// Copies the numeric last values into `values` (in name order). When
/// `known_generation` differs from the current generation (pass
/// `DN_GENERATION_NONE` the first time) the names are also written to `names`
/// as NUL-terminated JSON text: an array of `[channel, key]` pairs, key paths
/// joined with `/` ("" for a bare number). `*out_info` tells what was written.
/// A too-small `values` or `names` returns `DN_ERR_BUFFER_TOO_SMALL` with the
/// needed `count` and `names_len` in `*out_info`.
///
/// # Safety
/// `values` valid for `values_cap` doubles; `names` valid for `names_cap` bytes (or
/// NULL with 0); `out_info` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_values(
    handle: u64,
    known_generation: u64,
    values: *mut f64,
    values_cap: usize,
    names: *mut c_char,
    names_cap: usize,
    out_info: *mut DnValuesInfo,
) -> i32 {
    guard(|| {
        if out_info.is_null() {
            return Err(null("out_info"));
        }
        let client = client(handle)?;
        let snapshot = client.snapshot(Some(known_generation));
        let names_text = (known_generation != snapshot.names_generation).then(|| {
            let pairs: Vec<[&str; 2]> = snapshot.names.iter().map(|(c, k)| [c.as_str(), k.as_str()]).collect();
            serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
        });
        let count = snapshot.values.len();
        let names_len = names_text.as_ref().map_or(0, |t| t.len() + 1);
        let info =
            DnValuesInfo { generation: snapshot.names_generation, version: snapshot.values_version, count, names_len };
        if values_cap < count
            || (values.is_null() && count > 0)
            || names_cap < names_len
            || (names.is_null() && names_len > 0)
        {
            out_info.write(info);
            return Err(Failure(
                DN_ERR_BUFFER_TOO_SMALL,
                format!("values need {count} doubles and {names_len} bytes of names"),
            ));
        }
        if count > 0 {
            std::ptr::copy_nonoverlapping(snapshot.values.as_ptr(), values, count);
        }
        if let Some(text) = names_text {
            std::ptr::copy_nonoverlapping(text.as_ptr(), names.cast::<u8>(), text.len());
            names.add(text.len()).write(0);
        }
        out_info.write(info);
        Ok(())
    })
}

/// The newest value of one numeric field (`key` "" for a bare number, else a path
/// like "pos/x"). `DN_ERR_NOT_FOUND` when none is stored.
///
/// # Safety
/// `channel`, `key` NUL-terminated strings; `out_value` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_value(handle: u64, channel: *const c_char, key: *const c_char, out_value: *mut f64) -> i32 {
    guard(|| {
        let (channel, key) = (text(channel, "channel")?, text(key, "key")?);
        let value = client(handle)?.value(channel, key);
        let value = value.ok_or_else(|| Failure(DN_ERR_NOT_FOUND, format!("no value for {channel} {key}")))?;
        write_out(out_value, value, "out_value")
    })
}

/// The newest message of a subscribed channel as one record (same format as
/// `dn_poll`). `DN_ERR_NOT_FOUND` when none; `DN_ERR_BUFFER_TOO_SMALL` writes the
/// size needed to `*out_len`.
///
/// # Safety
/// `channel` NUL-terminated; `buf` valid for `cap` bytes; `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_last_message(
    handle: u64,
    channel: *const c_char,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        let channel = text(channel, "channel")?;
        if out_len.is_null() {
            return Err(null("out_len"));
        }
        let message = client(handle)?.last_message(channel);
        let message = message.ok_or_else(|| Failure(DN_ERR_NOT_FOUND, format!("no message stored for {channel}")))?;
        let mut record = Vec::new();
        batch::encode_message(&message, &mut record);
        write_bytes(&record, buf, cap, out_len)
    })
}

/// Status as NUL-terminated JSON text: state, conn_id, counters, last_error,
/// last_message_ms, rtt_ms and more (README lists every field).
///
/// # Safety
/// `buf` valid for `cap` bytes; `out_len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn dn_status(handle: u64, buf: *mut c_char, cap: usize, out_len: *mut usize) -> i32 {
    guard(|| {
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
    guard(|| Ok(client(handle)?.request_presence(text(channel, "channel")?)?))
}

/// Builds a DMX frame (PROTOCOL.md §9): `length` clamped to 1..512; each value
/// truncated toward zero and clamped to 0..255, NaN as 0; missing values 0.
///
/// # Safety
/// `values` valid for `count` doubles; `out` for `cap` bytes; `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_build_dmx_frame(
    values: *const f64,
    count: usize,
    length: i64,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| write_bytes(&lighting::build_dmx_frame(slice(values, count, "values")?, length), out, cap, out_len))
}

/// Builds an ArtDMX packet: fields clamped (universe and subnet 0..15, net 0..127,
/// sequence and physical 0..255); data length max(len, 2) clamped to 2..512 and
/// rounded up to even, zero-padded.
///
/// # Safety
/// `dmx` valid for `len` bytes; `out` for `cap` bytes; `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_build_art_dmx_packet(
    dmx: *const u8,
    len: usize,
    universe: i64,
    subnet: i64,
    net: i64,
    sequence: i64,
    physical: i64,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        let header = ArtDmxHeader::clamped(universe, subnet, net, sequence, physical);
        write_bytes(&lighting::build_art_dmx_packet(slice(dmx, len, "dmx")?, header), out, cap, out_len)
    })
}

/// Decodes an ArtDMX packet: header fields into `*out_header`, DMX data into
/// `data` (up to 512 bytes; `*out_len` gets its length). A packet that is not a
/// valid ArtDMX is `DN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `packet` valid for `len` bytes; `data` for `cap` bytes; out-pointers valid.
#[no_mangle]
pub unsafe extern "C" fn dn_decode_art_dmx(
    packet: *const u8,
    len: usize,
    out_header: *mut DnArtDmx,
    data: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        if out_header.is_null() {
            return Err(null("out_header"));
        }
        let decoded = lighting::decode_art_dmx(slice(packet, len, "packet")?)?;
        write_bytes(&decoded.data, data, cap, out_len)?;
        let h = decoded.header;
        let header = DnArtDmx {
            universe: h.universe,
            subnet: h.subnet,
            net: h.net,
            sequence: h.sequence,
            physical: h.physical,
            port_address: h.port_address(),
            length: decoded.data.len(),
        };
        write_out(out_header, header, "out_header")
    })
}

/// Standard padded base64 of `data`, NUL-terminated.
///
/// # Safety
/// `data` valid for `len` bytes; `out` for `cap` bytes; `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_base64_encode(
    data: *const u8,
    len: usize,
    out: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| write_text(base64::encode(slice(data, len, "data")?).as_bytes(), out, cap, out_len))
}

/// Decodes standard padded base64; invalid text is `DN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `text` NUL-terminated; `out` valid for `cap` bytes; `out_len` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_base64_decode(text: *const c_char, out: *mut u8, cap: usize, out_len: *mut usize) -> i32 {
    guard(|| {
        let decoded = base64::decode(self::text(text, "text")?)
            .map_err(|e| Failure(DN_ERR_INVALID_ARGUMENT, format!("invalid_argument: {e}")))?;
        write_bytes(&decoded, out, cap, out_len)
    })
}

/// Streams JSON on a channel: the newest value is sent at most `max_hz` times a
/// second (0 = no cap); values replaced before sending count as `coalesced`.
///
/// # Safety
/// `channel`, `json` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn dn_stream_json(handle: u64, channel: *const c_char, json: *const c_char, max_hz: f64) -> i32 {
    guard(|| Ok(client(handle)?.stream_json(text(channel, "channel")?, text(json, "json")?, max_hz)?))
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

//! What a host reads from a client: the frame's events (`dn_poll`), the table rows
//! (`dn_rows`), the numeric last values (`dn_values`, `dn_value`) and a channel's
//! last message (`dn_last_message`).

use std::cell::RefCell;
use std::ffi::c_char;

use super::batch::{self, BatchWriter, Grouping};
use super::{
    check_buffer, check_out, client, guard, text, too_small, write_bytes, DnPollInfo, DnRowsInfo, DnValuesInfo,
    Failure, DN_ERR_BUFFER_TOO_SMALL, DN_ERR_INVALID_ARGUMENT, DN_ERR_NOT_FOUND, DN_POLL_GROUP_JSON,
    DN_POLL_GROUP_PICKLE,
};
use crate::client::{Client, Event};

thread_local! {
    /// One poll's batch is built here and copied out once; kept between calls so a
    /// steady stream allocates nothing.
    static BATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The events of one poll once written, handed to the socket thread to free.
    static DELIVERED: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

/// Moves up to `max_events` waiting events (0 = the config's `max_events_per_poll`)
/// into `buf` as consecutive records (format in this header's introduction), then
/// the newest message of every `DN_DELIVER_LATEST` channel that had one. `flags`:
/// 0, `DN_POLL_GROUP_JSON` or `DN_POLL_GROUP_PICKLE`. Events that do not fit stay
/// queued, in order, for the next call. When not even the first fits, returns
/// `DN_ERR_BUFFER_TOO_SMALL` with its size in `out_info->len` (a NULL `buf` with
/// `cap` 0 asks just that).
///
/// # Safety
/// `buf` NULL with `cap` 0, or valid for `cap` bytes of writes; `out_info` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_poll(
    handle: u64,
    buf: *mut u8,
    cap: usize,
    max_events: u32,
    flags: u32,
    out_info: *mut DnPollInfo,
) -> i32 {
    guard(|| {
        check_buffer(buf, cap, "buf")?;
        check_out(out_info, "out_info")?;
        let grouping = match flags {
            0 => Grouping::None,
            DN_POLL_GROUP_JSON => Grouping::Json,
            DN_POLL_GROUP_PICKLE => Grouping::Pickle,
            _ => {
                let why =
                    format!("invalid_argument: poll flags {flags:#x} (0, DN_POLL_GROUP_JSON or DN_POLL_GROUP_PICKLE)");
                return Err(Failure(DN_ERR_INVALID_ARGUMENT, why));
            }
        };
        let client = client(handle)?;
        client.polled();
        if grouping == Grouping::Pickle {
            client.want_pickles();
        }
        if client.pending_events() == 0 {
            // The usual frame of a quiet show returns here, having touched little:
            // a host's first call in a frame finds its caches cold, and each
            // structure touched then costs (the benchmark's idle frame).
            out_info.write(poll_info(&client, 0, 0, 0, 0));
            return Ok(());
        }
        let max = if max_events == 0 { client.config().max_events_per_poll } else { max_events as usize };
        BATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let mut batch = BatchWriter::new(&mut scratch, cap, grouping).with_shared_strings(client.pickle_strings());
            let mut delivered = DELIVERED.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
            let mut events = 0u32;
            let mut first_needed = None;
            while (events as usize) < max {
                let Some(event) = client.next_event() else { break };
                if let Err(needed) = batch.push_event(&event) {
                    client.hold_event(event);
                    first_needed = (events == 0).then_some(needed);
                    break;
                }
                delivered.push(event);
                events += 1;
            }
            if first_needed.is_none() {
                let mut latest = client.take_latest().into_iter();
                for entry in latest.by_ref() {
                    if let Err(needed) = batch.push_message(&entry.message, entry.replaced) {
                        first_needed = (events == 0).then_some(needed);
                        client.give_back_latest(entry);
                        break;
                    }
                    delivered.push(Event::Message(entry.message));
                    events += 1;
                }
                latest.for_each(|entry| client.give_back_latest(entry));
            }
            client.retire(&mut delivered);
            DELIVERED.with(|cell| *cell.borrow_mut() = delivered);
            if let Some(needed) = first_needed {
                std::ptr::addr_of_mut!((*out_info).len).write(needed as u64);
                return Err(too_small(cap, needed));
            }
            let records = batch.records;
            let bytes = batch.finish();
            if !bytes.is_empty() {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
            }
            out_info.write(poll_info(&client, bytes.len(), events, records, client.pending_events()));
            Ok(())
        })
    })
}

fn poll_info(client: &Client, len: usize, events: u32, records: u32, pending: usize) -> DnPollInfo {
    DnPollInfo {
        len: len as u64,
        events,
        records,
        pending: pending as u64,
        values_version: client.values_version(),
        row_seq: client.newest_row(),
    }
}

/// Copies the newest table rows after row `after_seq` (0 = from the start), at
/// most `max_rows` of them (the newest), as UTF-8 text without a NUL: rows
/// separated by 0x1E, the cells `channel, data, from, ts` by 0x1F (neither occurs
/// inside a cell). `data` is the JSON text as sent, cut after 4096 characters with
/// `...`, or `<content type, N bytes>` for binary. `out_info->newest_seq` is the
/// next `after_seq`; rows not returned are counted in `out_info->skipped`. The
/// library keeps the newest `table_history` rows (config, default 1000).
///
/// # Safety
/// `buf` NULL with `cap` 0, or valid for `cap` bytes of writes; `out_info` valid.
#[no_mangle]
pub unsafe extern "C" fn dn_rows(
    handle: u64,
    after_seq: u64,
    max_rows: u32,
    buf: *mut u8,
    cap: usize,
    out_info: *mut DnRowsInfo,
) -> i32 {
    guard(|| {
        check_buffer(buf, cap, "buf")?;
        check_out(out_info, "out_info")?;
        let mut text = String::new();
        let read = client(handle)?.read_rows(after_seq, max_rows as usize, &mut text);
        if text.len() > cap {
            std::ptr::addr_of_mut!((*out_info).len).write(text.len() as u64);
            return Err(too_small(cap, text.len()));
        }
        if !text.is_empty() {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf, text.len());
        }
        out_info.write(DnRowsInfo {
            len: text.len() as u64,
            rows: read.rows as u32,
            reserved: 0,
            newest_seq: read.newest_seq,
            skipped: read.skipped,
        });
        Ok(())
    })
}

/// Copies the numeric last values into `values` (in name order). When
/// `known_generation` differs from the current generation (pass
/// `DN_GENERATION_NONE` the first time) the names are also written to `names`
/// as NUL-terminated JSON text: an array of `[channel, key]` pairs, key paths
/// joined with `/` ("" for a bare number), in first-seen order (across and within
/// messages: the publisher's field order). Values are doubles: integers beyond
/// 2^53 are rounded to the nearest double. `*out_info` tells what was written.
/// A too-small `values` or `names` returns `DN_ERR_BUFFER_TOO_SMALL` with the
/// needed `count` and `names_len` in `*out_info` (NULL buffers with capacity 0
/// ask just that).
///
/// # Safety
/// `values` NULL with `values_cap` 0 or valid for `values_cap` doubles; `names`
/// NULL with `names_cap` 0 or valid for `names_cap` bytes; `out_info` valid.
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
        check_buffer(values, values_cap, "values")?;
        check_buffer(names, names_cap, "names")?;
        check_out(out_info, "out_info")?;
        let client = client(handle)?;
        let snapshot = client.snapshot(Some(known_generation));
        let names_text = (known_generation != snapshot.names_generation).then(|| {
            let pairs: Vec<[&str; 2]> = snapshot.names.iter().map(|(c, k)| [c.as_str(), k.as_str()]).collect();
            serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
        });
        let count = snapshot.values.len();
        let names_len = names_text.as_ref().map_or(0, String::len);
        if values_cap < count || names_text.is_some() && names_cap < names_len + 1 {
            std::ptr::addr_of_mut!((*out_info).count).write(count as u64);
            std::ptr::addr_of_mut!((*out_info).names_len).write(names_len as u64);
            return Err(Failure(
                DN_ERR_BUFFER_TOO_SMALL,
                format!("values need {count} doubles and {} bytes of names", names_len + 1),
            ));
        }
        if count > 0 {
            std::ptr::copy_nonoverlapping(snapshot.values.as_ptr(), values, count);
        }
        if let Some(text) = names_text {
            std::ptr::copy_nonoverlapping(text.as_ptr(), names.cast::<u8>(), text.len());
            names.add(text.len()).write(0);
        }
        out_info.write(DnValuesInfo {
            generation: snapshot.names_generation,
            version: snapshot.values_version,
            count: count as u64,
            names_len: names_len as u64,
        });
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
        check_out(out_value, "out_value")?;
        let value = client(handle)?.value(channel, key);
        let value = value.ok_or_else(|| Failure(DN_ERR_NOT_FOUND, format!("no value for {channel} {key}")))?;
        out_value.write(value);
        Ok(())
    })
}

/// The newest message of a subscribed channel as one record (the format of
/// `dn_poll`, never grouped). `DN_ERR_NOT_FOUND` when none.
///
/// # Safety
/// `channel` NUL-terminated; `buf` NULL with `cap` 0 or valid for `cap` bytes;
/// `out_len` valid.
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
        check_buffer(buf, cap, "buf")?;
        check_out(out_len, "out_len")?;
        let message = client(handle)?.last_message(channel);
        let message = message.ok_or_else(|| Failure(DN_ERR_NOT_FOUND, format!("no message stored for {channel}")))?;
        let mut record = Vec::new();
        batch::encode_message(&message, &mut record);
        write_bytes(&record, buf, cap, out_len)
    })
}

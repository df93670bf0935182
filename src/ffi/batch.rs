//! The record format of `dn_poll` and `dn_last_message` (documented in
//! `include/datanet.h`). Safe code: the FFI layer only copies the bytes out.
//!
//! Each record, little-endian, no padding:
//! ```text
//! offset size field
//!  0     4    record_len        whole record, header included
//!  4     1    kind              DN_EVENT_*
//!  5     1    flags             DN_FLAG_*
//!  6     2    reserved          0
//!  8     8    ts                server time, ms since the Unix epoch (0 = none)
//! 16     4    replaced          older messages this one replaced (DN_DELIVER_LATEST)
//! 20     4    channel_len
//! 24     4    from_len
//! 28     4    content_type_len
//! 32     4    meta_len
//! 36     4    payload_len
//! 40     ...  channel, from, content_type, meta, payload (in this order)
//! ```
//! With `DN_POLL_GROUP_JSON`, consecutive JSON messages share one
//! `DN_EVENT_MESSAGES_JSON` record whose payload is one JSON array,
//! `[[channel, from, ts, data, replaced], ...]`, with each `data` spliced in as
//! the gateway's own text: a host turns a whole frame of messages into objects
//! with one JSON parse. `DN_POLL_GROUP_PICKLE` makes the same messages a Python
//! pickle, a list of tuples (`DN_EVENT_MESSAGES_PICKLE`, see `protocol/pickle.rs`),
//! for Python hosts:
//! each message's part is copied as the socket thread wrote it when it arrived.

use std::io::Write;
use std::sync::Mutex;

use super::{
    DN_EVENT_CONNECTED as EVENT_CONNECTED, DN_EVENT_DISCONNECTED as EVENT_DISCONNECTED, DN_EVENT_ERROR as EVENT_ERROR,
    DN_EVENT_MESSAGES_JSON as EVENT_MESSAGES_JSON, DN_EVENT_MESSAGES_PICKLE as EVENT_MESSAGES_PICKLE,
    DN_EVENT_MESSAGE_BINARY as EVENT_MESSAGE_BINARY, DN_EVENT_MESSAGE_JSON as EVENT_MESSAGE_JSON,
    DN_EVENT_PRESENCE as EVENT_PRESENCE, DN_EVENT_SUB_ACK as EVENT_SUB_ACK, DN_FLAG_ERROR as FLAG_ERROR,
    DN_FLAG_RAW as FLAG_RAW,
};
use crate::client::{Body, Event, Message};
use crate::protocol::pickle::{self, SharedStrings, SlotsUsed};

pub(super) const HEADER_LEN: usize = super::DN_RECORD_HEADER_LEN as usize;
const PAYLOAD_LEN_AT: usize = 36;

/// The parts of one record, borrowed from the event.
struct Record<'a> {
    kind: u8,
    flags: u8,
    ts: i64,
    replaced: u32,
    channel: &'a [u8],
    from: &'a [u8],
    content_type: &'a [u8],
    meta: &'a [u8],
    payload: std::borrow::Cow<'a, [u8]>,
}

impl Record<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let fields: [&[u8]; 5] = [self.channel, self.from, self.content_type, self.meta, &self.payload];
        let len = HEADER_LEN + fields.iter().map(|f| f.len()).sum::<usize>();
        out.reserve(len);
        write_header(out, len, self.kind, self.flags, self.ts, self.replaced, fields.map(<[u8]>::len));
        for field in fields {
            out.extend_from_slice(field);
        }
    }
}

fn write_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, ts: i64, replaced: u32, lens: [usize; 5]) {
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[kind, flags, 0, 0]);
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(&replaced.to_le_bytes());
    for field_len in lens {
        out.extend_from_slice(&(field_len as u32).to_le_bytes());
    }
}

fn message_record(message: &Message, replaced: u32) -> Record<'_> {
    let (kind, flags, content_type, meta, payload): (u8, u8, &[u8], &[u8], &[u8]) = match &message.body {
        Body::Json(text) => (EVENT_MESSAGE_JSON, 0, b"", b"", text.as_bytes()),
        Body::Binary { data, content_type, meta, raw } => (
            EVENT_MESSAGE_BINARY,
            if *raw { FLAG_RAW } else { 0 },
            content_type.as_bytes(),
            meta.as_deref().unwrap_or("").as_bytes(),
            data,
        ),
    };
    Record {
        kind,
        flags,
        ts: message.ts,
        replaced,
        channel: message.channel.as_bytes(),
        from: message.from.as_bytes(),
        content_type,
        meta,
        payload: payload.into(),
    }
}

fn event_record(event: &Event) -> Record<'_> {
    let plain = |kind: u8, payload: Vec<u8>| Record {
        kind,
        flags: 0,
        ts: 0,
        replaced: 0,
        channel: b"",
        from: b"",
        content_type: b"",
        meta: b"",
        payload: payload.into(),
    };
    match event {
        Event::Message(message) => message_record(message, 0),
        Event::Connected { conn_id } => plain(EVENT_CONNECTED, conn_id.as_bytes().to_vec()),
        Event::Disconnected { reason } => plain(EVENT_DISCONNECTED, reason.as_bytes().to_vec()),
        Event::Error(error) => Record {
            channel: error.channel.as_deref().unwrap_or("").as_bytes(),
            ..plain(EVENT_ERROR, error.to_json().to_string().into_bytes())
        },
        Event::SubAck { channel, occupancy } => Record {
            channel: channel.as_bytes(),
            ..plain(EVENT_SUB_ACK, serde_json::json!({ "occupancy": occupancy }).to_string().into_bytes())
        },
        Event::Presence { channel, result } => {
            let (flags, payload) = match result.as_ref() {
                Ok(presence) => (0, presence.to_json().to_string()),
                Err(error) => (FLAG_ERROR, error.to_json().to_string()),
            };
            Record { channel: channel.as_bytes(), flags, ..plain(EVENT_PRESENCE, payload.into_bytes()) }
        }
    }
}

/// One message as one record.
pub fn encode_message(message: &Message, out: &mut Vec<u8>) {
    message_record(message, 0).write(out);
}

/// How a poll's JSON messages are put in records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// One record per message.
    None,
    /// Runs of messages as one JSON array (`DN_EVENT_MESSAGES_JSON`).
    Json,
    /// Runs of messages as one Python pickle (`DN_EVENT_MESSAGES_PICKLE`).
    Pickle,
}

/// The group record being built, if any.
enum OpenGroup {
    None,
    /// The JSON array, written in place from this offset (its record's header).
    Json(usize),
    /// The pickle, written in place from this offset (its record's header).
    Pickle(usize),
}

/// Builds one poll batch within a capacity. Each `push_*` either appends the whole
/// event or leaves the batch as it was and returns the bytes that event alone would
/// need, so the caller can keep it for the next poll.
pub struct BatchWriter<'a> {
    out: &'a mut Vec<u8>,
    cap: usize,
    grouping: Grouping,
    group: OpenGroup,
    /// For a message the socket thread did not write as a pickle.
    memo: pickle::Memo,
    /// The strings messages written on arrival share, and which of their slots
    /// the open pickle batch defined.
    shared: Option<&'a Mutex<SharedStrings>>,
    defined: SlotsUsed,
    pub records: u32,
}

impl<'a> BatchWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>, cap: usize, grouping: Grouping) -> Self {
        out.clear();
        BatchWriter {
            out,
            cap,
            grouping,
            group: OpenGroup::None,
            memo: pickle::Memo::default(),
            shared: None,
            defined: SlotsUsed::default(),
            records: 0,
        }
    }

    /// The shared strings of the client whose messages this writes (needed for
    /// messages it wrote as pickles on arrival; without, they are written again).
    pub fn with_shared_strings(mut self, shared: &'a Mutex<SharedStrings>) -> Self {
        self.shared = Some(shared);
        self
    }

    pub fn push_event(&mut self, event: &Event) -> Result<(), usize> {
        match event {
            Event::Message(message) => self.push_message(message, 0),
            other => self.push_record(&event_record(other)),
        }
    }

    pub fn push_message(&mut self, message: &Message, replaced: u32) -> Result<(), usize> {
        match (&message.body, self.grouping) {
            (Body::Json(text), Grouping::Json) => self.push_json(message, text, replaced),
            (Body::Json(text), Grouping::Pickle) => match self.push_pickled(message, text, replaced) {
                // Text the envelope decoder passed cannot fail here; if it ever did,
                // the message still arrives, as a record of its own.
                Err(None) => self.push_record(&message_record(message, replaced)),
                other => other.map_err(|needed| needed.unwrap_or(0)),
            },
            _ => self.push_record(&message_record(message, replaced)),
        }
    }

    fn push_record(&mut self, record: &Record<'_>) -> Result<(), usize> {
        self.close_group();
        let start = self.out.len();
        record.write(self.out);
        if self.out.len() > self.cap {
            let needed = self.out.len() - start;
            self.out.truncate(start);
            return Err(needed);
        }
        self.records += 1;
        Ok(())
    }

    fn push_json(&mut self, message: &Message, text: &str, replaced: u32) -> Result<(), usize> {
        if matches!(self.group, OpenGroup::Pickle(_)) {
            self.close_group();
        }
        let start = self.out.len();
        let opened = !matches!(self.group, OpenGroup::Json(_));
        if opened {
            write_header(self.out, 0, EVENT_MESSAGES_JSON, 0, 0, 0, [0; 5]);
            self.out.push(b'[');
        } else {
            self.out.push(b',');
        }
        let entry_start = self.out.len();
        self.out.push(b'[');
        json_string(self.out, &message.channel);
        self.out.push(b',');
        json_string(self.out, &message.from);
        let _ = write!(self.out, ",{},", message.ts);
        self.out.extend_from_slice(text.as_bytes());
        let _ = write!(self.out, ",{replaced}]");
        // The group's closing `]` must fit too.
        if self.out.len() + 1 > self.cap {
            let needed = HEADER_LEN + 2 + (self.out.len() - entry_start);
            self.out.truncate(start);
            return Err(needed);
        }
        if opened {
            self.group = OpenGroup::Json(start);
            self.records += 1;
        }
        Ok(())
    }

    /// `Err(Some(needed))`: does not fit; `Err(None)`: the text is not JSON.
    fn push_pickled(&mut self, message: &Message, text: &str, replaced: u32) -> Result<(), Option<usize>> {
        if matches!(self.group, OpenGroup::Json(_)) {
            self.close_group();
        }
        let start = self.out.len();
        let opened = !matches!(self.group, OpenGroup::Pickle(_));
        if opened {
            write_header(self.out, 0, EVENT_MESSAGES_PICKLE, 0, 0, 0, [0; 5]);
            pickle::open_batch(self.out);
            self.defined = SlotsUsed::default();
        }
        let entry_start = self.out.len();
        let written = match (&message.pickled, self.shared) {
            (Some(pickled), Some(shared)) => {
                let missing = pickled.slots.missing_from(&self.defined);
                if !missing.is_empty() {
                    // A poisoned lock still holds whole strings: they are only appended.
                    let strings = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    pickle::define_slots(self.out, &strings, &missing);
                }
                self.out.extend_from_slice(&pickled.bytes);
                Ok(missing)
            }
            _ => {
                pickle::write_message(self.out, &mut self.memo, None, &message.channel, &message.from, message.ts, text)
            }
        };
        let Ok(defined_now) = written else {
            self.out.truncate(start);
            return Err(None);
        };
        pickle::end_message(self.out, replaced);
        // The batch's closing bytes must fit too.
        if self.out.len() + pickle::CLOSE_LEN > self.cap {
            let needed = HEADER_LEN + pickle::OPEN_LEN + (self.out.len() - entry_start) + pickle::CLOSE_LEN;
            self.out.truncate(start);
            return Err(Some(needed));
        }
        if opened {
            self.group = OpenGroup::Pickle(start);
            self.records += 1;
        }
        self.defined.add(&defined_now);
        Ok(())
    }

    fn close_group(&mut self) {
        match std::mem::replace(&mut self.group, OpenGroup::None) {
            OpenGroup::None => {}
            OpenGroup::Json(start) => {
                self.out.push(b']');
                self.patch_lengths(start);
            }
            OpenGroup::Pickle(start) => {
                pickle::close_batch(self.out, start + HEADER_LEN);
                self.patch_lengths(start);
            }
        }
    }

    /// Writes the record length and payload length of the group record at `start`.
    fn patch_lengths(&mut self, start: usize) {
        let len = self.out.len() - start;
        self.out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        let payload_len = (len - HEADER_LEN) as u32;
        self.out[start + PAYLOAD_LEN_AT..start + PAYLOAD_LEN_AT + 4].copy_from_slice(&payload_len.to_le_bytes());
    }

    /// Closes the batch; returns its bytes.
    pub fn finish(mut self) -> &'a [u8] {
        self.close_group();
        self.out
    }
}

fn json_string(out: &mut Vec<u8>, text: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::DataNetError;
    use std::sync::Arc;

    fn u32_at(b: &[u8], at: usize) -> usize {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
    }

    fn json_message(channel: &str, text: &str, ts: i64) -> Message {
        Message::json(channel, "c\"1", ts, text)
    }

    #[test]
    fn binary_message_layout() {
        let message = Message {
            channel: "ch".into(),
            from: "c-1".into(),
            ts: 0x0102_0304_0506_0708,
            body: Body::Binary {
                data: vec![1, 2, 3],
                content_type: "binary/dmx".into(),
                meta: Some("{}".into()),
                raw: true,
            },
            pickled: None,
        };
        let mut buf = Vec::new();
        let mut batch = BatchWriter::new(&mut buf, 1 << 20, Grouping::Json);
        batch.push_message(&message, 7).unwrap();
        let out = batch.finish();
        assert_eq!(u32_at(out, 0), out.len());
        assert_eq!((out[4], out[5]), (EVENT_MESSAGE_BINARY, FLAG_RAW));
        assert_eq!(i64::from_le_bytes(out[8..16].try_into().unwrap()), 0x0102_0304_0506_0708);
        assert_eq!(u32_at(out, 16), 7);
        let lens: Vec<usize> = (0..5).map(|i| u32_at(out, 20 + 4 * i)).collect();
        assert_eq!(lens, vec![2, 3, 10, 2, 3]);
        assert_eq!(&out[HEADER_LEN..], b"chc-1binary/dmx{}\x01\x02\x03");
    }

    #[test]
    fn grouped_json_is_one_array_with_the_payload_text_as_sent() {
        let mut buf = Vec::new();
        let mut batch = BatchWriter::new(&mut buf, 1 << 20, Grouping::Json);
        batch.push_event(&Event::Message(Arc::new(json_message("a", r#"{"b":1,"a":1e-3}"#, 5)))).unwrap();
        batch.push_message(&json_message("b", "[ 1 ]", 6), 3).unwrap();
        batch.push_event(&Event::Connected { conn_id: "c-9".into() }).unwrap();
        batch.push_message(&json_message("c", "null", 7), 0).unwrap();
        assert_eq!(batch.records, 3);
        let out = batch.finish().to_vec();
        let first_len = u32_at(&out, 0);
        assert_eq!(out[4], EVENT_MESSAGES_JSON);
        let payload = std::str::from_utf8(&out[HEADER_LEN..first_len]).unwrap();
        assert_eq!(u32_at(&out, PAYLOAD_LEN_AT), payload.len());
        assert_eq!(payload, r#"[["a","c\"1",5,{"b":1,"a":1e-3},0],["b","c\"1",6,[ 1 ],3]]"#);
        assert_eq!(out[first_len + 4], EVENT_CONNECTED);
        let third = first_len + u32_at(&out, first_len);
        assert_eq!(&out[third + HEADER_LEN..], br#"[["c","c\"1",7,null,0]]"#);
        assert_eq!(third + u32_at(&out, third), out.len());
    }

    #[test]
    fn messages_written_on_arrival_and_at_poll_share_one_pickle_batch() {
        let text = r#"{"k":[1,{"k":2.5}],"s":"\u00e9"}"#;
        let plain = json_message("a", text, 5);
        let mut early = json_message("a", text, 5);
        let mut part = Vec::new();
        let mut strings = SharedStrings::default();
        let slots =
            pickle::write_message(&mut part, &mut pickle::Memo::default(), Some(&mut strings), "a", "c\"1", 5, text)
                .unwrap();
        early.pickled = Some(pickle::Pickled { bytes: part.into_boxed_slice(), slots });
        let strings = Mutex::new(strings);
        let pickled = |messages: &[&Message]| {
            let mut buf = Vec::new();
            let mut batch = BatchWriter::new(&mut buf, 1 << 20, Grouping::Pickle).with_shared_strings(&strings);
            for (n, message) in messages.iter().enumerate() {
                batch.push_message(message, n as u32).unwrap();
            }
            assert_eq!(batch.records, 1);
            batch.finish().to_vec()
        };
        let out = pickled(&[&plain, &early, &early]);
        assert!(pickle::only_data_opcodes(&out[HEADER_LEN..]));
        // MARK, "a" into slot 64 (the channel, the first string shared).
        let defines_channel = [b'(', 0x8c, 1, b'a', b'q', 64];
        let definitions = |out: &[u8]| out.windows(defines_channel.len()).filter(|w| *w == defines_channel).count();
        assert_eq!(definitions(&out), 1, "the shared strings are defined once, before the first message reading them");
        assert_eq!(definitions(&pickled(&[&plain, &plain])), 0, "messages written at poll share nothing");
        assert_eq!((u32_at(&out, 0), out[4]), (out.len(), EVENT_MESSAGES_PICKLE));
        assert_eq!(u32_at(&out, PAYLOAD_LEN_AT), out.len() - HEADER_LEN);
        let framed = u64::from_le_bytes(out[HEADER_LEN + 3..HEADER_LEN + 11].try_into().unwrap());
        assert_eq!(framed as usize, out.len() - HEADER_LEN - 11, "one pickle frame holds the rest");
        assert_eq!(&out[out.len() - 2..], b"e.");
    }

    #[test]
    fn what_does_not_fit_is_left_out_whole() {
        let big = json_message("a", &format!("\"{}\"", "x".repeat(100)), 1);
        let mut buf = Vec::new();
        let mut batch = BatchWriter::new(&mut buf, 200, Grouping::Json);
        batch.push_message(&big, 0).unwrap();
        let len_one = {
            let mut probe = Vec::new();
            let mut b = BatchWriter::new(&mut probe, 1 << 20, Grouping::Json);
            b.push_message(&big, 0).unwrap();
            b.finish().len()
        };
        let needed = batch.push_message(&big, 0).unwrap_err();
        assert_eq!(needed, len_one, "alone it needs a whole group record");
        let out = batch.finish();
        assert_eq!(out.len(), len_one);
        assert_eq!(u32_at(out, 0), out.len());

        let mut buf = Vec::new();
        let mut tiny = BatchWriter::new(&mut buf, 10, Grouping::None);
        assert_eq!(tiny.push_message(&big, 0).unwrap_err(), HEADER_LEN + 1 + 3 + 102, "channel, from, payload");
        assert!(tiny.finish().is_empty());
    }

    #[test]
    fn error_and_presence_records() {
        let error = DataNetError::new("rate_limited", "slow down").with_channel("c");
        let mut buf = Vec::new();
        let mut batch = BatchWriter::new(&mut buf, 1 << 20, Grouping::None);
        batch.push_event(&Event::Error(Box::new(error))).unwrap();
        let failed =
            Event::Presence { channel: "c".into(), result: Box::new(Err(DataNetError::new("not_connected", "no"))) };
        batch.push_event(&failed).unwrap();
        let out = batch.finish();
        assert_eq!(out[4], EVENT_ERROR);
        assert_eq!(u32_at(out, 20), 1);
        let first = u32_at(out, 0);
        let payload: serde_json::Value = serde_json::from_slice(&out[HEADER_LEN + 1..first]).unwrap();
        assert_eq!(payload["code"], "rate_limited");
        assert_eq!((out[first + 4], out[first + 5]), (EVENT_PRESENCE, FLAG_ERROR));
    }
}

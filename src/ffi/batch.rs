//! The event record format of `dn_poll` and `dn_last_message` (documented in
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
//! 16     4    channel_len
//! 20     4    from_len
//! 24     4    content_type_len
//! 28     4    meta_len
//! 32     4    payload_len
//! 36     ...  channel, from, content_type, meta, payload (in this order)
//! ```

use super::{
    DN_EVENT_CONNECTED as EVENT_CONNECTED, DN_EVENT_DISCONNECTED as EVENT_DISCONNECTED, DN_EVENT_ERROR as EVENT_ERROR,
    DN_EVENT_MESSAGE_BINARY as EVENT_MESSAGE_BINARY, DN_EVENT_MESSAGE_JSON as EVENT_MESSAGE_JSON,
    DN_EVENT_PRESENCE as EVENT_PRESENCE, DN_EVENT_SUB_ACK as EVENT_SUB_ACK, DN_FLAG_ERROR as FLAG_ERROR,
    DN_FLAG_RAW as FLAG_RAW,
};
use crate::client::{Body, Event, Message};

pub(super) const HEADER_LEN: usize = super::DN_RECORD_HEADER_LEN as usize;

/// The parts of one record, borrowed from the event.
struct Record<'a> {
    kind: u8,
    flags: u8,
    ts: i64,
    channel: &'a [u8],
    from: &'a [u8],
    content_type: &'a [u8],
    meta: &'a [u8],
    payload: std::borrow::Cow<'a, [u8]>,
}

impl Record<'_> {
    fn len(&self) -> usize {
        HEADER_LEN
            + self.channel.len()
            + self.from.len()
            + self.content_type.len()
            + self.meta.len()
            + self.payload.len()
    }

    fn write(&self, out: &mut Vec<u8>) {
        let len = self.len();
        out.reserve(len);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.ts.to_le_bytes());
        let fields: [&[u8]; 5] = [self.channel, self.from, self.content_type, self.meta, &self.payload];
        for field in fields {
            out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        }
        for field in fields {
            out.extend_from_slice(field);
        }
    }
}

fn message_record(message: &Message) -> Record<'_> {
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
        channel: message.channel.as_bytes(),
        from: message.from.as_bytes(),
        content_type,
        meta,
        payload: payload.into(),
    }
}

fn event_record(event: &Event) -> Record<'_> {
    let plain = |kind: u8, channel: &'static [u8], payload: Vec<u8>| Record {
        kind,
        flags: 0,
        ts: 0,
        channel,
        from: b"",
        content_type: b"",
        meta: b"",
        payload: payload.into(),
    };
    match event {
        Event::Message(message) => message_record(message),
        Event::Connected { conn_id } => plain(EVENT_CONNECTED, b"", conn_id.as_bytes().to_vec()),
        Event::Disconnected { reason } => plain(EVENT_DISCONNECTED, b"", reason.as_bytes().to_vec()),
        Event::Error(error) => Record {
            channel: error.channel.as_deref().unwrap_or("").as_bytes(),
            ..plain(EVENT_ERROR, b"", error.to_json().to_string().into_bytes())
        },
        Event::SubAck { channel, occupancy } => Record {
            channel: channel.as_bytes(),
            ..plain(EVENT_SUB_ACK, b"", serde_json::json!({ "occupancy": occupancy }).to_string().into_bytes())
        },
        Event::Presence { channel, result } => {
            let (flags, payload) = match result {
                Ok(presence) => (0, presence.to_json().to_string()),
                Err(error) => (FLAG_ERROR, error.to_json().to_string()),
            };
            Record { channel: channel.as_bytes(), flags, ..plain(EVENT_PRESENCE, b"", payload.into_bytes()) }
        }
    }
}

/// Bytes one event needs in a batch.
pub fn encoded_len(event: &Event) -> usize {
    event_record(event).len()
}

pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    event_record(event).write(out);
}

pub fn encode_message(message: &Message, out: &mut Vec<u8>) {
    message_record(message).write(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::DataNetError;
    use std::sync::Arc;

    fn u32_at(b: &[u8], at: usize) -> usize {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
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
        };
        let event = Event::Message(Arc::new(message));
        let mut out = Vec::new();
        encode_event(&event, &mut out);
        assert_eq!(out.len(), encoded_len(&event));
        assert_eq!(u32_at(&out, 0), out.len());
        assert_eq!((out[4], out[5]), (EVENT_MESSAGE_BINARY, FLAG_RAW));
        assert_eq!(i64::from_le_bytes(out[8..16].try_into().unwrap()), 0x0102_0304_0506_0708);
        let lens: Vec<usize> = (0..5).map(|i| u32_at(&out, 16 + 4 * i)).collect();
        assert_eq!(lens, vec![2, 3, 10, 2, 3]);
        assert_eq!(&out[HEADER_LEN..], b"chc-1binary/dmx{}\x01\x02\x03");
    }

    #[test]
    fn error_and_presence_records() {
        let error = DataNetError::new("rate_limited", "slow down").with_channel("c");
        let mut out = Vec::new();
        encode_event(&Event::Error(error), &mut out);
        assert_eq!(out[4], EVENT_ERROR);
        assert_eq!(u32_at(&out, 16), 1);
        let payload: serde_json::Value = serde_json::from_slice(&out[HEADER_LEN + 1..]).unwrap();
        assert_eq!(payload["code"], "rate_limited");
        out.clear();
        let failed = Event::Presence { channel: "c".into(), result: Err(DataNetError::new("not_connected", "no")) };
        encode_event(&failed, &mut out);
        assert_eq!((out[4], out[5]), (EVENT_PRESENCE, FLAG_ERROR));
    }
}

//! Envelopes of PROTOCOL.md §3 (client → server) and §4 (server → client).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::base64;
use super::error::{DataNetError, PROTOCOL_ERROR};

pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// `{"op":"hb"}`.
pub(crate) const HEARTBEAT: &str = r#"{"op":"hb"}"#;

/// `{"op":"sub","ch":..}`.
pub fn encode_subscribe(channel: &str) -> String {
    format!(r#"{{"op":"sub","ch":{}}}"#, json_string(channel))
}

/// `{"op":"unsub","ch":..}`.
pub fn encode_unsubscribe(channel: &str) -> String {
    format!(r#"{{"op":"unsub","ch":{}}}"#, json_string(channel))
}

/// `{"op":"pub","ch":..,"d":..}` from JSON text, which is checked to be one JSON
/// value and then embedded as it is (no re-serialisation of the caller's value; a
/// number beyond the double range stays as written, as on the receiving side).
pub fn encode_publish_json(channel: &str, json_text: &str) -> Result<String, serde_json::Error> {
    let value = serde_json::from_str::<&RawValue>(json_text)?;
    Ok(format!(r#"{{"op":"pub","ch":{},"d":{}}}"#, json_string(channel), value.get()))
}

/// `{"op":"pub","ch":..,"bin":true,"b64":..,"ct":..,"meta"?:{..}}`; `meta` is JSON
/// object text the caller validated, embedded as it is; left out when there is none.
pub fn encode_publish_binary(channel: &str, data: &[u8], content_type: &str, meta: Option<&str>) -> String {
    let content_type = if content_type.is_empty() { DEFAULT_CONTENT_TYPE } else { content_type };
    let mut out = format!(
        r#"{{"op":"pub","ch":{},"bin":true,"b64":"{}","ct":{}"#,
        json_string(channel),
        base64::encode(data),
        json_string(content_type)
    );
    if let Some(meta) = meta {
        out.push_str(r#","meta":"#);
        out.push_str(meta);
    }
    out.push('}');
    out
}

fn json_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// A payload as it arrived. JSON stays the gateway's own text (the `d` value's
/// bytes), so key order and number spelling reach the host as the publisher sent
/// them; only the numeric flattening interprets it.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The raw JSON text of `d` (`null` when absent).
    Json(String),
    /// Binary bytes, decoded from base64 or taken from a raw binary frame; `meta` is
    /// the raw text of a JSON object.
    Binary { data: Vec<u8>, content_type: String, meta: Option<String>, raw: bool },
}

/// A published message delivered by the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub channel: String,
    pub from: String,
    pub ts: i64,
    pub payload: Payload,
}

/// Every server → client envelope this client understands.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEnvelope {
    Connected {
        conn_id: String,
        user_id: Option<String>,
    },
    Message(InboundMessage),
    SubAck {
        channel: String,
        occupancy: Option<u64>,
    },
    UnsubAck {
        channel: String,
    },
    HeartbeatAck {
        timestamp: Option<i64>,
    },
    Error(DataNetError),
    /// A JSON envelope of a type this client does not know: ignored, never fatal.
    Unknown,
}

/// The top-level fields of an envelope, each still its raw text: one pass over the
/// frame, no tree of values, and a payload that is never printed again. A field of
/// an unexpected type is read leniently below (as the SDKs do), not refused here.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    op: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    ch: Option<&'a RawValue>,
    #[serde(borrow)]
    from: Option<&'a RawValue>,
    #[serde(borrow)]
    ts: Option<&'a RawValue>,
    #[serde(borrow)]
    d: Option<&'a RawValue>,
    #[serde(borrow)]
    bin: Option<&'a RawValue>,
    #[serde(borrow)]
    b64: Option<&'a RawValue>,
    #[serde(borrow)]
    ct: Option<&'a RawValue>,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
}

/// A field's value when it is a JSON string (escapes resolved), else `None`.
fn raw_str<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    raw.and_then(|r| serde_json::from_str::<Cow<'a, str>>(r.get()).ok())
}

/// Decodes one text frame.
pub fn decode_text(text: &str) -> Result<ServerEnvelope, DataNetError> {
    let fields: RawEnvelope<'_> = match serde_json::from_str(text) {
        Ok(fields) => fields,
        Err(e) if e.is_data() => return Err(malformed(format!("frame is not a JSON object envelope: {e}"))),
        Err(e) => return Err(malformed(format!("frame is not JSON: {e}"))),
    };
    let is_error = raw_str(fields.kind).as_deref() == Some("error");
    if raw_str(fields.op).as_deref() == Some("pub") && !is_error {
        return decode_message(fields).map(ServerEnvelope::Message);
    }
    // Everything else is rare (acks, errors): read it as a value.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(envelope)) => decode_object(envelope),
        _ => Err(malformed("frame is not a JSON object")),
    }
}

/// Decodes one binary WebSocket frame: a UTF-8 JSON envelope when it is one
/// (PROTOCOL.md §4), otherwise raw bytes for every binary subscriber, marked raw.
pub fn decode_binary_frame(bytes: Vec<u8>) -> Result<ServerEnvelope, DataNetError> {
    if let Ok(text) = std::str::from_utf8(&bytes) {
        let is_object = serde_json::from_str::<&RawValue>(text).is_ok_and(|raw| raw.get().starts_with('{'));
        if is_object {
            return decode_text(text);
        }
    }
    Ok(ServerEnvelope::Message(InboundMessage {
        channel: String::new(),
        from: String::new(),
        ts: 0,
        payload: Payload::Binary { data: bytes, content_type: DEFAULT_CONTENT_TYPE.to_string(), meta: None, raw: true },
    }))
}

fn decode_object(envelope: Map<String, Value>) -> Result<ServerEnvelope, DataNetError> {
    let text = |key: &str| envelope.get(key).and_then(Value::as_str).map(str::to_string);
    Ok(match envelope.get("type").and_then(Value::as_str) {
        Some("connected") => ServerEnvelope::Connected {
            conn_id: text("connId").ok_or_else(|| malformed("connected envelope without a string connId"))?,
            user_id: text("userId"),
        },
        Some("sub_ack") => ServerEnvelope::SubAck {
            channel: text("ch").ok_or_else(|| malformed("sub_ack without a string ch"))?,
            occupancy: envelope.get("occupancy").and_then(Value::as_u64),
        },
        Some("unsub_ack") => {
            ServerEnvelope::UnsubAck { channel: text("ch").ok_or_else(|| malformed("unsub_ack without a string ch"))? }
        }
        Some("hb_ack") => ServerEnvelope::HeartbeatAck { timestamp: envelope.get("timestamp").and_then(as_i64) },
        Some("error") => ServerEnvelope::Error(DataNetError::from_envelope(&envelope)),
        _ => ServerEnvelope::Unknown,
    })
}

fn decode_message(fields: RawEnvelope<'_>) -> Result<InboundMessage, DataNetError> {
    let channel = raw_str(fields.ch).ok_or_else(|| malformed("message without a string ch"))?.into_owned();
    let from = raw_str(fields.from).map(Cow::into_owned).unwrap_or_default();
    let ts = fields.ts.and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok()).as_ref().and_then(as_i64);
    let ts = ts.unwrap_or(0);
    let binary = fields.bin.is_some_and(|raw| raw.get() == "true");
    let payload = if binary {
        let b64 = raw_str(fields.b64).ok_or_else(|| malformed("binary message without b64"))?;
        let data = base64::decode(&b64).map_err(|e| malformed(format!("binary message on {channel}: {e}")))?;
        let content_type = match raw_str(fields.ct) {
            Some(ct) if !ct.is_empty() => ct.into_owned(),
            _ => DEFAULT_CONTENT_TYPE.to_string(),
        };
        // Metadata is kept only when it is an object, as its own text.
        let meta = fields.meta.map(RawValue::get).filter(|text| text.starts_with('{')).map(str::to_string);
        if meta.as_deref().is_some_and(|text| !nesting_within(text, MAX_NESTING)) {
            return Err(malformed(format!("metadata on {channel} nests deeper than {MAX_NESTING}")));
        }
        // The decoded bytes are the truth; a `bytes` field that disagrees is ignored.
        Payload::Binary { data, content_type, meta, raw: false }
    } else {
        let text = fields.d.map_or("null", RawValue::get);
        if !nesting_within(text, MAX_NESTING) {
            return Err(malformed(format!("payload on {channel} nests deeper than {MAX_NESTING}")));
        }
        Payload::Json(text.to_string())
    };
    Ok(InboundMessage { channel, from, ts, payload })
}

/// How deep a payload may nest: serde_json's own limit, which a raw value does not
/// apply (it skips the text without recursing). Deeper payloads are malformed, as
/// they would be for any host that parses them (Python's json.loads recurses).
const MAX_NESTING: usize = 128;

/// Whether JSON text nests at most `max` arrays and objects deep (strings skipped).
fn nesting_within(text: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn as_i64(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().filter(|f| f.is_finite() && f.abs() < 9.2e18).map(|f| f as i64))
}

fn malformed(message: impl Into<String>) -> DataNetError {
    DataNetError::new(PROTOCOL_ERROR, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_envelopes() {
        assert_eq!(encode_subscribe("a.b"), r#"{"op":"sub","ch":"a.b"}"#);
        assert_eq!(encode_unsubscribe("a\"b"), r#"{"op":"unsub","ch":"a\"b"}"#);
        assert_eq!(encode_publish_json("c", r#" {"x": 1} "#).unwrap(), r#"{"op":"pub","ch":"c","d":{"x": 1}}"#);
        assert!(encode_publish_json("c", "{nope").is_err());
        assert!(encode_publish_json("c", "").is_err());
        let v: Value = serde_json::from_str(HEARTBEAT).unwrap();
        assert_eq!(v, json!({"op": "hb"}));
    }

    #[test]
    fn binary_publish_vector() {
        let text = encode_publish_binary("project.demo.dmx", &[1, 2, 3], "binary/dmx", Some(r#"{"universe":1}"#));
        assert_eq!(
            text,
            r#"{"op":"pub","ch":"project.demo.dmx","bin":true,"b64":"AQID","ct":"binary/dmx","meta":{"universe":1}}"#
        );
        let plain = encode_publish_binary("c", &[0xff, 0], "", None);
        assert_eq!(plain, r#"{"op":"pub","ch":"c","bin":true,"b64":"/wA=","ct":"application/octet-stream"}"#);
    }

    #[test]
    fn decodes_json_message() {
        let env =
            decode_text(r#"{"type":"message","op":"pub","ch":"c","d":{"x":[1,2]},"ts":1700000000123,"from":"c-1"}"#);
        let ServerEnvelope::Message(m) = env.unwrap() else { panic!() };
        assert_eq!(m.channel, "c");
        assert_eq!(m.from, "c-1");
        assert_eq!(m.ts, 1_700_000_000_123);
        assert_eq!(m.payload, Payload::Json(r#"{"x":[1,2]}"#.into()));
    }

    #[test]
    fn decodes_binary_message() {
        let env = decode_text(
            r#"{"type":"message","op":"pub","ch":"d","bin":true,"b64":"AQID","ct":"binary/dmx","bytes":99,"ts":5,"from":"x","meta":{"universe":1}}"#,
        )
        .unwrap();
        let ServerEnvelope::Message(m) = env else { panic!() };
        match m.payload {
            Payload::Binary { data, content_type, meta, raw } => {
                assert_eq!(data, vec![1, 2, 3]);
                assert_eq!(content_type, "binary/dmx");
                assert_eq!(meta.as_deref(), Some(r#"{"universe":1}"#));
                assert!(!raw);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_acks_and_errors() {
        assert_eq!(
            decode_text(r#"{"type":"connected","connId":"c-9","userId":"u"}"#).unwrap(),
            ServerEnvelope::Connected { conn_id: "c-9".into(), user_id: Some("u".into()) }
        );
        assert_eq!(
            decode_text(r#"{"type":"sub_ack","op":"hereNow","ch":"c","occupancy":3}"#).unwrap(),
            ServerEnvelope::SubAck { channel: "c".into(), occupancy: Some(3) }
        );
        assert_eq!(
            decode_text(r#"{"type":"unsub_ack","op":"unsubAck","ch":"c"}"#).unwrap(),
            ServerEnvelope::UnsubAck { channel: "c".into() }
        );
        assert_eq!(
            decode_text(r#"{"type":"hb_ack","op":"hb","timestamp":12}"#).unwrap(),
            ServerEnvelope::HeartbeatAck { timestamp: Some(12) }
        );
        let ServerEnvelope::Error(e) = decode_text(r#"{"type":"error","error":"rate_limited","retry_ms":10}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(e.retry_ms, Some(10));
        assert_eq!(decode_text(r#"{"type":"brand_new","x":1}"#).unwrap(), ServerEnvelope::Unknown);
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for text in [
            "not json",
            "[1,2]",
            "42",
            r#"{"op":"pub","ch":5}"#,
            r#"{"op":"pub","ch":"c","bin":true}"#,
            r#"{"op":"pub","ch":"c","bin":true,"b64":"@@@"}"#,
            r#"{"type":"connected"}"#,
            r#"{"type":"sub_ack","ch":null}"#,
        ] {
            let err = decode_text(text).unwrap_err();
            assert_eq!(err.code, PROTOCOL_ERROR, "{text}");
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(decode_text(&deep).is_err());
        let frame = format!(r#"{{"op":"pub","ch":"c","d":{deep}}}"#);
        assert_eq!(decode_text(&frame).unwrap_err().code, PROTOCOL_ERROR, "raw values skip without a depth limit");
        let ok = "[".repeat(128) + r#""[[[\"]]""# + &"]".repeat(128);
        assert!(decode_text(&format!(r#"{{"op":"pub","ch":"c","d":{ok}}}"#)).is_ok(), "128 deep, brackets in a string");
        let meta = format!(r#"{{"op":"pub","ch":"c","bin":true,"b64":"","meta":{{"a":{deep}}}}}"#);
        assert!(decode_text(&meta).is_err());
    }

    #[test]
    fn payload_text_is_kept_as_sent() {
        let sent = r#"{"r":1,"g":2,"b":3,"big":12345678901234567890123,"f":1e-3,"z":{"y":1,"x":2},"s":"\u00e9 \"q\"","w":[ 1 , 2 ]}"#;
        let frame = format!(r#"{{"type":"message","op":"pub","ch":"c","d": {sent} ,"ts":1,"from":"c-1"}}"#);
        let ServerEnvelope::Message(m) = decode_text(&frame).unwrap() else { panic!() };
        assert_eq!(m.payload, Payload::Json(sent.to_string()));
        let ServerEnvelope::Message(m) = decode_text(r#"{"op":"pub","ch":"c"}"#).unwrap() else { panic!() };
        assert_eq!(m.payload, Payload::Json("null".into()));
        let frame = r#"{"op":"pub","ch":"c\u00e9","from":"a\"b","bin":true,"b64":"AQ==","meta":{"z":1, "a":1.50}}"#;
        let ServerEnvelope::Message(m) = decode_text(frame).unwrap() else { panic!() };
        assert_eq!((m.channel.as_str(), m.from.as_str()), ("c\u{e9}", "a\"b"));
        let Payload::Binary { meta, .. } = m.payload else { panic!() };
        assert_eq!(meta.as_deref(), Some(r#"{"z":1, "a":1.50}"#));
    }

    #[test]
    fn wrong_optional_types_are_tolerated() {
        let env = decode_text(r#"{"op":"pub","ch":"c","d":null,"ts":"later","from":7}"#).unwrap();
        let ServerEnvelope::Message(m) = env else { panic!() };
        assert_eq!((m.ts, m.from.as_str()), (0, ""));
        let env = decode_text(r#"{"op":"pub","ch":"c","ts":1e300}"#).unwrap();
        let ServerEnvelope::Message(m) = env else { panic!() };
        assert_eq!(m.ts, 0);
        let env = decode_text(r#"{"op":"pub","ch":"c","bin":true,"b64":"AQ==","ct":5,"meta":[1]}"#).unwrap();
        let ServerEnvelope::Message(m) = env else { panic!() };
        assert_eq!(
            m.payload,
            Payload::Binary { data: vec![1], content_type: DEFAULT_CONTENT_TYPE.into(), meta: None, raw: false }
        );
    }

    #[test]
    fn binary_frames() {
        let env = decode_binary_frame(br#"{"type":"hb_ack","timestamp":1}"#.to_vec()).unwrap();
        assert_eq!(env, ServerEnvelope::HeartbeatAck { timestamp: Some(1) });
        let ServerEnvelope::Message(m) = decode_binary_frame(vec![0xff, 0x00, 0x10]).unwrap() else { panic!() };
        assert_eq!(
            m.payload,
            Payload::Binary {
                data: vec![0xff, 0, 0x10],
                content_type: DEFAULT_CONTENT_TYPE.into(),
                meta: None,
                raw: true
            }
        );
    }
}

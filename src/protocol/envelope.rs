//! Envelopes of PROTOCOL.md §3 (client → server) and §4 (server → client).

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

/// `{"op":"pub","ch":..,"d":..}` from JSON text, which is validated and then
/// embedded as it is (no re-serialisation of the caller's value).
pub fn encode_publish_json(channel: &str, json_text: &str) -> Result<String, serde_json::Error> {
    serde_json::from_str::<Value>(json_text)?;
    Ok(format!(r#"{{"op":"pub","ch":{},"d":{}}}"#, json_string(channel), json_text.trim()))
}

/// `{"op":"pub","ch":..,"bin":true,"b64":..,"ct":..,"meta"?:{..}}`; `meta` is left
/// out when there is none.
pub fn encode_publish_binary(
    channel: &str,
    data: &[u8],
    content_type: &str,
    meta: Option<&Map<String, Value>>,
) -> String {
    let content_type = if content_type.is_empty() { DEFAULT_CONTENT_TYPE } else { content_type };
    let mut out = format!(
        r#"{{"op":"pub","ch":{},"bin":true,"b64":"{}","ct":{}"#,
        json_string(channel),
        base64::encode(data),
        json_string(content_type)
    );
    if let Some(meta) = meta {
        out.push_str(r#","meta":"#);
        out.push_str(&Value::Object(meta.clone()).to_string());
    }
    out.push('}');
    out
}

fn json_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// A payload as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Any JSON value.
    Json(Value),
    /// Binary bytes, decoded from base64 or taken from a raw binary frame.
    Binary { data: Vec<u8>, content_type: String, meta: Option<Map<String, Value>>, raw: bool },
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

/// Decodes one text frame.
pub fn decode_text(text: &str) -> Result<ServerEnvelope, DataNetError> {
    let value: Value = serde_json::from_str(text).map_err(|e| malformed(format!("frame is not JSON: {e}")))?;
    let Value::Object(envelope) = value else {
        return Err(malformed("frame is not a JSON object"));
    };
    decode_object(envelope)
}

/// Decodes one binary WebSocket frame: a UTF-8 JSON envelope when it is one
/// (PROTOCOL.md §4), otherwise raw bytes for every binary subscriber, marked raw.
pub fn decode_binary_frame(bytes: Vec<u8>) -> Result<ServerEnvelope, DataNetError> {
    if let Ok(text) = std::str::from_utf8(&bytes) {
        if let Ok(Value::Object(envelope)) = serde_json::from_str::<Value>(text) {
            return decode_object(envelope);
        }
    }
    Ok(ServerEnvelope::Message(InboundMessage {
        channel: String::new(),
        from: String::new(),
        ts: 0,
        payload: Payload::Binary { data: bytes, content_type: DEFAULT_CONTENT_TYPE.to_string(), meta: None, raw: true },
    }))
}

fn decode_object(mut envelope: Map<String, Value>) -> Result<ServerEnvelope, DataNetError> {
    let op = envelope.get("op").and_then(Value::as_str);
    let kind = envelope.get("type").and_then(Value::as_str);
    if op == Some("pub") && kind != Some("error") {
        return decode_message(&mut envelope).map(ServerEnvelope::Message);
    }
    let text = |key: &str| envelope.get(key).and_then(Value::as_str).map(str::to_string);
    Ok(match kind {
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

fn decode_message(envelope: &mut Map<String, Value>) -> Result<InboundMessage, DataNetError> {
    let channel = match envelope.remove("ch") {
        Some(Value::String(ch)) => ch,
        _ => return Err(malformed("message without a string ch")),
    };
    let from = match envelope.remove("from") {
        Some(Value::String(from)) => from,
        _ => String::new(),
    };
    let ts = envelope.get("ts").and_then(as_i64).unwrap_or(0);
    let payload = if envelope.get("bin").and_then(Value::as_bool) == Some(true) {
        let b64 = envelope.get("b64").and_then(Value::as_str).ok_or_else(|| malformed("binary message without b64"))?;
        let data = base64::decode(b64).map_err(|e| malformed(format!("binary message on {channel}: {e}")))?;
        let content_type = match envelope.remove("ct") {
            Some(Value::String(ct)) if !ct.is_empty() => ct,
            _ => DEFAULT_CONTENT_TYPE.to_string(),
        };
        let meta = match envelope.remove("meta") {
            Some(Value::Object(meta)) => Some(meta),
            _ => None,
        };
        // The decoded bytes are the truth; a `bytes` field that disagrees is ignored.
        Payload::Binary { data, content_type, meta, raw: false }
    } else {
        Payload::Json(envelope.remove("d").unwrap_or(Value::Null))
    };
    Ok(InboundMessage { channel, from, ts, payload })
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
        let meta = json!({"universe": 1});
        let text = encode_publish_binary("project.demo.dmx", &[1, 2, 3], "binary/dmx", meta.as_object());
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
        assert_eq!(m.payload, Payload::Json(json!({"x": [1, 2]})));
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
                assert_eq!(meta.unwrap()["universe"], 1);
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
    }

    #[test]
    fn wrong_optional_types_are_tolerated() {
        let env = decode_text(r#"{"op":"pub","ch":"c","d":null,"ts":"later","from":7}"#).unwrap();
        let ServerEnvelope::Message(m) = env else { panic!() };
        assert_eq!((m.ts, m.from.as_str()), (0, ""));
        let env = decode_text(r#"{"op":"pub","ch":"c","ts":1e300}"#).unwrap();
        let ServerEnvelope::Message(m) = env else { panic!() };
        assert_eq!(m.ts, 0);
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

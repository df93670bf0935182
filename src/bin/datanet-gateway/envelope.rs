//! The JSON envelopes of PROTOCOL.md §3–§5: parsing what clients send, building
//! what the gateway sends. No I/O and no state, so every shape is unit-tested here.

use datanet::protocol::base64;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;

const MAX_CHANNEL_BYTES: usize = 255;
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// A client envelope that passed shape checks (field types), not yet policy checks.
#[derive(Debug, PartialEq)]
pub enum ClientOp {
    Subscribe { channel: String },
    Unsubscribe { channel: String },
    Heartbeat,
    Publish { channel: String, payload: Payload },
}

/// Payloads keep the publisher's own JSON text (`d`, `meta`): relayed byte for byte,
/// never parsed into a value and printed again, so key order and number spelling
/// reach subscribers as they were sent.
#[derive(Debug)]
pub enum Payload {
    Json(Box<RawValue>),
    /// `meta` is a JSON object's text.
    Binary {
        b64: String,
        content_type: Option<String>,
        meta: Option<Box<RawValue>>,
    },
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Payload::Json(a), Payload::Json(b)) => a.get() == b.get(),
            (
                Payload::Binary { b64, content_type, meta },
                Payload::Binary { b64: b64_b, content_type: ct_b, meta: meta_b },
            ) => {
                b64 == b64_b
                    && content_type == ct_b
                    && meta.as_deref().map(RawValue::get) == meta_b.as_deref().map(RawValue::get)
            }
            _ => false,
        }
    }
}

/// An envelope's top-level fields, each still its raw JSON text.
type Fields<'a> = HashMap<String, &'a RawValue>;

/// Parses one text frame; `Err` holds the message of a `bad_request` envelope.
pub fn parse(text: &str) -> Result<ClientOp, String> {
    let Ok(fields) = serde_json::from_str::<Fields<'_>>(text) else {
        return Err("expected a JSON object envelope".to_string());
    };
    let op = string_field(&fields, "op")?;
    match op.as_str() {
        "sub" => Ok(ClientOp::Subscribe { channel: string_field(&fields, "ch")? }),
        "unsub" => Ok(ClientOp::Unsubscribe { channel: string_field(&fields, "ch")? }),
        "hb" => Ok(ClientOp::Heartbeat),
        "pub" => parse_publish(&fields),
        _ => Err("unknown op".to_string()),
    }
}

fn parse_publish(fields: &Fields<'_>) -> Result<ClientOp, String> {
    let channel = string_field(fields, "ch")?;
    let binary = match fields.get("bin").map(|raw| serde_json::from_str::<Value>(raw.get())) {
        None | Some(Ok(Value::Bool(false))) => false,
        Some(Ok(Value::Bool(true))) => true,
        Some(_) => return Err("bin must be a boolean".to_string()),
    };
    let payload = if binary {
        let b64 = string_field(fields, "b64")?;
        let content_type = match fields.get("ct").map(|raw| serde_json::from_str::<Value>(raw.get())) {
            None | Some(Ok(Value::Null)) => None,
            Some(Ok(Value::String(content_type))) => Some(content_type),
            Some(_) => return Err("ct must be a string".to_string()),
        };
        // Metadata travels only as an object; anything else is left out, not refused.
        let meta = fields.get("meta").filter(|raw| raw.get().starts_with('{')).map(|raw| (*raw).to_owned());
        Payload::Binary { b64, content_type, meta }
    } else {
        let data = fields.get("d").ok_or("pub needs d, or bin with b64")?;
        Payload::Json((*data).to_owned())
    };
    Ok(ClientOp::Publish { channel, payload })
}

fn string_field(fields: &Fields<'_>, field: &str) -> Result<String, String> {
    match fields.get(field).map(|raw| serde_json::from_str::<Value>(raw.get())) {
        Some(Ok(Value::String(text))) => Ok(text),
        Some(_) => Err(format!("{field} must be a string")),
        None => Err(format!("missing {field}")),
    }
}

/// The channel-name rule, as the error message states it.
pub const CHANNEL_RULE: &str = "channel names are 1 to 255 bytes of ASCII letters, digits and _ - . : /, \
     do not start or end with a dot and have no empty segment";

/// PROTOCOL.md §8 and the project's shared rule, then project isolation: a token
/// whose project is P reaches only `project.P.*`. `Err` holds the message of the
/// `channel_not_allowed` envelope.
pub fn check_channel(channel: &str, project: Option<&str>) -> Result<(), String> {
    let allowed_byte = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b':' | b'/');
    let well_formed = (1..=MAX_CHANNEL_BYTES).contains(&channel.len())
        && channel.bytes().all(allowed_byte)
        && !channel.starts_with('.')
        && !channel.ends_with('.')
        && !channel.contains("..");
    if !well_formed {
        return Err(CHANNEL_RULE.to_string());
    }
    let Some(project) = project else {
        return Err("this token names no project, so it reaches no channel".to_string());
    };
    let inside = channel.strip_prefix("project.").and_then(|rest| rest.strip_prefix(project));
    if inside.is_some_and(|rest| rest.starts_with('.')) {
        Ok(())
    } else {
        Err(format!("this token reaches only channels of its project: project.{project}.<name>"))
    }
}

pub fn connected(conn: &str, user: &str) -> String {
    json!({"type": "connected", "connId": conn, "userId": user}).to_string()
}

pub fn sub_ack(channel: &str, occupancy: usize) -> String {
    json!({"type": "sub_ack", "op": "hereNow", "ch": channel, "occupancy": occupancy}).to_string()
}

pub fn unsub_ack(channel: &str) -> String {
    json!({"type": "unsub_ack", "op": "unsubAck", "ch": channel}).to_string()
}

pub fn hb_ack(timestamp_ms: u64) -> String {
    json!({"type": "hb_ack", "op": "hb", "timestamp": timestamp_ms}).to_string()
}

/// A JSON message with `d` spliced in as the publisher's own text.
pub fn json_message(channel: &str, data: &RawValue, ts_ms: u64, from: &str) -> String {
    format!(
        r#"{{"type":"message","op":"pub","ch":{},"d":{},"ts":{ts_ms},"from":{}}}"#,
        json_string(channel),
        data.get(),
        json_string(from)
    )
}

fn json_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// The relayed form of a binary publish; `byte_count` is the decoded payload length.
pub struct BinaryMessage<'a> {
    pub channel: &'a str,
    pub b64: String,
    pub content_type: Option<String>,
    pub byte_count: usize,
    pub meta: Option<Box<RawValue>>,
    pub ts_ms: u64,
    pub from: &'a str,
}

impl BinaryMessage<'_> {
    /// The envelope with `meta` spliced in as the publisher's own text.
    pub fn into_json(self) -> String {
        let mut message = format!(
            r#"{{"type":"message","op":"pub","ch":{},"bin":true,"b64":{},"ct":{},"bytes":{},"ts":{},"from":{}"#,
            json_string(self.channel),
            json_string(&self.b64),
            json_string(self.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE)),
            self.byte_count,
            self.ts_ms,
            json_string(self.from),
        );
        if let Some(meta) = self.meta {
            message.push_str(r#","meta":"#);
            message.push_str(meta.get());
        }
        message.push('}');
        message
    }
}

/// The message envelope subscribers get for a published payload. `Err` when a
/// binary payload's base64 does not decode (its byte count is part of the envelope).
pub fn message_frame(channel: &str, payload: Payload, ts_ms: u64, from: &str) -> Result<String, InvalidBase64> {
    match payload {
        Payload::Json(data) => Ok(json_message(channel, &data, ts_ms, from)),
        Payload::Binary { b64, content_type, meta } => {
            let byte_count = base64::decode(&b64).map_err(|_| InvalidBase64)?.len();
            Ok(BinaryMessage { channel, b64, content_type, byte_count, meta, ts_ms, from }.into_json())
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct InvalidBase64;

/// Who a `rate_limited` budget belongs to.
#[derive(Debug, PartialEq)]
pub enum RateScope {
    /// The admin API's per-channel budget.
    Channel(String),
    /// The per-connection budget of frames and bytes (`--max-frames-per-second`...).
    Connection,
}

/// The error envelopes of PROTOCOL.md §5, and the gateway's own codes
/// (docs/GATEWAY.md lists them).
#[derive(Debug, PartialEq)]
pub enum GatewayError {
    BadRequest {
        message: String,
    },
    ChannelNotAllowed {
        channel: String,
        operation: &'static str,
        message: String,
    },
    TopicLimitReached {
        limit: usize,
        channel: String,
    },
    InsufficientScope {
        required: &'static str,
    },
    RateLimited {
        retry_ms: u64,
        scope: RateScope,
    },
    InvalidPayload {
        channel: String,
    },
    DeviceLimitReached {
        limit: usize,
        message: String,
    },
    /// A frame over `--max-message-bytes`, read or about to be relayed.
    MessageTooLarge {
        limit: usize,
        channel: Option<String>,
    },
    /// This connection's queue overflowed: `dropped` frames were lost since the last notice.
    SlowConsumer {
        dropped: u64,
        limit: usize,
    },
    /// The session's token expired; the gateway closes it after `grace_ms`.
    TokenExpired {
        grace_ms: u64,
    },
    KeyRevoked,
}

impl GatewayError {
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadRequest { .. } => "bad_request",
            GatewayError::ChannelNotAllowed { .. } => "channel_not_allowed",
            GatewayError::TopicLimitReached { .. } => "topic_limit_reached",
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::InvalidPayload { .. } => "invalid_payload",
            GatewayError::DeviceLimitReached { .. } => "device_limit_reached",
            GatewayError::MessageTooLarge { .. } => "message_too_large",
            GatewayError::SlowConsumer { .. } => "slow_consumer",
            GatewayError::TokenExpired { .. } => "token_expired",
            GatewayError::KeyRevoked => "key_revoked",
        }
    }

    pub fn to_json(&self) -> String {
        let code = self.code();
        let envelope = match self {
            GatewayError::BadRequest { message } => {
                json!({"type": "error", "error": code, "message": message})
            }
            GatewayError::ChannelNotAllowed { channel, operation, message } => json!({
                "type": "error", "error": code, "channel": channel, "operation": operation,
                "message": message,
            }),
            GatewayError::TopicLimitReached { limit, channel } => json!({
                "type": "error", "error": code, "limit": limit, "channel": channel,
                "operation": "sub",
            }),
            GatewayError::InsufficientScope { required } => {
                json!({"type": "error", "error": code, "required": required})
            }
            GatewayError::RateLimited { retry_ms, scope: RateScope::Channel(channel) } => json!({
                "type": "error", "error": code, "retry_ms": retry_ms, "scope": "channel",
                "channel": channel,
            }),
            GatewayError::RateLimited { retry_ms, scope: RateScope::Connection } => json!({
                "type": "error", "error": code, "retry_ms": retry_ms, "scope": "connection",
                "message": "this connection sends faster than the gateway allows; frames wait until retry_ms",
            }),
            GatewayError::InvalidPayload { channel } => json!({
                "type": "error", "error": code, "channel": channel, "operation": "pub",
            }),
            GatewayError::DeviceLimitReached { limit, message } => json!({
                "type": "error", "error": code, "code": code, "limit": limit, "message": message,
            }),
            GatewayError::MessageTooLarge { limit, channel } => {
                let mut envelope = json!({
                    "type": "error", "error": code, "limit": limit,
                    "message": format!("frames are limited to {limit} bytes; this one was not relayed"),
                });
                if let Some(channel) = channel {
                    envelope["channel"] = json!(channel);
                    envelope["operation"] = json!("pub");
                }
                envelope
            }
            GatewayError::SlowConsumer { dropped, limit } => json!({
                "type": "error", "error": code, "dropped": dropped, "limit": limit,
                "message": format!(
                    "{dropped} message(s) dropped for this connection: it reads slower than its \
                     channels publish (queue limit {limit} bytes, oldest dropped first)"
                ),
            }),
            GatewayError::TokenExpired { grace_ms } => json!({
                "type": "error", "error": code, "grace_ms": grace_ms,
                "message": format!("the token expired; this connection closes in {grace_ms} ms: reconnect with a fresh token"),
            }),
            GatewayError::KeyRevoked => json!({
                "type": "error", "error": code, "message": "the API key of this connection was revoked",
            }),
        };
        envelope.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(value: Value) -> Result<ClientOp, String> {
        parse(&value.to_string())
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn payloads_are_relayed_as_sent() {
        let sent =
            r#"{"op":"pub","ch":"c","d": {"r":1,"g":2,"b":3,"big":12345678901234567890123,"f":1e-3,"s":"\u00e9"}}"#;
        let Ok(ClientOp::Publish { payload: Payload::Json(data), .. }) = parse(sent) else { panic!("not a publish") };
        let relayed = json_message("c", &data, 5, "c-1");
        assert_eq!(
            relayed,
            r#"{"type":"message","op":"pub","ch":"c","d":{"r":1,"g":2,"b":3,"big":12345678901234567890123,"f":1e-3,"s":"\u00e9"},"ts":5,"from":"c-1"}"#
        );
        let sent = r#"{"op":"pub","ch":"c","bin":true,"b64":"AQ==","meta":{"z":1,"a":1.50}}"#;
        let Ok(ClientOp::Publish { payload: Payload::Binary { meta, .. }, .. }) = parse(sent) else { panic!() };
        assert_eq!(meta.unwrap().get(), r#"{"z":1,"a":1.50}"#);
    }

    #[test]
    fn parses_every_op() {
        assert_eq!(parsed(json!({"op": "sub", "ch": "a"})), Ok(ClientOp::Subscribe { channel: "a".into() }));
        assert_eq!(parsed(json!({"op": "unsub", "ch": "a"})), Ok(ClientOp::Unsubscribe { channel: "a".into() }));
        assert_eq!(parsed(json!({"op": "hb"})), Ok(ClientOp::Heartbeat));
        assert_eq!(
            parsed(json!({"op": "pub", "ch": "a", "d": null})),
            Ok(ClientOp::Publish { channel: "a".into(), payload: Payload::Json(raw("null")) })
        );
        let binary = json!({"op": "pub", "ch": "project.demo.dmx", "bin": true, "b64": "AQID",
                            "ct": "binary/dmx", "meta": {"universe": 1}});
        assert_eq!(
            parsed(binary),
            Ok(ClientOp::Publish {
                channel: "project.demo.dmx".into(),
                payload: Payload::Binary {
                    b64: "AQID".into(),
                    content_type: Some("binary/dmx".into()),
                    meta: Some(raw(r#"{"universe":1}"#)),
                },
            })
        );
        let odd_meta = json!({"op": "pub", "ch": "a", "bin": true, "b64": "", "meta": [1]});
        assert!(matches!(parsed(odd_meta), Ok(ClientOp::Publish { payload: Payload::Binary { meta: None, .. }, .. })));
    }

    #[test]
    fn refuses_bad_shapes() {
        for text in [
            "not json",
            "[1]",
            r#"{"ch":"a"}"#,
            r#"{"op":1}"#,
            r#"{"op":"nope"}"#,
            r#"{"op":"sub"}"#,
            r#"{"op":"sub","ch":5}"#,
            r#"{"op":"pub","ch":"a"}"#,
            r#"{"op":"pub","ch":"a","bin":"yes","b64":""}"#,
            r#"{"op":"pub","ch":"a","bin":true}"#,
            r#"{"op":"pub","ch":"a","bin":true,"b64":"","ct":3}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn channel_names() {
        let demo = Some("demo");
        for good in ["project.demo.x", "project.demo.a-b_c:d/e.f", "project.demo.7"] {
            assert_eq!(check_channel(good, demo), Ok(()), "{good}");
        }
        let long = format!("project.demo.{}", "x".repeat(255 - 13));
        assert_eq!(check_channel(&long, demo), Ok(()));
        for bad in [
            String::new(),
            format!("{long}x"),
            "project.demo.a b".into(),
            "project.demo.\u{e9}".into(),
            "project.demo..x".into(),
            ".project.demo.x".into(),
            "project.demo.x.".into(),
            "project.demo.*".into(),
        ] {
            assert_eq!(check_channel(&bad, demo), Err(CHANNEL_RULE.to_string()), "{bad:?}");
        }
        for elsewhere in ["project.other.x", "project.demox.y", "project.demo", "demo.x", "x"] {
            let refused = check_channel(elsewhere, demo).unwrap_err();
            assert!(refused.contains("project.demo."), "{elsewhere}: {refused}");
        }
        assert!(check_channel("project.demo.x", None).is_err());
    }

    #[test]
    fn binary_message_shape() {
        let message = BinaryMessage {
            channel: "c",
            b64: "AQID".into(),
            content_type: None,
            byte_count: 3,
            meta: None,
            ts_ms: 7,
            from: "c-1",
        };
        let value: Value = serde_json::from_str(&message.into_json()).unwrap();
        assert_eq!(
            value,
            json!({"type": "message", "op": "pub", "ch": "c", "bin": true, "b64": "AQID",
                   "ct": "application/octet-stream", "bytes": 3, "ts": 7, "from": "c-1"})
        );
    }

    #[test]
    fn error_shapes() {
        let error = GatewayError::RateLimited { retry_ms: 5, scope: RateScope::Channel("c".into()) };
        let value: Value = serde_json::from_str(&error.to_json()).unwrap();
        assert_eq!(
            value,
            json!({"type": "error", "error": "rate_limited", "retry_ms": 5, "scope": "channel",
                   "channel": "c"})
        );
        let error = GatewayError::DeviceLimitReached { limit: 2, message: "m".into() };
        let value: Value = serde_json::from_str(&error.to_json()).unwrap();
        assert_eq!(value["code"], "device_limit_reached");
        assert_eq!(value["limit"], 2);
        let error = GatewayError::MessageTooLarge { limit: 9, channel: Some("c".into()) };
        let value: Value = serde_json::from_str(&error.to_json()).unwrap();
        assert_eq!(
            (&value["error"], &value["limit"], &value["channel"]),
            (&json!("message_too_large"), &json!(9), &json!("c"))
        );
        let value: Value =
            serde_json::from_str(&GatewayError::SlowConsumer { dropped: 3, limit: 4 }.to_json()).unwrap();
        assert_eq!(
            (&value["error"], &value["dropped"], &value["limit"]),
            (&json!("slow_consumer"), &json!(3), &json!(4))
        );
    }
}

//! The DataNet error taxonomy (PROTOCOL.md §5): gateway codes, client-side codes,
//! and every field an error can carry.

use serde_json::{Map, Value};

pub const RATE_LIMITED: &str = "rate_limited";
pub const DEVICE_LIMIT_REACHED: &str = "device_limit_reached";
pub const TOPIC_LIMIT_REACHED: &str = "topic_limit_reached";
pub const CHANNEL_NOT_PROVISIONED: &str = "channel_not_provisioned";
pub const CHANNEL_NOT_ALLOWED: &str = "channel_not_allowed";
pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
pub const AUTHENTICATION_FAILED: &str = "authentication_failed";
pub const NOT_CONNECTED: &str = "not_connected";
pub const PRESENCE_FAILED: &str = "presence_failed";
pub const PRESENCE_FORBIDDEN: &str = "presence_forbidden";
pub const GATEWAY_ERROR: &str = "gateway_error";
/// The network, TLS or WebSocket handshake failed (client side).
pub const CONNECTION_FAILED: &str = "connection_failed";
/// The connection was lost or stopped answering (client side).
pub const CONNECTION_LOST: &str = "connection_lost";
/// The server sent something this client cannot read (client side).
pub const PROTOCOL_ERROR: &str = "protocol_error";
/// A caller passed a value the protocol forbids (client side).
pub const INVALID_ARGUMENT: &str = "invalid_argument";

/// One DataNet error with every field the gateway or the client can attach.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataNetError {
    pub code: String,
    pub message: String,
    pub channel: Option<String>,
    pub operation: Option<String>,
    pub required: Option<String>,
    pub retry_ms: Option<u64>,
    pub scope: Option<String>,
    pub limit: Option<u64>,
    /// HTTP status, for errors of the REST calls.
    pub status: Option<u16>,
}

impl DataNetError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        DataNetError { code: code.to_string(), message: message.into(), ..Default::default() }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_string());
        self
    }

    /// Only `device_limit_reached` ends reconnection: the plan's device cap will
    /// not change by retrying.
    pub fn is_fatal(&self) -> bool {
        self.code == DEVICE_LIMIT_REACHED
    }

    /// Reads a gateway error envelope `{"type":"error","error":code, ...}`; a `code`
    /// field wins over `error`. Fields of the wrong type are left out, not fatal.
    pub fn from_envelope(envelope: &Map<String, Value>) -> Self {
        let text = |key: &str| envelope.get(key).and_then(Value::as_str).map(str::to_string);
        let number = |key: &str| envelope.get(key).and_then(non_negative_integer);
        let code = text("code").or_else(|| text("error")).unwrap_or_else(|| GATEWAY_ERROR.to_string());
        let message = text("message").unwrap_or_else(|| default_message(&code).to_string());
        DataNetError {
            message,
            channel: text("channel").or_else(|| text("ch")),
            operation: text("operation"),
            required: text("required"),
            retry_ms: number("retry_ms"),
            scope: text("scope"),
            limit: number("limit"),
            status: number("status").and_then(|s| u16::try_from(s).ok()),
            code,
        }
    }

    /// JSON object with every field; absent fields are `null` so readers see the
    /// whole taxonomy.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("code".into(), self.code.clone().into());
        map.insert("message".into(), self.message.clone().into());
        map.insert("channel".into(), self.channel.clone().into());
        map.insert("operation".into(), self.operation.clone().into());
        map.insert("required".into(), self.required.clone().into());
        map.insert("retry_ms".into(), self.retry_ms.into());
        map.insert("scope".into(), self.scope.clone().into());
        map.insert("limit".into(), self.limit.into());
        map.insert("status".into(), self.status.into());
        Value::Object(map)
    }

    /// Replaces every occurrence of each secret in the text fields, so that an
    /// echoing server or a library error never carries a key or token outward.
    pub fn redacted(mut self, secrets: &[&str]) -> Self {
        for field in [&mut self.message, &mut self.code] {
            *field = redact(field, secrets);
        }
        // A gateway can echo anything into the other text fields too.
        let echoed = [&mut self.channel, &mut self.operation, &mut self.required, &mut self.scope];
        for field in echoed.into_iter().flatten() {
            *field = redact(field, secrets);
        }
        self
    }
}

impl std::fmt::Display for DataNetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for DataNetError {}

/// Replaces each non-trivial secret in `text` with `[redacted]`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

fn non_negative_integer(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
}

fn default_message(code: &str) -> &'static str {
    match code {
        RATE_LIMITED => "publish rate over the plan's budget",
        DEVICE_LIMIT_REACHED => "the plan's device limit is reached",
        TOPIC_LIMIT_REACHED => "the plan's channel limit is reached",
        CHANNEL_NOT_PROVISIONED => "channel is not provisioned in this project",
        CHANNEL_NOT_ALLOWED => "channel is not allowed for this token",
        INSUFFICIENT_SCOPE => "the API key lacks the required scope",
        _ => "gateway error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rate_limited_keeps_every_field() {
        let e = DataNetError::from_envelope(&envelope(json!({
            "type": "error", "error": "rate_limited", "retry_ms": 250, "scope": "channel", "channel": "project.demo.a"
        })));
        assert_eq!(e.code, RATE_LIMITED);
        assert_eq!(e.retry_ms, Some(250));
        assert_eq!(e.scope.as_deref(), Some("channel"));
        assert_eq!(e.channel.as_deref(), Some("project.demo.a"));
        assert!(!e.is_fatal());
    }

    #[test]
    fn code_field_wins_and_device_limit_is_fatal() {
        let e = DataNetError::from_envelope(&envelope(json!({
            "type": "error", "error": "something", "code": "device_limit_reached", "limit": 3
        })));
        assert_eq!(e.code, DEVICE_LIMIT_REACHED);
        assert_eq!(e.limit, Some(3));
        assert!(e.is_fatal());
    }

    #[test]
    fn wrong_types_are_dropped_not_fatal() {
        let e = DataNetError::from_envelope(&envelope(json!({
            "type": "error", "error": 42, "retry_ms": "soon", "limit": -1, "channel": [1], "required": "pub"
        })));
        assert_eq!(e.code, GATEWAY_ERROR);
        assert_eq!(e.retry_ms, None);
        assert_eq!(e.limit, None);
        assert_eq!(e.channel, None);
        assert_eq!(e.required.as_deref(), Some("pub"));
    }

    #[test]
    fn to_json_lists_every_field() {
        let e = DataNetError::new(AUTHENTICATION_FAILED, "bad key").with_status(401);
        let v = e.to_json();
        for key in ["code", "message", "channel", "operation", "required", "retry_ms", "scope", "limit", "status"] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["status"], 401);
    }

    #[test]
    fn redaction_removes_secrets() {
        let e = DataNetError::new(GATEWAY_ERROR, "key ak_secret123 rejected").redacted(&["ak_secret123"]);
        assert_eq!(e.message, "key [redacted] rejected");
        let echoed = DataNetError::new(GATEWAY_ERROR, "x").with_channel("ak_secret123").redacted(&["ak_secret123"]);
        assert_eq!(echoed.channel.as_deref(), Some("[redacted]"));
        assert_eq!(redact("abc", &[""]), "abc");
    }
}

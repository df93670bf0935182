//! Test controls under `/_admin/` (only with `--admin`): break connections, inject
//! frames, freeze the gateway, and set the limits whose errors clients must handle.
//! API keys arrive in request bodies and are kept as key ids only.

use crate::http::{HttpRequest, Reply};
use crate::hub::{parse_conn_label, Hub};
use crate::jwt::key_id;
use datanet::protocol::base64;
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::Message;

type Body = Map<String, Value>;

enum Refusal {
    BadRequest(String),
    NoSuchRoute,
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Refusal::BadRequest(message)
    }
}

impl From<&str> for Refusal {
    fn from(message: &str) -> Self {
        Refusal::BadRequest(message.to_string())
    }
}

/// Answers an admin request; the path starts with `/_admin/`.
pub fn handle(hub: &Hub, request: &HttpRequest) -> Reply {
    let route = request.path.trim_start_matches("/_admin/");
    let outcome = match (request.method.as_str(), route) {
        ("GET", "stats") => Ok(hub.stats_json()),
        ("POST", _) => parse_body(&request.body).and_then(|body| post(hub, route, &body)),
        _ => Err(Refusal::NoSuchRoute),
    };
    match outcome {
        Ok(answer) => Reply::json(200, answer),
        Err(Refusal::BadRequest(message)) => Reply::error(400, "bad_request", &message),
        Err(Refusal::NoSuchRoute) => Reply::not_found(),
    }
}

/// An empty body counts as `{}`: `drop`, `freeze` and `thaw` take no arguments.
fn parse_body(body: &[u8]) -> Result<Body, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(body)) => Ok(body),
        _ => Err("body must be a JSON object".into()),
    }
}

fn post(hub: &Hub, route: &str, body: &Body) -> Result<Value, Refusal> {
    let answer = match route {
        "drop" => {
            let dropped = hub.drop_all();
            crate::log(format_args!("admin: dropped {dropped} connection(s)"));
            json!({"dropped": dropped})
        }
        "send" => json!({"sent": send(hub, body)?}),
        "freeze" | "thaw" => {
            let frozen = route == "freeze";
            hub.set_frozen(frozen);
            crate::log(format_args!("admin: {route}"));
            json!({"frozen": frozen})
        }
        "device-limit" => {
            let key = key_id(required_str(body, "key")?);
            let limit = optional_count(body, "limit")?;
            hub.with_policy(|policy| match limit {
                Some(limit) => policy.device_limits.insert(key, limit),
                None => policy.device_limits.remove(&key),
            });
            json!({"ok": true})
        }
        "rate-limit" => {
            let channel = required_str(body, "channel")?.to_string();
            let per_second = optional_count(body, "per_second")?.filter(|&n| n > 0);
            let per_second = per_second.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            hub.with_policy(|policy| match per_second {
                Some(per_second) => policy.rate_limits.insert(channel, per_second),
                None => policy.rate_limits.remove(&channel),
            });
            json!({"ok": true})
        }
        "scopes" => {
            let key = key_id(required_str(body, "key")?);
            let scopes = string_list(body, "scopes")?;
            hub.with_policy(|policy| policy.scopes.insert(key, scopes));
            json!({"ok": true})
        }
        "revoke" => {
            let closed = hub.revoke(&key_id(required_str(body, "key")?));
            crate::log(format_args!("admin: revoked a key, closing {closed} session(s)"));
            json!({"ok": true, "closed": closed})
        }
        "token-ttl" => {
            // Negative values are allowed: they mint already-expired tokens for tests.
            let seconds = body.get("seconds").and_then(Value::as_i64);
            let seconds = seconds.ok_or("seconds must be an integer")?;
            hub.with_policy(|policy| policy.token_ttl_secs = seconds);
            json!({"ok": true})
        }
        "channel-cap" => {
            let limit = optional_count(body, "limit")?;
            hub.with_policy(|policy| policy.channel_cap = limit);
            json!({"ok": true})
        }
        _ => return Err(Refusal::NoSuchRoute),
    };
    Ok(answer)
}

/// `{"text": ...}` or `{"binary_b64": ...}`, to every connection or to `conn`.
fn send(hub: &Hub, body: &Body) -> Result<u64, String> {
    let frame = match (body.get("text"), body.get("binary_b64")) {
        (Some(Value::String(text)), None) => Message::text(text.as_str()),
        (None, Some(Value::String(b64))) => {
            let bytes = base64::decode(b64).map_err(|error| format!("binary_b64: {error}"))?;
            Message::binary(bytes)
        }
        _ => return Err("give exactly one of text and binary_b64, as a string".to_string()),
    };
    let target = match body.get("conn") {
        None | Some(Value::Null) => None,
        Some(Value::String(label)) => Some(parse_conn_label(label).ok_or("conn must look like c-<n>")?),
        Some(_) => return Err("conn must be a string".to_string()),
    };
    Ok(hub.send_raw(target, frame))
}

fn required_str<'a>(body: &'a Body, field: &str) -> Result<&'a str, String> {
    body.get(field).and_then(Value::as_str).ok_or_else(|| format!("{field} must be a string"))
}

/// A non-negative integer, or `None` when the field is absent or `null`.
fn optional_count(body: &Body, field: &str) -> Result<Option<usize>, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(|n| Some(usize::try_from(n).unwrap_or(usize::MAX)))
            .ok_or_else(|| format!("{field} must be a non-negative integer or null")),
    }
}

fn string_list(body: &Body, field: &str) -> Result<Vec<String>, String> {
    let items = body.get(field).and_then(Value::as_array);
    let items = items.ok_or_else(|| format!("{field} must be an array of strings"))?;
    items
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("{field} must be an array of strings"))
}

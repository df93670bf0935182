//! The REST endpoints of PROTOCOL.md §1 and §6: token issue and presence.

use crate::http::{Request, Response};
use crate::hub::{Hub, Stats};
use crate::jwt::{self, DEFAULT_SCOPES};
use serde_json::{json, Map, Value};

/// Request fields copied into the token, as (body field, claim).
const DEVICE_CLAIMS: [(&str, &str); 3] = [("deviceId", "did"), ("clientId", "cid"), ("deviceName", "dname")];

/// `POST /auth/token`.
pub fn issue_token(hub: &Hub, request: &Request) -> Response {
    Stats::add(&hub.stats.auth_requests, 1);
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return Response::error(400, "bad_request", "body must be a JSON object");
    };
    let Some(api_key) = body.get("apiKey").and_then(Value::as_str).filter(|key| well_formed(key)) else {
        return invalid_api_key();
    };
    let key_id = jwt::key_id(api_key);
    let grant = hub.with_policy(|policy| {
        if policy.revoked.contains(&key_id) {
            return None;
        }
        let scopes = policy.scopes.get(&key_id).cloned();
        Some((scopes, policy.token_ttl_secs))
    });
    let Some((scopes, ttl_secs)) = grant else {
        return invalid_api_key();
    };

    let now = crate::unix_now_secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(key_id));
    claims.insert("pid".into(), json!(hub.project));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now.saturating_add(ttl_secs)));
    for (field, claim) in DEVICE_CLAIMS {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(value)) => {
                claims.insert(claim.into(), json!(value));
            }
            Some(_) => {
                let message = format!("{field} must be a string");
                return Response::error(400, "bad_request", &message);
            }
        }
    }
    let scopes = scopes.unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    claims.insert("scopes".into(), json!(scopes));
    Response::json(200, json!({"token": hub.signer().sign(&claims)}))
}

/// DataNet keys look like `ak_...`; the local gateway accepts any such key.
fn well_formed(api_key: &str) -> bool {
    api_key.starts_with("ak_") && api_key.len() >= 4
}

fn invalid_api_key() -> Response {
    Response::error(401, "invalid_api_key", "Invalid API key")
}

/// `GET /presence?channel=...&projectId=...`.
pub fn presence(hub: &Hub, request: &Request) -> Response {
    let token = request.header("authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let claims = match token.map(|token| hub.authorize(token)) {
        Some(Ok(claims)) => claims,
        Some(Err(error)) => return Response::error(401, "unauthorized", &error.to_string()),
        None => return Response::error(401, "unauthorized", "missing bearer token"),
    };
    let (Ok(channel), Ok(project)) = (request.query_param("channel"), request.query_param("projectId")) else {
        return Response::error(400, "bad_request", "malformed query string");
    };
    if project.is_some_and(|project| claims.pid.as_deref() != Some(project.as_str())) {
        return Response::error(403, "presence_forbidden", "forbidden");
    }
    let Some(channel) = channel else {
        return Response::error(400, "bad_request", "channel is required");
    };
    let (occupancy, members) = hub.presence(&channel);
    Response::json(200, json!({"occupancy": occupancy, "members": members}))
}

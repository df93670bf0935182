//! The REST endpoints of PROTOCOL.md §1 and §6: token issue and presence.

use crate::envelope::check_channel;
use crate::http::{HttpRequest, Reply};
use crate::hub::{Hub, Stats};
use crate::jwt::DEFAULT_SCOPES;
use serde_json::{json, Map, Value};

/// Request fields copied into the token, as (body field, claim).
const DEVICE_CLAIMS: [(&str, &str); 3] = [("deviceId", "did"), ("clientId", "cid"), ("deviceName", "dname")];

/// `POST /auth/token`.
pub fn issue_token(hub: &Hub, request: &HttpRequest) -> Reply {
    Stats::add(&hub.stats.auth_requests, 1);
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return Reply::error(400, "bad_request", "body must be a JSON object");
    };
    let Some(grant) = body.get("apiKey").and_then(Value::as_str).and_then(|key| hub.keys.grant(key)) else {
        return invalid_api_key();
    };
    let admin_grant = hub.with_policy(|policy| {
        if policy.revoked.contains(&grant.key_id) {
            return None;
        }
        Some((policy.scopes.get(&grant.key_id).cloned(), policy.token_ttl_secs))
    });
    let Some((admin_scopes, ttl_secs)) = admin_grant else {
        return invalid_api_key();
    };

    let now = crate::unix_now_secs();
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(grant.key_id));
    claims.insert("pid".into(), json!(grant.project.as_deref().unwrap_or(&hub.project)));
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
                return Reply::error(400, "bad_request", &message);
            }
        }
    }
    let scopes =
        admin_scopes.or(grant.scopes).unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    claims.insert("scopes".into(), json!(scopes));
    Reply::json(200, json!({"token": hub.signer().sign(&claims)}))
}

fn invalid_api_key() -> Reply {
    Reply::error(401, "invalid_api_key", "Invalid API key")
}

/// `GET /presence?channel=...&projectId=...`.
pub fn presence(hub: &Hub, request: &HttpRequest) -> Reply {
    let token = request.header("authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let claims = match token.map(|token| hub.authorize(token)) {
        Some(Ok(claims)) => claims,
        Some(Err(error)) => return Reply::error(401, "unauthorized", &error.to_string()),
        None => return Reply::error(401, "unauthorized", "missing bearer token"),
    };
    let (Ok(channel), Ok(project)) = (request.query_param("channel"), request.query_param("projectId")) else {
        return Reply::error(400, "bad_request", "malformed query string");
    };
    if project.is_some_and(|project| claims.pid.as_deref() != Some(project.as_str())) {
        return forbidden();
    }
    let Some(channel) = channel else {
        return Reply::error(400, "bad_request", "channel is required");
    };
    // Another project's channels are as invisible here as over the WebSocket.
    if check_channel(&channel, claims.pid.as_deref()).is_err() {
        return forbidden();
    }
    // Local subscribers, plus upstream's when relaying a venue.
    let (occupancy, members) = hub.presence(&channel);
    Reply::json(200, json!({"occupancy": occupancy, "members": members}))
}

fn forbidden() -> Reply {
    Reply::error(403, "presence_forbidden", "forbidden")
}

//! The two REST calls (PROTOCOL.md §1 and §6) as pure request builders and
//! response readers; the client performs the HTTP.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::error::{DataNetError, AUTHENTICATION_FAILED, PRESENCE_FAILED, PRESENCE_FORBIDDEN};

/// Joins a base URL and a path, trimming trailing slashes from the base.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// The identity sent to `POST /auth/token`; optional keys are left out when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    pub api_key: &'a str,
    pub device_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub device_name: Option<&'a str>,
}

impl TokenRequest<'_> {
    pub fn body(&self) -> String {
        let mut map = Map::new();
        map.insert("apiKey".into(), self.api_key.into());
        for (key, value) in
            [("deviceId", self.device_id), ("clientId", self.client_id), ("deviceName", self.device_name)]
        {
            if let Some(value) = value {
                map.insert(key.into(), value.into());
            }
        }
        Value::Object(map).to_string()
    }
}

/// Reads the answer to `POST /auth/token`: the JWT, or `authentication_failed`
/// carrying the HTTP status and the server's reason (`code`, else `error`).
pub fn parse_token_response(status: u16, body: &str) -> Result<String, DataNetError> {
    let json: Option<Map<String, Value>> = match serde_json::from_str(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let field = |key: &str| json.as_ref().and_then(|m| m.get(key)).and_then(Value::as_str);
    if status == 200 {
        return match field("token") {
            Some(token) if !token.is_empty() => Ok(token.to_string()),
            _ => Err(DataNetError::new(AUTHENTICATION_FAILED, "token response without a token").with_status(status)),
        };
    }
    let reason = field("code").or_else(|| field("error")).unwrap_or("no reason given");
    Err(DataNetError::new(AUTHENTICATION_FAILED, format!("token request refused (HTTP {status}): {reason}"))
        .with_status(status))
}

/// The path and query of `GET /presence`, `projectId` left out without a project.
pub fn presence_path(channel: &str, project_id: Option<&str>) -> String {
    let mut path = format!("/presence?channel={}", percent_encode(channel));
    if let Some(pid) = project_id {
        path.push_str("&projectId=");
        path.push_str(&percent_encode(pid));
    }
    path
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub occupancy: u64,
    pub members: Vec<String>,
}

impl Presence {
    pub fn to_json(&self) -> Value {
        serde_json::json!({"occupancy": self.occupancy, "members": self.members})
    }
}

/// Reads the answer to `GET /presence`: 403 is `presence_forbidden`, anything
/// else that is not a 200 with a JSON object is `presence_failed`.
pub fn parse_presence_response(channel: &str, status: u16, body: &str) -> Result<Presence, DataNetError> {
    if status == 403 {
        return Err(DataNetError::new(PRESENCE_FORBIDDEN, "presence is not allowed for this token")
            .with_status(status)
            .with_channel(channel));
    }
    let failed = |why: String| Err(DataNetError::new(PRESENCE_FAILED, why).with_status(status).with_channel(channel));
    if status != 200 {
        return failed(format!("presence request failed (HTTP {status})"));
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
        return failed("presence response is not a JSON object".into());
    };
    let occupancy = map.get("occupancy").or_else(|| map.get("count")).and_then(Value::as_u64).unwrap_or(0);
    let members = match map.get("members") {
        Some(Value::Array(items)) => items.iter().filter_map(|m| m.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    Ok(Presence { occupancy, members })
}

/// Everything but RFC 3986's unreserved characters is escaped.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// RFC 3986 percent-encoding of a query value (UTF-8 bytes, upper-case hex).
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_request_body_leaves_out_unset_keys() {
        let body = TokenRequest { api_key: "ak_1", ..Default::default() }.body();
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"apiKey": "ak_1"}));
        let body =
            TokenRequest { api_key: "ak_1", device_id: Some("d"), client_id: Some("c"), device_name: Some("n") }.body();
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"apiKey": "ak_1", "deviceId": "d", "clientId": "c", "deviceName": "n"})
        );
    }

    #[test]
    fn token_responses() {
        assert_eq!(parse_token_response(200, r#"{"token":"a.b.c"}"#).unwrap(), "a.b.c");
        for body in [r#"{"token":""}"#, r#"{"token":5}"#, "{}", "oops"] {
            let e = parse_token_response(200, body).unwrap_err();
            assert_eq!((e.code.as_str(), e.status), (AUTHENTICATION_FAILED, Some(200)));
        }
        let e = parse_token_response(401, r#"{"error":"Invalid API key","code":"invalid_api_key"}"#).unwrap_err();
        assert_eq!((e.code.as_str(), e.status), (AUTHENTICATION_FAILED, Some(401)));
        assert!(e.message.contains("invalid_api_key"));
        let e = parse_token_response(500, "gateway down").unwrap_err();
        assert_eq!(e.status, Some(500));
    }

    #[test]
    fn presence() {
        assert_eq!(
            presence_path("project.demo.a b", Some("p/1")),
            "/presence?channel=project.demo.a%20b&projectId=p%2F1"
        );
        assert_eq!(presence_path("c", None), "/presence?channel=c");
        assert_eq!(percent_encode("a~b-c_d.e/\u{e9}+&="), "a~b-c_d.e%2F%C3%A9%2B%26%3D");
        let p = parse_presence_response("c", 200, r#"{"count":2,"members":["a",3,"b"]}"#).unwrap();
        assert_eq!(p, Presence { occupancy: 2, members: vec!["a".into(), "b".into()] });
        assert_eq!(parse_presence_response("c", 403, "").unwrap_err().code, PRESENCE_FORBIDDEN);
        let e = parse_presence_response("c", 500, "").unwrap_err();
        assert_eq!((e.code.as_str(), e.channel.as_deref()), (PRESENCE_FAILED, Some("c")));
        assert_eq!(parse_presence_response("c", 200, "[]").unwrap_err().code, PRESENCE_FAILED);
    }

    #[test]
    fn urls() {
        assert_eq!(join_url("ws://h:1//", "/ws"), "ws://h:1/ws");
        assert_eq!(join_url("https://api.datanet.art", "/auth/token"), "https://api.datanet.art/auth/token");
    }
}

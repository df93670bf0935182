//! The HTTP side on hyper: `POST /auth/token`, `GET /presence`, `GET /stats` and
//! the admin API, with HTTP/1.1 keep-alive. hyper parses and bounds the head
//! (size, header count, header timeout, which also ends idle keep-alive
//! connections); the body is bounded here in size and time. Handlers see a small
//! collected `HttpRequest` and answer a JSON `Reply`.

use crate::hub::Hub;
use crate::net::Rewound;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Request line and headers together; beyond it hyper answers 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Requests served on one keep-alive connection before it is closed.
const MAX_REQUESTS_PER_CONNECTION: u32 = 100;

pub async fn serve(hub: Arc<Hub>, stream: Rewound, peer: SocketAddr) {
    let served = Arc::new(AtomicU32::new(0));
    let header_timeout = hub.limits.header_timeout;
    let service = hyper::service::service_fn(move |request| {
        let (hub, served) = (hub.clone(), served.clone());
        async move {
            let nth = served.fetch_add(1, Ordering::Relaxed) + 1;
            let mut response = respond(&hub, request).await;
            if nth >= MAX_REQUESTS_PER_CONNECTION {
                response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.await {
        if error.is_parse() || error.is_timeout() {
            crate::warn_peer(peer, if error.is_timeout() { "HTTP head timed out" } else { "malformed HTTP request" });
        }
    }
}

/// A request with its body read.
pub struct HttpRequest {
    pub method: Method,
    pub path: String,
    query: String,
    headers: HeaderMap,
    pub body: Bytes,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
    }

    /// Form-decoded value of a query parameter (`+` is a space); `Err` when the
    /// decoded bytes are not UTF-8.
    pub fn query_param(&self, name: &str) -> Result<Option<String>, ()> {
        for pair in self.query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if form_decode(key)? == name {
                return form_decode(value).map(Some);
            }
        }
        Ok(None)
    }
}

fn form_decode(text: &str) -> Result<String, ()> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8().map(|text| text.into_owned()).map_err(|_| ())
}

/// A JSON answer.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply { status, body }
    }

    /// The error shape of PROTOCOL.md §1: `{"error": str, "code": str}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Reply::json(status, json!({"error": message, "code": code}))
    }

    pub fn not_found() -> Self {
        Reply::error(404, "not_found", "no such endpoint")
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body.to_string())));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// Admin requests are answered even while the gateway is frozen; everything else
/// waits for the thaw.
async fn respond(hub: &Hub, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let admin = path.starts_with("/_admin/");
    if !admin {
        hub.wait_until_thawed().await;
    }
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return too_large().into_response();
    }
    let body = match tokio::time::timeout(hub.limits.header_timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<LengthLimitError>() => return too_large().into_response(),
        Ok(Err(_)) => return Reply::error(400, "bad_request", "unreadable request body").into_response(),
        Err(_) => return Reply::error(408, "request_timeout", "the request body came too slowly").into_response(),
    };
    let request = HttpRequest {
        method: parts.method,
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
    };
    route(hub, &request).into_response()
}

fn too_large() -> Reply {
    Reply::error(413, "payload_too_large", "request body exceeds 64 KiB")
}

fn route(hub: &Hub, request: &HttpRequest) -> Reply {
    if request.path.starts_with("/_admin/") {
        if !hub.admin.enabled {
            return Reply::not_found();
        }
        if !hub.admin.allows(request.header("authorization")) {
            return Reply::error(401, "unauthorized", "the admin API needs Authorization: Bearer <admin token>");
        }
        return crate::admin::handle(hub, request);
    }
    match (&request.method, request.path.as_str()) {
        (&Method::POST, "/auth/token") => crate::rest::issue_token(hub, request),
        (&Method::GET, "/presence") => crate::rest::presence(hub, request),
        (&Method::GET, "/stats") => Reply::json(200, hub.public_stats_json()),
        // Only a connection's first request can be an upgrade (see net.rs).
        (_, "/ws") => Reply::error(400, "bad_request", "expected a WebSocket upgrade as a connection's first request"),
        _ => Reply::not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_query(query: &str) -> HttpRequest {
        HttpRequest {
            method: Method::GET,
            path: "/presence".into(),
            query: query.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    #[test]
    fn query_parameters_are_form_decoded() {
        let request = with_query("channel=a%2Eb+c%2B&projectId=demo&flag");
        assert_eq!(request.query_param("channel"), Ok(Some("a.b c+".to_string())));
        assert_eq!(request.query_param("projectId"), Ok(Some("demo".to_string())));
        assert_eq!(request.query_param("flag"), Ok(Some(String::new())));
        assert_eq!(request.query_param("missing"), Ok(None));
        assert_eq!(with_query("c=%e2%9c%93").query_param("c"), Ok(Some("\u{2713}".into())));
        assert!(with_query("c=%ff").query_param("c").is_err());
    }
}

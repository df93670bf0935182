//! A minimal HTTP/1.1 server side: one request per connection, `Content-Length`
//! bodies only, every response `Connection: close`. Enough for the REST endpoints,
//! the admin API and the WebSocket upgrade, and strict about sizes so a bad
//! request costs little and never takes the server down.

use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const MAX_HEAD_BYTES: usize = 16 * 1024;
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// After a response, how long the socket waits for the peer to finish so that
/// unread input does not turn the close into a reset that eats the response.
const LINGER: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The raw query string, without the `?`.
    query: String,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First header with this name (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// Percent-decoded value of a query parameter; `Err` when its encoding is broken.
    pub fn query_param(&self, name: &str) -> Result<Option<String>, ()> {
        for pair in self.query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(key)? == name {
                return percent_decode(value).map(Some);
            }
        }
        Ok(None)
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer went away or stalled; there is nobody to answer.
    Disconnected,
    HeadTooLarge,
    BodyTooLarge,
    Malformed(&'static str),
}

/// Reads one request. Returns it with any bytes the peer sent after it (the first
/// WebSocket frames of an eager client), which the caller must not lose.
pub async fn read_request(stream: &mut TcpStream) -> Result<(Request, Vec<u8>), ReadError> {
    let mut buffer = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(end) = find_head_end(&buffer) {
            break end;
        }
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err(ReadError::HeadTooLarge);
        }
        read_more(stream, &mut buffer).await?;
    };
    if head_end > MAX_HEAD_BYTES {
        return Err(ReadError::HeadTooLarge);
    }
    let mut request = parse_head(&buffer[..head_end])?;
    let body_len = body_length(&request)?;
    let mut rest = buffer.split_off(head_end);
    while rest.len() < body_len {
        read_more(stream, &mut rest).await?;
    }
    let leftover = rest.split_off(body_len);
    request.body = rest;
    Ok((request, leftover))
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(), ReadError> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => Err(ReadError::Disconnected),
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// Offset just past the blank line ending the head.
fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|window| window == b"\r\n\r\n").map(|at| at + 4)
}

fn parse_head(head: &[u8]) -> Result<Request, ReadError> {
    let head = std::str::from_utf8(head).map_err(|_| ReadError::Malformed("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed("bad request line"));
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed("bad request line"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut headers = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed("bad header line"))?;
        // A name with whitespace is also how obsolete line folding shows up: refused.
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(ReadError::Malformed("bad header name"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: Vec::new(),
    })
}

fn body_length(request: &Request) -> Result<usize, ReadError> {
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::Malformed("only Content-Length bodies are supported"));
    }
    let Some(length) = request.header("content-length") else {
        return Ok(0);
    };
    let length: usize = length.parse().map_err(|_| ReadError::Malformed("bad Content-Length"))?;
    if length > MAX_BODY_BYTES {
        return Err(ReadError::BodyTooLarge);
    }
    Ok(length)
}

/// `application/x-www-form-urlencoded` decoding: `%XX` escapes and `+` as space.
pub fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let digits = bytes.get(i + 1..i + 3).ok_or(())?;
                let high = hex_value(digits[0]).ok_or(())?;
                let low = hex_value(digits[1]).ok_or(())?;
                out.push(high << 4 | low);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    pub fn json(status: u16, body: Value) -> Self {
        Response { status, body }
    }

    /// The error shape of PROTOCOL.md §1: `{"error": str, "code": str}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Response::json(status, json!({"error": message, "code": code}))
    }

    pub fn not_found() -> Self {
        Response::error(404, "not_found", "no such endpoint")
    }

    pub fn for_read_error(error: &ReadError) -> Option<Self> {
        match error {
            ReadError::Disconnected => None,
            ReadError::HeadTooLarge => Some(Response::error(400, "bad_request", "request head exceeds 16 KiB")),
            ReadError::BodyTooLarge => Some(Response::error(413, "payload_too_large", "request body exceeds 64 KiB")),
            ReadError::Malformed(why) => Some(Response::error(400, "bad_request", why)),
        }
    }

    /// Writes the response, then closes the connection politely.
    pub async fn send(self, mut stream: TcpStream) {
        let body = self.body.to_string();
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            self.status,
            reason_phrase(self.status),
            body.len()
        );
        let written = async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.shutdown().await
        };
        if written.await.is_ok() {
            linger_until_peer_closes(&mut stream).await;
        }
    }
}

/// Discards input until the peer closes (bounded in time), so a client still
/// sending a refused body reads our answer instead of a connection reset.
async fn linger_until_peer_closes(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    let drain = async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head() {
        let head = b"GET /presence?channel=a%2Eb+c&projectId=demo HTTP/1.1\r\nHost: x\r\n\
                     AUTHORIZATION:  Bearer t \r\n\r\n";
        let request = parse_head(head).unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/presence");
        assert_eq!(request.header("authorization"), Some("Bearer t"));
        assert_eq!(request.query_param("channel"), Ok(Some("a.b c".to_string())));
        assert_eq!(request.query_param("projectId"), Ok(Some("demo".to_string())));
        assert_eq!(request.query_param("missing"), Ok(None));
    }

    #[test]
    fn refuses_malformed_heads() {
        for head in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET nopath HTTP/1.1\r\n\r\n",
            b"GET / SPDY/3\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n",
        ] {
            assert!(parse_head(head).is_err(), "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("project.demo%2Fx%20y"), Ok("project.demo/x y".into()));
        assert_eq!(percent_decode("%e2%9c%93"), Ok("\u{2713}".into()));
        assert!(percent_decode("%").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%+1").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}

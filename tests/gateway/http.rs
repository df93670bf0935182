//! The HTTP side (hyper, and tokio-tungstenite's handshake for `/ws`) under
//! malformed input: each case is answered with a clean 4xx or a closed connection,
//! while a well-behaved client on the same gateway keeps its delivery.

use super::*;

fn request_with_headers(count: usize) -> Vec<u8> {
    let mut request = String::from("GET /stats HTTP/1.1\r\nHost: x\r\n");
    for n in 0..count {
        request.push_str(&format!("X-Flood-{n}: {n}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

#[test]
fn malformed_requests_get_a_4xx_or_a_close_while_a_client_keeps_its_delivery() {
    let gateway = Gateway::start();
    let watcher = Watcher::start(&gateway);
    let chunked_flood = {
        let chunk = "a".repeat(4096);
        let mut body = String::new();
        for _ in 0..20 {
            body.push_str(&format!("1000\r\n{chunk}\r\n"));
        }
        format!("POST /auth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}0\r\n\r\n")
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("request line without a target", b"GET\r\n\r\n".to_vec()),
        ("request line with an extra part", b"GET / / HTTP/1.1\r\n\r\n".to_vec()),
        ("HTTP/0.9", b"GET /\r\n\r\n".to_vec()),
        ("a TLS hello on the plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec()),
        ("header without a colon", b"GET /stats HTTP/1.1\r\nbroken\r\n\r\n".to_vec()),
        (
            "two different Content-Lengths",
            b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\n{}".to_vec(),
        ),
        ("a flood of headers", request_with_headers(500)),
        ("a 20 KiB request line", format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20 * 1024)).into_bytes()),
        ("a chunked body over 64 KiB", chunked_flood.into_bytes()),
        ("GET /ws without an upgrade", b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("GET /ws with a broken head", b"GET /ws HTTP/1.1\r\nbroken\r\n\r\n".to_vec()),
    ];
    for (name, request) in &cases {
        let answer = raw_exchange(&mut tcp(&gateway), request);
        let status = answer.get(..12).unwrap_or_default();
        assert!(answer.is_empty() || status.starts_with("HTTP/1.1 4"), "{name}: {answer:?}");
        eprintln!("{name}: {}", if answer.is_empty() { "closed" } else { status });
    }
    let round_trips = watcher.finish();
    eprintln!("well-behaved client: {} round trips, p99 {:?}", round_trips.len(), p99(&round_trips));
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let gateway = Gateway::start();
    let request = |key: &str, close: bool| {
        let body = json!({"apiKey": key}).to_string();
        let connection = if close { "Connection: close\r\n" } else { "" };
        format!(
            "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{connection}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let pipelined = format!("{}{}{}", request("ak_one", false), request("bad", false), request("ak_two", true));
    let answer = raw_exchange(&mut tcp(&gateway), pipelined.as_bytes());
    let statuses: Vec<&str> = answer.match_indices("HTTP/1.1 ").map(|(at, _)| &answer[at + 9..at + 12]).collect();
    assert_eq!(statuses, ["200", "401", "200"], "{answer}");
}

#[test]
fn keep_alive_connections_serve_several_requests() {
    let gateway = Gateway::start();
    let mut stream = tcp(&gateway);
    for _ in 0..3 {
        stream.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        // Drain the rest of this answer: its body ends with the closing brace.
        let mut byte = [0u8; 1];
        let mut text = Vec::new();
        while !text.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            text.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&text).to_ascii_lowercase();
        let length: usize =
            head.split("content-length: ").nth(1).and_then(|rest| rest.split("\r\n").next()?.parse().ok()).unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).unwrap();
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
    }
}

#[test]
fn slow_heads_and_unfinished_handshakes_are_cut_at_the_timeout() {
    let gateway = Gateway::start_with(&["--header-timeout", "0.5", "--handshake-timeout", "0.5"]);
    let watcher = Watcher::start(&gateway);
    // Nothing at all; a request line and no more; a head that never ends; an
    // upgrade request that never ends.
    let partial: [&[u8]; 4] = [
        b"",
        b"GET /stats HTTP/1.1\r\n",
        b"GET /stats HTTP/1.1\r\nHost: x\r\nX-A: ",
        b"GET /ws HTTP/1.1\r\nHost: x\r\n",
    ];
    let mut streams: Vec<TcpStream> = partial
        .iter()
        .map(|bytes| {
            let mut stream = tcp(&gateway);
            stream.write_all(bytes).unwrap();
            stream
        })
        .collect();
    // A slowloris: one more header byte every 100 ms, for up to 10 s.
    let mut slowloris = tcp(&gateway);
    slowloris.write_all(b"GET /stats HTTP/1.1\r\n").unwrap();
    let mut writer = slowloris.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b"X").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert!(time_until_closed(&mut slowloris, Duration::from_secs(10)).is_some(), "the slowloris was never cut");
    for (bytes, stream) in partial.iter().zip(&mut streams) {
        let closed = time_until_closed(stream, Duration::from_secs(10));
        assert!(closed.is_some(), "{:?} was never cut", String::from_utf8_lossy(bytes));
    }
    watcher.finish();
}

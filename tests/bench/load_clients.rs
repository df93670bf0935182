//! The load benchmark's clients: the gateway's WebSocket protocol (token, upgrade
//! with the bearer subprotocol, subscribe) and a minimal MQTT 3.1.1 client (QoS 0)
//! for Mosquitto.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

pub fn token(port: u16, key: &str) -> String {
    let answer = ureq::post(&format!("http://127.0.0.1:{port}/auth/token"))
        .set("Content-Type", "application/json")
        .send_string(&json!({"apiKey": key}).to_string())
        .expect("a token")
        .into_string()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    answer["token"].as_str().unwrap().to_string()
}

pub async fn ws_connect(port: u16, token: &str) -> Ws {
    let mut request = format!("ws://127.0.0.1:{port}/ws").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(&format!("bearer, {token}")).unwrap());
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await.expect("upgrade");
    ws.next().await.expect("connected").expect("connected");
    ws
}

pub async fn ws_subscribe(ws: &mut Ws, channel: &str) {
    ws.send(Message::text(json!({"op": "sub", "ch": channel}).to_string())).await.unwrap();
    while let Some(Ok(frame)) = ws.next().await {
        if frame.to_text().is_ok_and(|text| text.contains("sub_ack")) {
            return;
        }
    }
}

pub struct Mqtt {
    pub stream: TcpStream,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already consumed (compacted once per read, not per packet).
    start: usize,
}

fn mqtt_frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![kind];
    let mut length = body.len();
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        frame.push(byte);
        if length == 0 {
            break;
        }
    }
    frame.extend_from_slice(body);
    frame
}

fn mqtt_string(text: &str) -> Vec<u8> {
    let mut bytes = (text.len() as u16).to_be_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

impl Mqtt {
    pub async fn connect(port: u16, id: &str) -> Mqtt {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut mqtt = Mqtt { stream, buffer: Vec::new(), start: 0 };
        let mut body = mqtt_string("MQTT");
        body.extend_from_slice(&[4, 0x02, 0xff, 0xff]);
        body.extend_from_slice(&mqtt_string(id));
        mqtt.stream.write_all(&mqtt_frame(0x10, &body)).await.unwrap();
        mqtt.next_packet().await.expect("CONNACK");
        mqtt
    }

    pub async fn subscribe(&mut self, topic: &str) {
        let mut body = vec![0, 1];
        body.extend_from_slice(&mqtt_string(topic));
        body.push(0);
        self.stream.write_all(&mqtt_frame(0x82, &body)).await.unwrap();
        while let Some((kind, _)) = self.next_packet().await {
            if kind >> 4 == 9 {
                return;
            }
        }
    }

    pub fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = mqtt_string(topic);
        body.extend_from_slice(payload);
        mqtt_frame(0x30, &body)
    }

    /// The next packet: (first byte, body).
    pub async fn next_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((header, length)) = self.parse_header() {
                let end = self.start + header + length;
                if self.buffer.len() >= end {
                    let kind = self.buffer[self.start];
                    let body = self.buffer[self.start + header..end].to_vec();
                    self.start = end;
                    return Some((kind, body));
                }
            }
            self.buffer.drain(..self.start);
            self.start = 0;
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse_header(&self) -> Option<(usize, usize)> {
        let (mut length, mut shift) = (0usize, 0);
        for (index, byte) in self.buffer[self.start..].iter().enumerate().skip(1).take(4) {
            length |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some((index + 1, length));
            }
            shift += 7;
        }
        None
    }
}

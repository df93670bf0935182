//! 6. Fuzzing the decoders, base64, ArtDMX and the dn_poll path.

use super::malformed::{binary_with, envelope_templates, message_with, render, Frame, TWO_TO_THE_70};
use super::*;

/// xorshift64*: reproducible from its seed, which the figure prints.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Bytes that matter to JSON, base64, UTF-8 and Art-Net headers.
const INTERESTING_BYTES: &[u8] = b"{}[]\":,\\-+.eE019 ntfu=/+A\x00\x01\x02\x0e\x50\x7f\x80\xc3\xed\xf0\xfe\xff";
/// Tokens spliced in whole: numbers out of range, escapes, envelope words.
const INTERESTING_TOKENS: &[&str] = &[
    "1e400",
    "-1e400",
    TWO_TO_THE_70,
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "4e-400",
    "-0",
    "null",
    "true",
    "[]",
    "{}",
    r#""""#,
    r#""\ud800""#,
    r#""\u0000""#,
    r#""AQID""#,
    r#""@@==""#,
    r#""binary/dmx""#,
    r#""binary/artnet""#,
    r#""binary/vecf32""#,
    r#""pub""#,
    r#""message""#,
    r#""error""#,
    r#""sub_ack""#,
    r#""device_limit""#,
    "[[[[[[[[[[",
    "]]]]",
    "Art-Net\0",
    "====",
];
/// Largest mutated input: well under any frame limit.
const MAX_INPUT: usize = 16 * 1024;

/// 1 to 4 mutations: bit flips, interesting bytes and tokens, inserts, deletes,
/// duplications, truncation, splices with another corpus entry, nesting.
fn mutate(rng: &mut Rng, seed: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(10) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = *rng.pick(INTERESTING_BYTES);
            }
            2 => {
                let n = 1 + rng.below(8);
                let inserted: Vec<u8> = (0..n).map(|_| *rng.pick(INTERESTING_BYTES)).collect();
                out.splice(at..at, inserted);
            }
            3 => {
                let token = rng.pick(INTERESTING_TOKENS).as_bytes().to_vec();
                let end = (at + rng.below(6)).min(out.len());
                out.splice(at..end, token);
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            5 => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let copy = out[at..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, copy);
            }
            6 => out.truncate(at),
            7 => {
                let other = rng.pick(corpus);
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            8 => {
                let depth = 1 + rng.below(200);
                let end = (at + rng.below(16)).min(out.len());
                let inner = out[at..end].to_vec();
                let nested = [vec![b'['; depth], inner, vec![b']'; depth]].concat();
                out.splice(at..end, nested);
            }
            _ => {
                let len = 1 + rng.below(8);
                let noise = rng.bytes(len);
                out.splice(at..at, noise);
            }
        }
    }
    out.truncate(MAX_INPUT);
    out
}

/// Inputs for one target: mostly mutated corpus entries, some pure noise, some
/// corpus entries as they are.
fn fuzz_input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(20) {
        0 => {
            let len = rng.below(300);
            rng.bytes(len)
        }
        1 => rng.pick(corpus).clone(),
        _ => {
            let seed = rng.pick(corpus).clone();
            mutate(rng, &seed, corpus)
        }
    }
}

fn text_corpus() -> Vec<Vec<u8>> {
    let mut corpus: Vec<Vec<u8>> = envelope_templates().iter().map(|(_, f)| render(f).into_bytes()).collect();
    corpus.push(message_with("d", r#"[1,{"a":[true,null,"s"]},-2.5e3]"#).into_bytes());
    corpus.push(
        binary_with(&[("ct", r#""binary/artnet""#), ("b64", r#""QXJ0LU5ldAAAUAAOBwUjAQAEAQIDBA==""#)]).into_bytes(),
    );
    corpus.push(binary_with(&[("ct", r#""binary/vecf32""#), ("b64", r#""AADAPwAAAMA=""#)]).into_bytes());
    corpus.push(br#"{"type":"error","error":"channel_not_allowed","channel":"x","operation":"sub"}"#.to_vec());
    corpus
}

fn art_net_corpus(rng: &mut Rng) -> Vec<Vec<u8>> {
    use datanet::protocol::lighting::{build_art_dmx_packet, ArtDmxHeader};
    let mut corpus = vec![
        // PROTOCOL.md §9's vector.
        vec![
            0x41, 0x72, 0x74, 0x2d, 0x4e, 0x65, 0x74, 0x00, 0x00, 0x50, 0x00, 0x0e, 0x07, 0x05, 0x23, 0x01, 0x00, 0x04,
            0x01, 0x02, 0x03, 0x04,
        ],
    ];
    for len in [0usize, 1, 2, 3, 511, 512, 600] {
        let header = ArtDmxHeader::clamped(rng.below(16) as i64, rng.below(16) as i64, rng.below(128) as i64, 1, 0);
        let dmx = rng.bytes(len);
        corpus.push(build_art_dmx_packet(&dmx, header));
    }
    corpus
}

/// ArtDMX validity written out independently: id, OpCode, 2 <= length <= 512,
/// and the packet holds the header and the data.
fn art_dmx_is_valid(packet: &[u8]) -> bool {
    if packet.len() < 18 || &packet[..8] != b"Art-Net\0" || packet[8..10] != [0x00, 0x50] {
        return false;
    }
    let length = usize::from(u16::from_be_bytes([packet[16], packet[17]]));
    (2..=512).contains(&length) && packet.len() >= 18 + length
}

/// Standard padded base64 written out independently (bit accumulator); trailing
/// bits of the last symbol are ignored, as the library does.
fn reference_base64(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let pad = text.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return None;
    }
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for &c in &text[..text.len() - pad] {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Runs targets and tallies executions and findings; a finding is a panic or a
/// broken property.
struct Campaign {
    rng: Rng,
    scale: u64,
    executions: u64,
    findings: Vec<String>,
    tally: Vec<String>,
}

impl Campaign {
    /// `count` (× the soak scale) inputs from `corpus` through `check`.
    fn target(
        &mut self,
        name: &str,
        count: u64,
        corpus: &[Vec<u8>],
        mut check: impl FnMut(&mut Rng, &[u8]) -> Result<(), String>,
    ) {
        for _ in 0..count * self.scale {
            let input = fuzz_input(&mut self.rng, corpus);
            let rng = &mut self.rng;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(rng, &input)));
            self.executions += 1;
            let finding = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(broken)) => broken,
                Err(_) => "panic".to_string(),
            };
            if self.findings.len() < 20 {
                let shown: String = input.iter().take(200).map(|b| format!("{b:02x}")).collect();
                self.findings.push(format!("{name}: {finding}; input {} bytes: {shown}", input.len()));
            }
        }
        self.tally.push(format!("{name} {}", count * self.scale));
    }
}

fn check_decode_text(text: &str) -> Result<(), String> {
    let as_text = decode_text(text);
    let as_binary = decode_binary_frame(text.as_bytes().to_vec());
    // A binary frame is the same envelope when it is a JSON object, raw bytes otherwise.
    match &as_binary {
        Ok(ServerEnvelope::Message(m)) if matches!(&m.payload, Payload::Binary { raw: true, .. }) => {
            let Payload::Binary { data, .. } = &m.payload else { unreachable!() };
            if data != text.as_bytes() {
                return Err("raw frame bytes changed".into());
            }
            if as_text.is_ok() {
                return Err("text decoded an envelope the binary path called raw".into());
            }
        }
        other if *other != as_text => return Err(format!("text {as_text:?} but binary {other:?}")),
        _ => {}
    }
    Ok(())
}

fn check_art_dmx(packet: &[u8]) -> Result<(), String> {
    use datanet::protocol::lighting::{build_art_dmx_packet, decode_art_dmx};
    let decoded = decode_art_dmx(packet);
    if decoded.is_ok() != art_dmx_is_valid(packet) {
        return Err(format!("accepted = {}, but the rules say {}", decoded.is_ok(), art_dmx_is_valid(packet)));
    }
    let Ok(decoded) = decoded else { return Ok(()) };
    let length = decoded.data.len();
    let h = decoded.header;
    if decoded.data[..] != packet[18..18 + length]
        || h.sequence != packet[12]
        || h.physical != packet[13]
        || (h.subnet << 4 | h.universe) != packet[14]
        || h.net != packet[15] & 0x7f
    {
        return Err(format!("fields do not match the packet: {h:?}"));
    }
    if length % 2 == 0 {
        // The decoder ignores ProtVer (PROTOCOL.md §9 lists what it checks) and the
        // top bit of Net; the builder writes 14 and a 7-bit Net.
        let mut expected = packet[..18 + length].to_vec();
        expected[10..12].copy_from_slice(&[0, 14]);
        expected[15] &= 0x7f;
        if build_art_dmx_packet(&decoded.data, h) != expected {
            return Err("rebuilding the decoded packet gives other bytes".into());
        }
    }
    Ok(())
}

fn check_base64(text: &[u8]) -> Result<(), String> {
    use datanet::protocol::base64;
    let Ok(text) = std::str::from_utf8(text) else { return Ok(()) };
    let decoded = base64::decode(text).ok();
    if decoded != reference_base64(text.as_bytes()) {
        return Err(format!("library {decoded:?} vs reference {:?}", reference_base64(text.as_bytes())));
    }
    if let Some(bytes) = decoded {
        if base64::decoded_len(text) != Some(bytes.len()) || base64::decode(&base64::encode(&bytes)).ok() != Some(bytes)
        {
            return Err("decoded_len or the round trip disagrees".into());
        }
    }
    Ok(())
}

/// `dn_base64_decode` agrees with the library, including with a small buffer.
fn check_ffi_base64(text: &[u8], cap: usize) -> Result<(), String> {
    use datanet::ffi::*;
    let text: Vec<u8> = text.iter().copied().filter(|&b| b != 0).collect();
    let c_text = CString::new(text.clone()).unwrap();
    let mut out = vec![0u8; cap];
    let mut len = usize::MAX;
    let rc = unsafe { dn_base64_decode(c_text.as_ptr(), out.as_mut_ptr(), cap, &mut len) };
    let expected = std::str::from_utf8(&text).map(|t| datanet::protocol::base64::decode(t).ok());
    match expected {
        Err(_) if rc == DN_ERR_INVALID_UTF8 => Ok(()),
        Ok(None) if rc == DN_ERR_INVALID_ARGUMENT => Ok(()),
        Ok(Some(bytes)) if bytes.len() > cap && rc == DN_ERR_BUFFER_TOO_SMALL && len == bytes.len() => Ok(()),
        Ok(Some(bytes)) if rc == DN_OK && len == bytes.len() && out[..len] == bytes[..] => Ok(()),
        other => Err(format!("rc {rc}, len {len}, library says {other:?}")),
    }
}

/// `dn_decode_art_dmx` agrees with the library.
fn check_ffi_art_dmx(packet: &[u8]) -> Result<(), String> {
    use datanet::ffi::*;
    let mut header = DnArtDmx::default();
    let mut data = [0u8; 512];
    let mut len = 0usize;
    let rc = unsafe { dn_decode_art_dmx(packet.as_ptr(), packet.len(), &mut header, data.as_mut_ptr(), 512, &mut len) };
    match datanet::protocol::lighting::decode_art_dmx(packet) {
        Err(_) if rc == DN_ERR_INVALID_ARGUMENT => Ok(()),
        Ok(d)
            if rc == DN_OK
                && data[..len] == d.data[..]
                && header.length as usize == len
                && header.port_address == d.header.port_address()
                && header.sequence == d.header.sequence =>
        {
            Ok(())
        }
        other => Err(format!("rc {rc}, header {header:?}, library says {other:?}")),
    }
}

#[test]
fn fuzz_decoders() {
    let _suite = shared();
    count_library_panics();
    let scale: u64 = if soak() { 10 } else { 1 };
    let seed = std::env::var("DATANET_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_da7a_u64);
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let texts = text_corpus();
    let packets = art_net_corpus(&mut rng);
    let encodings: Vec<Vec<u8>> =
        (0..40).map(|n| datanet::protocol::base64::encode(&rng.bytes(n)).into_bytes()).collect();
    let mut campaign = Campaign { rng, scale, executions: 0, findings: Vec::new(), tally: Vec::new() };
    campaign.target("decode_text", 80_000, &texts, |_, input| check_decode_text(&String::from_utf8_lossy(input)));
    campaign.target("decode_binary_frame", 40_000, &texts, |_, input| {
        // Any result is fine; only a panic is a finding (the properties are
        // checked through decode_text above).
        let _ = decode_binary_frame(input.to_vec());
        Ok(())
    });
    campaign.target("decode_art_dmx", 60_000, &packets, |_, input| check_art_dmx(input));
    campaign.target("base64::decode", 60_000, &encodings, |_, input| check_base64(input));
    campaign.target("dn_base64_decode", 10_000, &encodings, |rng, input| {
        let cap = if rng.one_in(4) { rng.below(8) } else { 4096 };
        check_ffi_base64(input, cap)
    });
    campaign.target("dn_decode_art_dmx", 10_000, &packets, |_, input| check_ffi_art_dmx(input));
    let frames = 20_000 * scale as usize;
    let (delivered, end_to_end_findings) = fuzz_through_the_client(&mut campaign.rng, &texts, frames);
    campaign.executions += frames as u64;
    campaign.findings.extend(end_to_end_findings);
    campaign.tally.push(format!("frames through a client and dn_poll {frames} ({delivered} records)"));

    assert_eq!(LIBRARY_PANICS.load(Ordering::SeqCst), 0, "a library thread panicked");
    assert!(campaign.findings.is_empty(), "findings:\n{}", campaign.findings.join("\n"));
    figure(
        "fuzz_decoders",
        format!(
            "{} executions in {:.1} s, seed {seed:#x}: {}; findings 0",
            campaign.executions,
            started.elapsed().as_secs_f64(),
            campaign.tally.join(", ")
        ),
    );
}

/// One record of a `dn_poll` batch.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    kind: u8,
    flags: u8,
    ts: i64,
    channel: Vec<u8>,
    from: Vec<u8>,
    content_type: Vec<u8>,
    meta: Vec<u8>,
    payload: Vec<u8>,
}

/// Parses a batch, checking its framing: every length adds up, reserved is 0.
fn parse_batch(batch: &[u8], count: u32) -> Result<Vec<Record>, String> {
    const HEADER: usize = datanet::ffi::DN_RECORD_HEADER_LEN as usize;
    let u32_at = |at: usize| u32::from_le_bytes(batch[at..at + 4].try_into().unwrap()) as usize;
    let mut records = Vec::new();
    let mut at = 0;
    while at < batch.len() {
        if batch.len() - at < HEADER {
            return Err(format!("{} bytes left, less than a header", batch.len() - at));
        }
        let record_len = u32_at(at);
        let lens: Vec<usize> = (0..5).map(|i| u32_at(at + 20 + 4 * i)).collect();
        if record_len != HEADER + lens.iter().sum::<usize>()
            || at + record_len > batch.len()
            || batch[at + 6..at + 8] != [0, 0]
        {
            return Err(format!("bad record framing at {at}: len {record_len}, fields {lens:?}"));
        }
        let mut fields = Vec::new();
        let mut from = at + HEADER;
        for len in &lens {
            fields.push(batch[from..from + len].to_vec());
            from += len;
        }
        let [channel, from_, content_type, meta, payload]: [Vec<u8>; 5] = fields.try_into().unwrap();
        records.push(Record {
            kind: batch[at + 4],
            flags: batch[at + 5],
            ts: i64::from_le_bytes(batch[at + 8..at + 16].try_into().unwrap()),
            channel,
            from: from_,
            content_type,
            meta,
            payload,
        });
        at += record_len;
    }
    if records.len() != count as usize {
        return Err(format!("{} records, count says {count}", records.len()));
    }
    Ok(records)
}

/// The record a frame must produce, by the sans-IO decoder; `Err` for frames
/// that must not be sent (fatal errors end the session).
fn expected_record(frame: &Frame) -> Result<Option<Record>, ()> {
    use datanet::ffi::*;
    let decoded = match frame {
        Frame::Text(text) => decode_text(text),
        Frame::Binary(bytes) => decode_binary_frame(bytes.clone()),
    };
    let error_record = |error: &DataNetError| Record {
        kind: DN_EVENT_ERROR,
        flags: 0,
        ts: 0,
        channel: error.channel.clone().unwrap_or_default().into_bytes(),
        from: Vec::new(),
        content_type: Vec::new(),
        meta: Vec::new(),
        payload: error.to_json().to_string().into_bytes(),
    };
    Ok(Some(match decoded {
        Err(error) => error_record(&error),
        Ok(ServerEnvelope::Error(error)) if error.is_fatal() => return Err(()),
        Ok(ServerEnvelope::Error(error)) => error_record(&error),
        Ok(ServerEnvelope::SubAck { channel, occupancy }) => Record {
            kind: DN_EVENT_SUB_ACK,
            flags: 0,
            ts: 0,
            channel: channel.into_bytes(),
            from: Vec::new(),
            content_type: Vec::new(),
            meta: Vec::new(),
            payload: json!({ "occupancy": occupancy }).to_string().into_bytes(),
        },
        Ok(ServerEnvelope::Message(m)) => {
            let (kind, flags, content_type, meta, payload) = match m.payload {
                Payload::Json(text) => (DN_EVENT_MESSAGE_JSON, 0, String::new(), String::new(), text.into_bytes()),
                Payload::Binary { data, content_type, meta, raw } => (
                    DN_EVENT_MESSAGE_BINARY,
                    if raw { DN_FLAG_RAW } else { 0 },
                    content_type,
                    meta.unwrap_or_default(),
                    data,
                ),
            };
            Record {
                kind,
                flags,
                ts: m.ts,
                channel: m.channel.into_bytes(),
                from: m.from.into_bytes(),
                content_type: content_type.into_bytes(),
                meta: meta.into_bytes(),
                payload,
            }
        }
        Ok(_) => return Ok(None),
    }))
}

/// A stand-in gateway WebSocket (the token still comes from a real gateway) that
/// sends `connected`, then every frame, then an end marker.
fn fuzzing_ws_server(frames: Vec<Frame>) -> (u16, std::thread::JoinHandle<()>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::Message;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            #[allow(clippy::result_large_err)] // tungstenite's callback signature
            let select_bearer = |_: &Request, mut response: Response| {
                response.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("bearer"));
                Ok(response)
            };
            let ws = tokio_tungstenite::accept_hdr_async(stream, select_bearer).await.unwrap();
            let (mut sink, mut incoming) = ws.split();
            let reader = tokio::spawn(async move { while let Some(Ok(_)) = incoming.next().await {} });
            let _ = sink.send(Message::text(r#"{"type":"connected","connId":"fz-1"}"#)).await;
            for (n, frame) in frames.into_iter().enumerate() {
                let message = match frame {
                    Frame::Text(text) => Message::text(text),
                    Frame::Binary(bytes) => Message::binary(bytes),
                };
                if sink.feed(message).await.is_err() {
                    return;
                }
                if n % 64 == 0 && sink.flush().await.is_err() {
                    return;
                }
            }
            let end = json!({"type": "message", "op": "pub", "ch": "fuzz.end", "d": 0}).to_string();
            let _ = sink.send(Message::text(end)).await;
            // Stay open until the client goes away.
            let _ = reader.await;
        });
    });
    (port, thread)
}

/// Mutated envelopes as text and binary frames, through a client made with
/// `dn_client_new` and drained with `dn_poll`: each frame must come out as the
/// record the decoder predicts, in order, in a well-formed batch.
fn fuzz_through_the_client(rng: &mut Rng, corpus: &[Vec<u8>], count: usize) -> (usize, Vec<String>) {
    use datanet::ffi::*;
    let mut frames = Vec::with_capacity(count);
    let mut expected = std::collections::VecDeque::new();
    while frames.len() < count {
        let seed = rng.pick(corpus).clone();
        let input = mutate(rng, &seed, corpus);
        let frame = match String::from_utf8(input) {
            Ok(text) if !rng.one_in(4) => Frame::Text(text),
            Ok(text) => Frame::Binary(text.into_bytes()),
            Err(invalid) => Frame::Binary(invalid.into_bytes()),
        };
        match expected_record(&frame) {
            Err(()) => continue,
            Ok(record) => expected.extend(record),
        }
        frames.push(frame);
    }
    let gw = Gateway::start();
    let (port, server) = fuzzing_ws_server(frames);
    let config = json!({
        "api_key": KEY, "api_url": gw.url(), "ws_url": format!("ws://127.0.0.1:{port}"),
        "inbound_queue_capacity": 10_000_000,
    });
    let config = CString::new(config.to_string()).unwrap();
    let mut handle = 0u64;
    assert_eq!(unsafe { dn_client_new(config.as_ptr(), &mut handle) }, DN_OK);
    assert_eq!(dn_connect(handle), DN_OK);
    let mut findings = Vec::new();
    let mut delivered = 0;
    let mut buffer = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut connected = false;
    'poll: while Instant::now() < deadline && findings.len() < 20 {
        let mut info = DnPollInfo::default();
        let rc = unsafe { dn_poll(handle, buffer.as_mut_ptr(), buffer.len(), 0, 0, &mut info) };
        let (len, n) = (info.len as usize, info.records);
        if rc != DN_OK {
            findings.push(format!("dn_poll returned {rc}"));
            break;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let records = match parse_batch(&buffer[..len], n) {
            Ok(records) => records,
            Err(broken) => {
                findings.push(format!("dn_poll batch: {broken}"));
                break;
            }
        };
        for record in records {
            if !connected {
                connected = record.kind == DN_EVENT_CONNECTED;
                continue;
            }
            if record.channel == b"fuzz.end" {
                break 'poll;
            }
            match expected.pop_front() {
                Some(wanted) if wanted == record => delivered += 1,
                wanted => {
                    findings.push(format!("record {delivered}: got {record:?}, expected {wanted:?}"));
                    break 'poll;
                }
            }
        }
    }
    if findings.is_empty() && !expected.is_empty() {
        findings.push(format!("{} expected records never came", expected.len()));
    }
    let mut status = vec![0u8; 8192];
    let mut len = 0usize;
    assert_eq!(unsafe { dn_status(handle, status.as_mut_ptr().cast(), status.len(), &mut len) }, DN_OK);
    let status: Value = serde_json::from_slice(&status[..len]).unwrap();
    if status["counters"]["dropped_inbound"] != 0 || status["counters"]["reconnects"] != 0 {
        findings.push(format!("the client dropped events or reconnected: {status}"));
    }
    assert_eq!(dn_client_free(handle), DN_OK);
    server.join().unwrap();
    (delivered, findings)
}

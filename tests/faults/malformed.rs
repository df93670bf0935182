//! 5. Malformed server input: every frame counted, none fatal.

use super::*;

/// A frame as the gateway's `/_admin/send` injects it.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// What a frame must make the client do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// An error event with code `protocol_error`, counted in `malformed`.
    Malformed,
    /// A message event.
    Message,
    SubAck,
    /// An error event carrying the gateway's (non-fatal) code.
    GatewayError,
    /// No event (acks, unknown types, a repeated `connected`).
    Nothing,
}

/// The sans-IO decoder's verdict on a frame.
fn decoder_outcome(frame: &Frame) -> Result<Outcome, &'static str> {
    let decoded = match frame {
        Frame::Text(text) => decode_text(text),
        Frame::Binary(bytes) => decode_binary_frame(bytes.clone()),
    };
    Ok(match decoded {
        Err(_) => Outcome::Malformed,
        Ok(ServerEnvelope::Message(_)) => Outcome::Message,
        Ok(ServerEnvelope::SubAck { .. }) => Outcome::SubAck,
        Ok(ServerEnvelope::Error(error)) if error.is_fatal() => return Err("fatal"),
        Ok(ServerEnvelope::Error(_)) => Outcome::GatewayError,
        Ok(_) => Outcome::Nothing,
    })
}

fn observed_outcome(event: &Event) -> Outcome {
    match event {
        Event::Error(error) if error.code == "protocol_error" => Outcome::Malformed,
        Event::Error(_) => Outcome::GatewayError,
        Event::Message(_) => Outcome::Message,
        Event::SubAck { .. } => Outcome::SubAck,
        other => panic!("unexpected event {other:?}"),
    }
}

const BAD_CHANNEL: &str = "project.demo.bad";
pub(crate) const TWO_TO_THE_70: &str = "1180591620717411303424";

/// An envelope as (field, raw JSON text) pairs, so a field can take values
/// serde_json cannot hold (1e400).
type Fields = Vec<(String, String)>;

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
}

/// Every server → client envelope type, valid.
pub(crate) fn envelope_templates() -> Vec<(&'static str, Fields)> {
    vec![
        ("connected", fields(&[("type", r#""connected""#), ("connId", r#""c-9""#), ("userId", r#""u-1""#)])),
        (
            "message",
            fields(&[
                ("type", r#""message""#),
                ("op", r#""pub""#),
                ("ch", r#""project.demo.bad""#),
                ("d", r#"{"pos":{"x":1.5},"on":true}"#),
                ("ts", "1700000000123"),
                ("from", r#""c-2""#),
            ]),
        ),
        (
            "binary message",
            fields(&[
                ("type", r#""message""#),
                ("op", r#""pub""#),
                ("ch", r#""project.demo.bad""#),
                ("bin", "true"),
                ("b64", r#""AQID""#),
                ("ct", r#""binary/dmx""#),
                ("bytes", "3"),
                ("ts", "1700000000123"),
                ("from", r#""c-2""#),
                ("meta", r#"{"universe":1}"#),
            ]),
        ),
        (
            "sub_ack",
            fields(&[
                ("type", r#""sub_ack""#),
                ("op", r#""hereNow""#),
                ("ch", r#""project.demo.bad""#),
                ("occupancy", "2"),
            ]),
        ),
        ("unsub_ack", fields(&[("type", r#""unsub_ack""#), ("op", r#""unsubAck""#), ("ch", r#""project.demo.bad""#)])),
        ("hb_ack", fields(&[("type", r#""hb_ack""#), ("op", r#""hb""#), ("timestamp", "1700000000000")])),
        (
            "error",
            fields(&[
                ("type", r#""error""#),
                ("error", r#""rate_limited""#),
                ("code", r#""rate_limited""#),
                ("message", r#""slow down""#),
                ("channel", r#""project.demo.bad""#),
                ("operation", r#""pub""#),
                ("required", r#""pub""#),
                ("retry_ms", "250"),
                ("scope", r#""channel""#),
                ("limit", "10"),
                ("status", "429"),
            ]),
        ),
    ]
}

pub(crate) fn render(fields: &Fields) -> String {
    let body: Vec<String> = fields.iter().map(|(key, value)| format!("\"{key}\":{value}")).collect();
    format!("{{{}}}", body.join(","))
}

/// Values of every JSON type and two numbers out of range, for every field.
const WRONG_VALUES: &[&str] =
    &["null", "true", "0", "-1", "1.5", "1e400", TWO_TO_THE_70, r#""""#, r#""x""#, "[]", "{}", r#"[[1],{"a":null}]"#];

/// Every field of every envelope type: left out, then given each wrong value.
fn mistyped_frames() -> Vec<(String, Frame)> {
    let mut frames = Vec::new();
    for (kind, fields) in envelope_templates() {
        frames.push((format!("{kind}: valid"), Frame::Text(render(&fields))));
        for (i, (field, _)) in fields.iter().enumerate() {
            let mut without = fields.clone();
            without.remove(i);
            frames.push((format!("{kind}: no {field}"), Frame::Text(render(&without))));
            for value in WRONG_VALUES {
                let mut changed = fields.clone();
                changed[i].1 = value.to_string();
                frames.push((format!("{kind}: {field} = {value}"), Frame::Text(render(&changed))));
            }
        }
    }
    frames
}

/// Template `which` (1 = JSON message, 2 = binary message) with fields replaced
/// or added; an empty value removes the field.
fn envelope_with(which: usize, changes: &[(&str, &str)]) -> String {
    let (_, mut fields) = envelope_templates().swap_remove(which);
    for (field, value) in changes {
        match fields.iter_mut().find(|(key, _)| key == field) {
            Some(entry) => entry.1 = value.to_string(),
            None => fields.push((field.to_string(), value.to_string())),
        }
    }
    fields.retain(|(_, value)| !value.is_empty());
    render(&fields)
}

pub(crate) fn message_with(field: &str, value: &str) -> String {
    envelope_with(1, &[(field, value)])
}

pub(crate) fn binary_with(changes: &[(&str, &str)]) -> String {
    envelope_with(2, changes)
}

/// Named cases whose outcome is stated here, independently of the decoder.
fn named_cases() -> Vec<(&'static str, Frame, Outcome)> {
    use Frame::{Binary, Text};
    use Outcome::*;
    let nested_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested_mixed = format!("{}1{}", r#"[{"":"#.repeat(5_000), "}]".repeat(5_000));
    let b64 = |bytes: &[u8]| format!("\"{}\"", datanet::protocol::base64::encode(bytes));
    vec![
        ("not JSON", Text("not json".into()), Malformed),
        ("empty text frame", Text(String::new()), Malformed),
        ("a JSON array", Text("[1,2]".into()), Malformed),
        ("a JSON string", Text(r#""hi""#.into()), Malformed),
        ("truncated object", Text(r#"{"type":"message","op":"pub","ch":"#.into()), Malformed),
        // Kept as sent: Python's json.loads and JavaScript read it as infinity.
        ("1e400 in d", Text(message_with("d", "1e400")), Message),
        ("2^70 in d", Text(message_with("d", TWO_TO_THE_70)), Message),
        ("2^70 as ts", Text(message_with("ts", TWO_TO_THE_70)), Message),
        ("-2^70 as ts", Text(message_with("ts", &format!("-{TWO_TO_THE_70}"))), Message),
        ("10,000 nested arrays as the frame", Text(nested_arrays.clone()), Malformed),
        ("10,000 nested arrays in d", Text(message_with("d", &nested_arrays)), Malformed),
        ("10,000 nested arrays and objects in d", Text(message_with("d", &nested_mixed)), Malformed),
        ("lone surrogate in ch", Text(message_with("ch", r#""\ud800""#)), Malformed),
        ("NUL in ch", Text(message_with("ch", r#""a\u0000b""#)), Message),
        ("b64 outside the alphabet", Text(binary_with(&[("b64", r#""@@@@""#)])), Malformed),
        ("b64 of a wrong length", Text(binary_with(&[("b64", r#""AQI""#)])), Malformed),
        ("b64 padding in the middle", Text(binary_with(&[("b64", r#""AQ==AQID""#)])), Malformed),
        ("b64 not a string", Text(binary_with(&[("b64", "123")])), Malformed),
        ("b64 missing", Text(binary_with(&[("b64", "")])), Malformed),
        ("bytes says 999, b64 holds 3", Text(binary_with(&[("bytes", "999")])), Message),
        ("bytes negative", Text(binary_with(&[("bytes", "-3")])), Message),
        ("binary/dmx of 600 slots", Text(binary_with(&[("b64", &b64(&[7; 600]))])), Message),
        ("binary/artnet that is not Art-Net", Text(binary_with(&[("ct", r#""binary/artnet""#)])), Message),
        ("binary/vecf32 of 3 bytes", Text(binary_with(&[("ct", r#""binary/vecf32""#)])), Message),
        ("unknown type", Text(r#"{"type":"brand_new","x":1}"#.into()), Nothing),
        ("unknown op", Text(r#"{"op":"zap","ch":"c"}"#.into()), Nothing),
        ("empty object", Text("{}".into()), Nothing),
        ("connected again, without connId", Text(r#"{"type":"connected"}"#.into()), Malformed),
        (
            "error with every field mistyped",
            Text(r#"{"type":"error","error":5,"code":[],"retry_ms":"soon","limit":-1,"status":1e300}"#.into()),
            GatewayError,
        ),
        ("binary garbage", Binary(vec![0xff, 0xfe, 0x00, 0x01, 0x80]), Message),
        (
            "invalid UTF-8 in a binary JSON-looking frame",
            Binary(b"{\"op\":\"pub\",\"ch\":\"\xff\xfe\"}".to_vec()),
            Message,
        ),
        ("empty binary frame", Binary(Vec::new()), Message),
        ("an envelope in a binary frame", Binary(message_with("d", "7").into_bytes()), Message),
        ("a malformed envelope in a binary frame", Binary(br#"{"op":"pub","ch":5}"#.to_vec()), Malformed),
    ]
}

/// A binary message whose DMX, Art-Net or vecf32 payload does not decode.
fn undecodable_lighting(frame: &Frame) -> bool {
    let decoded = match frame {
        Frame::Text(text) => decode_text(text),
        Frame::Binary(bytes) => decode_binary_frame(bytes.clone()),
    };
    match decoded {
        Ok(ServerEnvelope::Message(m)) => match &m.payload {
            Payload::Binary { data, content_type, meta, .. } => {
                datanet::protocol::lighting::binary_numbers(content_type, data, meta.as_deref(), false).is_err()
            }
            Payload::Json(_) => false,
        },
        _ => false,
    }
}

fn inject(gw: &Gateway, frame: &Frame) {
    let body = match frame {
        Frame::Text(text) => json!({"text": text}),
        Frame::Binary(bytes) => json!({"binary_b64": datanet::protocol::base64::encode(bytes)}),
    };
    assert_eq!(gw.admin_post("send", body)["sent"], 1, "the gateway sends to the one client");
}

/// Injects a marker message and returns every event before it.
fn events_until_marker(client: &Client, gw: &Gateway, marker: &str) -> Vec<Event> {
    let text = json!({"type": "message", "op": "pub", "ch": "project.demo.marker", "d": marker}).to_string();
    inject(gw, &Frame::Text(text));
    let mut events = Vec::new();
    wait_event(client, "the marker", |e| match e {
        Event::Message(m) if m.channel == "project.demo.marker" && json_of(&m.body) == json!(marker) => true,
        other => {
            events.push(other.clone());
            false
        }
    });
    events
}

#[test]
fn malformed_server_input() {
    let _suite = shared();
    count_library_panics();
    let gw = Gateway::start();
    let mut c = config(&gw);
    c.max_message_bytes = 40 * 1024;
    let client = connected(c);
    subscribed(&client, BAD_CHANNEL);

    // The named cases first check the decoder against the stated outcome.
    let named = named_cases();
    for (name, frame, outcome) in &named {
        assert_eq!(decoder_outcome(frame), Ok(*outcome), "decoder on {name}");
    }
    let mut frames: Vec<(String, Frame, Outcome)> =
        named.into_iter().map(|(name, frame, outcome)| (name.to_string(), frame, outcome)).collect();
    for (name, frame) in mistyped_frames() {
        let outcome = decoder_outcome(&frame).unwrap_or_else(|_| panic!("{name} would be a fatal error"));
        // Each one is also sent as a binary frame (older gateway paths), where a
        // frame that is not a JSON object is raw bytes for binary subscribers.
        if let Frame::Text(text) = &frame {
            let binary = Frame::Binary(text.clone().into_bytes());
            let outcome = decoder_outcome(&binary).unwrap_or_else(|_| panic!("{name} would be a fatal error"));
            frames.push((format!("binary {name}"), binary, outcome));
        }
        frames.push((name, frame, outcome));
    }
    let before = client.status()["counters"].clone();
    for (_, frame, _) in &frames {
        inject(&gw, frame);
    }
    let events = events_until_marker(&client, &gw, "after the malformed frames");
    // Frames are handled in order, so the events line up with the frames one to
    // one (frames with no outcome have no event).
    let expected: Vec<(&str, Outcome)> = frames
        .iter()
        .filter(|(_, _, outcome)| *outcome != Outcome::Nothing)
        .map(|(name, _, outcome)| (name.as_str(), *outcome))
        .collect();
    assert_eq!(events.len(), expected.len(), "one event per frame that has one");
    for (event, (name, outcome)) in events.iter().zip(&expected) {
        assert_eq!(observed_outcome(event), *outcome, "{name}: {event:?}");
        // (A gateway error keeps the gateway's text as it came, even an empty
        // `code` or `message`; the client's own errors always say what was wrong.)
        if let Event::Error(error) = event {
            let own = error.code == "protocol_error";
            assert!(!own || !error.message.is_empty(), "{name}: the client says what was wrong");
        }
    }
    let lying = events.iter().zip(&expected).find(|(_, (name, _))| name.starts_with("bytes says 999")).unwrap().0;
    let Event::Message(lying) = lying else { unreachable!() };
    assert!(matches!(&lying.body, Body::Binary { data, .. } if data == &[1, 2, 3]), "decoded bytes are the truth");
    let after = client.status()["counters"].clone();
    let delta = |name: &str| after[name].as_u64().unwrap() - before[name].as_u64().unwrap();
    let malformed = expected.iter().filter(|(_, o)| *o == Outcome::Malformed).count() as u64;
    assert_eq!(delta("malformed"), malformed);
    // DMX, Art-Net and vecf32 payloads that do not decode: the three named ones,
    // plus the mistyped envelopes whose DMX payload became empty.
    let invalid_payloads = frames.iter().filter(|(_, frame, _)| undecodable_lighting(frame)).count() as u64;
    assert!(invalid_payloads >= 3);
    assert_eq!(delta("binary_invalid"), invalid_payloads);
    assert_eq!(delta("reconnects"), 0, "malformed input never costs the connection");
    assert_eq!(client.state(), State::Connected);

    // A frame over max_message_bytes ends the connection (the WebSocket layer
    // refuses to buffer it); the client reconnects and resubscribes.
    for (kind, oversize) in [
        ("text", Frame::Text(message_with("d", &format!("\"{}\"", "x".repeat(56 * 1024))))),
        ("binary", Frame::Binary(vec![0xab; 42 * 1024])),
    ] {
        inject(&gw, &oversize);
        let Event::Disconnected { reason } =
            wait_event(&client, "disconnected", |e| matches!(e, Event::Disconnected { .. }))
        else {
            unreachable!()
        };
        assert!(reason.to_lowercase().contains("too long") || reason.contains("size"), "{kind}: {reason}");
        wait_event(&client, "resubscribed", |e| matches!(e, Event::SubAck { channel, .. } if channel == BAD_CHANNEL));
    }
    assert_eq!(counter(&client, "reconnects"), 2);
    client.publish_json(BAD_CHANNEL, r#"{"still":"flowing"}"#).unwrap();
    wait_event(
        &client,
        "a message afterwards",
        |e| matches!(e, Event::Message(m) if json_of(&m.body) == json!({"still": "flowing"})),
    );
    assert_eq!(LIBRARY_PANICS.load(Ordering::SeqCst), 0, "a library thread panicked");
    let count = |o: Outcome| expected.iter().filter(|(_, x)| *x == o).count();
    figure(
        "malformed_server_input",
        format!(
            "{} frames ({} named, {} mistyped fields of 7 envelope types as text and binary) + 2 oversize: \
             {malformed} malformed (counted, error events), {} gateway errors, {} messages, {} sub_acks, {} ignored; \
             0 reconnects for malformed input, 1 clean reconnect per oversize frame; messages flow after; panics 0",
            frames.len(),
            named_cases().len(),
            frames.len() - named_cases().len(),
            count(Outcome::GatewayError),
            count(Outcome::Message),
            count(Outcome::SubAck),
            frames.len() - expected.len(),
        ),
    );
}

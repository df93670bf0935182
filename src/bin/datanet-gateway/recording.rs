//! The recording file format (docs/GATEWAY.md, "Record and replay"): JSON lines.
//! Line 1 is a header naming the format and its version; every other line is one
//! message the gateway relayed:
//!
//! ```text
//! {"format":"datanet-recording","version":1,"created":"2026-11-30T18:00:00Z","project":"demo"}
//! {"t":0.000000,"ts":1764525600000,"ch":"project.demo.sensor","from":"c-3","d":{"x":1}}
//! {"t":0.021337,"ts":1764525600021,"ch":"project.demo.dmx","from":"c-4","ct":"binary/dmx","meta":{"universe":1},"b64":"AQID"}
//! ```
//!
//! `t` is seconds since the recording started (microseconds, from a monotonic
//! clock): replay schedules on it. `ts` is the server timestamp subscribers saw.
//! `d` and `meta` are the publisher's own JSON text, byte for byte. A payload whose
//! text holds a line break (pretty-printed JSON) cannot sit inside one line as it
//! is, so it is stored as a JSON string in `d_text` (`meta_text`) instead, which
//! keeps its bytes exact too. No I/O here: every shape is unit-tested.

use crate::envelope::Payload;
use datanet::protocol::base64;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

pub const FORMAT: &str = "datanet-recording";
pub const VERSION: u64 = 1;
/// A replayed message whose line names no sender.
const DEFAULT_FROM: &str = "replay";
const MAX_CHANNEL_BYTES: usize = 255;

/// The first line of a new recording, with its newline.
pub fn header_line(project: &str, created_unix_ms: u64) -> String {
    // Written by hand so the format and version come first, as a reader looks for them.
    format!(
        "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"created\":\"{}\",\"project\":{},\"gateway\":\"datanet-gateway {}\"}}\n",
        utc_text(created_unix_ms / 1000),
        Value::String(project.to_string()),
        env!("CARGO_PKG_VERSION")
    )
}

/// Checks a header line (without its newline).
pub fn check_header(line: &str) -> Result<(), String> {
    let not_a_recording = || {
        format!("not a DataNet recording: the first line must be a header like {{\"format\":\"{FORMAT}\",\"version\":{VERSION}}}")
    };
    let Ok(Value::Object(header)) = serde_json::from_str::<Value>(line) else {
        return Err(not_a_recording());
    };
    if header.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(not_a_recording());
    }
    match header.get("version").and_then(Value::as_u64) {
        Some(VERSION) => Ok(()),
        Some(other) => Err(format!(
            "recording format version {other}; this gateway reads version {VERSION} (a newer gateway wrote it?)"
        )),
        None => Err("the header has no integer \"version\"".to_string()),
    }
}

/// One `--channels` pattern: an exact channel, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let pattern = match text.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Exact(text.to_string()),
        };
        let body = match &pattern {
            Pattern::Exact(body) | Pattern::Prefix(body) => body,
        };
        if text.is_empty() || body.contains('*') {
            return Err(format!("invalid channel pattern {text:?}: use an exact channel or a prefix ending in one *"));
        }
        Ok(pattern)
    }

    pub fn matches(&self, channel: &str) -> bool {
        match self {
            Pattern::Exact(exact) => channel == exact,
            Pattern::Prefix(prefix) => channel.starts_with(prefix.as_str()),
        }
    }
}

/// A set of patterns; an empty set matches every channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channels(Vec<Pattern>);

impl Channels {
    pub fn new(patterns: Vec<Pattern>) -> Self {
        Channels(patterns)
    }

    pub fn matches(&self, channel: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|pattern| pattern.matches(channel))
    }
}

/// An envelope's or a line's top-level fields, each still its raw JSON text.
type Fields<'a> = HashMap<String, &'a RawValue>;

/// The recording line (with its newline) of a message envelope the hub relays
/// (`{"type":"message","op":"pub","ch":..,"ts":..,"from":..,"d"|"b64":..}`), taken
/// `offset` after the recording's start. `ch`, `from`, `d`, `meta` and `b64` are
/// copied as raw text, never re-serialised.
pub fn line_from_frame(frame: &str, offset: Duration) -> Result<String, String> {
    let fields: Fields<'_> = serde_json::from_str(frame).map_err(|_| "the relayed frame is not a JSON object")?;
    let raw = |name: &str| fields.get(name).map(|value| value.get());
    let channel = raw("ch").filter(|text| text.starts_with('"')).ok_or("the relayed frame has no string ch")?;
    let mut line = format!(r#"{{"t":{},"#, seconds_text(offset));
    if let Some(ts) = raw("ts") {
        line.push_str(&format!(r#""ts":{ts},"#));
    }
    line.push_str(&format!(r#""ch":{channel}"#));
    if let Some(from) = raw("from").filter(|text| text.starts_with('"')) {
        line.push_str(&format!(r#","from":{from}"#));
    }
    if raw("bin") == Some("true") {
        let b64 = raw("b64").filter(|text| text.starts_with('"')).ok_or("a binary frame has no string b64")?;
        if let Some(content_type) = raw("ct").filter(|text| text.starts_with('"')) {
            line.push_str(&format!(r#","ct":{content_type}"#));
        }
        if let Some(meta) = raw("meta") {
            push_raw_field(&mut line, "meta", meta);
        }
        line.push_str(&format!(r#","b64":{b64}"#));
    } else {
        push_raw_field(&mut line, "d", raw("d").ok_or("a JSON frame has no d")?);
    }
    line.push_str("}\n");
    Ok(line)
}

/// `,"name":<raw>`; or `,"name_text":"<raw as a JSON string>"` when the raw text
/// holds a line break, which would split the line.
fn push_raw_field(line: &mut String, name: &str, raw: &str) {
    if raw.contains(['\n', '\r']) {
        let text = Value::String(raw.to_string()).to_string();
        line.push_str(&format!(r#","{name}_text":{text}"#));
    } else {
        line.push_str(&format!(r#","{name}":{raw}"#));
    }
}

/// `12.345678`: seconds with microseconds, a JSON number a person can read.
fn seconds_text(offset: Duration) -> String {
    format!("{}.{:06}", offset.as_secs(), offset.subsec_micros())
}

/// One message line, read back for replay.
#[derive(Debug, PartialEq)]
pub struct Recorded {
    /// Seconds since the recording started.
    pub t: f64,
    pub channel: String,
    pub from: String,
    pub payload: Payload,
}

/// Reads a message line (without its newline). `Ok(None)` for a blank line.
pub fn parse_line(line: &str) -> Result<Option<Recorded>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let fields: Fields<'_> = serde_json::from_str(line).map_err(|error| format!("not a JSON object ({error})"))?;
    let value = |name: &str| fields.get(name).map(|raw| serde_json::from_str::<Value>(raw.get()));
    let t = match value("t") {
        Some(Ok(Value::Number(n))) => n.as_f64().filter(|t| t.is_finite() && *t >= 0.0),
        None => return Err("missing \"t\" (seconds since the recording started)".into()),
        _ => None,
    }
    .ok_or("\"t\" must be a number of seconds, 0 or more")?;
    let channel = match value("ch") {
        Some(Ok(Value::String(channel))) if !channel.is_empty() && channel.len() <= MAX_CHANNEL_BYTES => channel,
        None => return Err("missing \"ch\" (the channel)".into()),
        _ => return Err("\"ch\" must be a channel name of 1 to 255 bytes".into()),
    };
    let from = match value("from") {
        None | Some(Ok(Value::Null)) => DEFAULT_FROM.to_string(),
        Some(Ok(Value::String(from))) => from,
        _ => return Err("\"from\" must be a string".into()),
    };
    match value("ts") {
        None | Some(Ok(Value::Null)) => {}
        Some(Ok(Value::Number(n))) if n.is_u64() => {}
        _ => return Err("\"ts\" must be a non-negative integer (milliseconds)".into()),
    }
    let payload = parse_payload(&fields)?;
    Ok(Some(Recorded { t, channel, from, payload }))
}

fn parse_payload(fields: &Fields<'_>) -> Result<Payload, String> {
    let json = raw_or_text(fields, "d")?;
    let b64 = match fields.get("b64").map(|raw| serde_json::from_str::<Value>(raw.get())) {
        None => None,
        Some(Ok(Value::String(b64))) => Some(b64),
        Some(_) => return Err("\"b64\" must be a base64 string".into()),
    };
    match (json, b64) {
        (Some(data), None) => Ok(Payload::Json(data)),
        (None, Some(b64)) => {
            base64::decode(&b64).map_err(|error| format!("\"b64\" is not valid base64: {error}"))?;
            let content_type = match fields.get("ct").map(|raw| serde_json::from_str::<Value>(raw.get())) {
                None | Some(Ok(Value::Null)) => None,
                Some(Ok(Value::String(content_type))) => Some(content_type),
                Some(_) => return Err("\"ct\" must be a string".into()),
            };
            let meta = raw_or_text(fields, "meta")?;
            if meta.as_ref().is_some_and(|meta| !meta.get().starts_with('{')) {
                return Err("\"meta\" must be a JSON object".into());
            }
            Ok(Payload::Binary { b64, content_type, meta })
        }
        (Some(_), Some(_)) => Err("a line holds \"d\" (JSON) or \"b64\" (binary), not both".into()),
        (None, None) => Err("no payload: give \"d\" (JSON) or \"b64\" (binary)".into()),
    }
}

/// `name` as raw JSON, or `name_text` (a string holding JSON text) decoded to raw JSON.
fn raw_or_text(fields: &Fields<'_>, name: &str) -> Result<Option<Box<RawValue>>, String> {
    let text_name = format!("{name}_text");
    match (fields.get(name), fields.get(&text_name)) {
        (Some(_), Some(_)) => Err(format!("give \"{name}\" or \"{text_name}\", not both")),
        (Some(raw), None) => Ok(Some((*raw).to_owned())),
        (None, Some(raw)) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::String(text)) => RawValue::from_string(text)
                .map(Some)
                .map_err(|error| format!("\"{text_name}\" does not hold JSON text ({error})")),
            _ => Err(format!("\"{text_name}\" must be a string of JSON text")),
        },
        (None, None) => Ok(None),
    }
}

/// `2026-11-30T18:00:00Z` for unix seconds (the civil-from-days algorithm).
fn utc_text(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let seconds_of_day = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{json_message, BinaryMessage};

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn headers() {
        let header = header_line("demo", 1_764_525_600_000);
        assert!(header.ends_with('\n'));
        assert!(
            header.starts_with(r#"{"format":"datanet-recording","version":1,"created":"2025-11-30T18:00:00Z","#),
            "{header}"
        );
        assert_eq!(check_header(header.trim_end()), Ok(()));
        assert!(check_header(r#"{"format":"datanet-recording","version":2}"#).unwrap_err().contains("version 2"));
        assert!(check_header(r#"{"t":0,"ch":"a","d":1}"#).unwrap_err().contains("not a DataNet recording"));
        assert!(check_header("garbage").unwrap_err().contains("not a DataNet recording"));
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn json_frames_keep_their_text() {
        let data = r#"{"z":1,"a":[1.50,2e3],"big":12345678901234567890123,"s":"\u00e9\n"}"#;
        let frame = json_message("project.demo.x", &raw(data), 1_700_000_000_123, "c-7");
        let line = line_from_frame(&frame, Duration::from_micros(12_345_678)).unwrap();
        assert_eq!(
            line,
            format!(r#"{{"t":12.345678,"ts":1700000000123,"ch":"project.demo.x","from":"c-7","d":{data}}}"#) + "\n"
        );
        let recorded = parse_line(line.trim_end()).unwrap().unwrap();
        assert_eq!(recorded.t, 12.345678);
        assert_eq!((recorded.channel.as_str(), recorded.from.as_str()), ("project.demo.x", "c-7"));
        assert_eq!(recorded.payload, Payload::Json(raw(data)));
    }

    #[test]
    fn line_breaks_in_payloads_move_into_text_fields() {
        let data = "{\n  \"x\": 1\r\n}";
        let frame = json_message("c", &raw(data), 5, "c-1");
        let line = line_from_frame(&frame, Duration::ZERO).unwrap();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.contains(r#""d_text":"{\n  \"x\": 1\r\n}""#), "{line}");
        assert_eq!(parse_line(line.trim_end()).unwrap().unwrap().payload, Payload::Json(raw(data)));
    }

    #[test]
    fn binary_frames() {
        let frame = BinaryMessage {
            channel: "project.demo.dmx",
            b64: "AQID".into(),
            content_type: Some("binary/dmx".into()),
            byte_count: 3,
            meta: Some(raw(r#"{"universe":1,"a":0.10}"#)),
            ts_ms: 9,
            from: "c-2",
        }
        .into_json();
        let line = line_from_frame(&frame, Duration::from_millis(1500)).unwrap();
        assert_eq!(
            line,
            r#"{"t":1.500000,"ts":9,"ch":"project.demo.dmx","from":"c-2","ct":"binary/dmx","meta":{"universe":1,"a":0.10},"b64":"AQID"}"#
                .to_string()
                + "\n"
        );
        let recorded = parse_line(line.trim_end()).unwrap().unwrap();
        assert_eq!(
            recorded.payload,
            Payload::Binary {
                b64: "AQID".into(),
                content_type: Some("binary/dmx".into()),
                meta: Some(raw(r#"{"universe":1,"a":0.10}"#)),
            }
        );
    }

    #[test]
    fn hand_written_lines() {
        let minimal = parse_line(r#"{"t":2,"ch":"a","d":null}"#).unwrap().unwrap();
        assert_eq!((minimal.t, minimal.from.as_str()), (2.0, DEFAULT_FROM));
        assert_eq!(parse_line("   ").unwrap(), None);
        let meta_text = parse_line(r#"{"t":0,"ch":"a","b64":"","meta_text":"{\"u\":\n2}"}"#).unwrap().unwrap();
        assert!(matches!(meta_text.payload, Payload::Binary { meta: Some(meta), .. } if meta.get() == "{\"u\":\n2}"));
    }

    #[test]
    fn refuses_bad_lines_with_reasons() {
        for (line, reason) in [
            ("{", "not a JSON object"),
            ("[1]", "not a JSON object"),
            (r#"{"ch":"a","d":1}"#, "missing \"t\""),
            (r#"{"t":-1,"ch":"a","d":1}"#, "\"t\" must be"),
            (r#"{"t":"1","ch":"a","d":1}"#, "\"t\" must be"),
            (r#"{"t":1,"d":1}"#, "missing \"ch\""),
            (r#"{"t":1,"ch":"","d":1}"#, "\"ch\" must be"),
            (r#"{"t":1,"ch":"a","from":3,"d":1}"#, "\"from\""),
            (r#"{"t":1,"ch":"a","ts":1.5,"d":1}"#, "\"ts\""),
            (r#"{"t":1,"ch":"a"}"#, "no payload"),
            (r#"{"t":1,"ch":"a","d":1,"b64":""}"#, "not both"),
            (r#"{"t":1,"ch":"a","b64":"A"}"#, "not valid base64"),
            (r#"{"t":1,"ch":"a","b64":"","meta":[1]}"#, "\"meta\" must be"),
            (r#"{"t":1,"ch":"a","d_text":"{nope"}"#, "does not hold JSON"),
            (r#"{"t":1,"ch":"a","d":1,"d_text":"1"}"#, "not both"),
        ] {
            let error = parse_line(line).unwrap_err();
            assert!(error.contains(reason), "{line}: {error}");
        }
    }

    #[test]
    fn patterns() {
        let channels = Channels::new(vec![
            Pattern::parse("project.demo.dmx").unwrap(),
            Pattern::parse("project.demo.sensor.*").unwrap(),
        ]);
        assert!(channels.matches("project.demo.dmx"));
        assert!(!channels.matches("project.demo.dmx2"));
        assert!(channels.matches("project.demo.sensor.a"));
        assert!(!channels.matches("project.demo.sensor"));
        assert!(Channels::default().matches("anything"));
        assert_eq!(Pattern::parse("*"), Ok(Pattern::Prefix(String::new())));
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a*b").is_err());
        assert!(Pattern::parse("a**").is_err());
    }
}

//! Table rows: the newest messages, already formatted as a Table DAT's cells on
//! the socket thread, in a ring bounded by count. A host table reads the rows newer
//! than its cursor with one call, so a frame's table work is bounded by the rows it
//! shows, never by the message rate.
//!
//! Text layout of a read: rows separated by `ROW_SEPARATOR`, cells by
//! `CELL_SEPARATOR` (ASCII RS and US). Neither can appear inside a cell: JSON text
//! cannot hold raw control characters, and every other cell is cleaned on the way
//! in.

use std::collections::VecDeque;
use std::fmt::Write;

use super::event::{Body, Message};

pub(crate) const ROW_SEPARATOR: char = '\u{1e}';
pub(crate) const CELL_SEPARATOR: char = '\u{1f}';
/// Longest text of one cell, in characters; longer payloads end in `...`.
pub(crate) const MAX_CELL_CHARS: usize = 4096;

pub struct RowRing {
    rows: VecDeque<String>,
    capacity: usize,
    /// Sequence number of the newest row; rows are numbered from 1.
    newest_seq: u64,
}

/// What one read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsRead {
    pub rows: usize,
    pub newest_seq: u64,
    /// Rows newer than the cursor that this read did not return: beyond `max_rows`,
    /// or already gone from the ring.
    pub skipped: u64,
}

impl RowRing {
    /// `capacity` 0 keeps no rows (sequence numbers still advance).
    pub fn new(capacity: usize) -> Self {
        RowRing { rows: VecDeque::with_capacity(capacity.min(4096)), capacity, newest_seq: 0 }
    }

    pub fn push(&mut self, message: &Message) {
        self.newest_seq += 1;
        if self.capacity == 0 {
            return;
        }
        // The evicted row's buffer takes the new row: no allocation once full.
        let mut row = if self.rows.len() == self.capacity { self.rows.pop_front() } else { None }.unwrap_or_default();
        row.clear();
        format_row(message, &mut row);
        self.rows.push_back(row);
    }

    pub fn newest_seq(&self) -> u64 {
        self.newest_seq
    }

    /// Appends to `out` the newest `max_rows` rows with a sequence number above
    /// `after`. A cursor from the future (another client's) reads from the start.
    pub fn read(&self, after: u64, max_rows: usize, out: &mut String) -> RowsRead {
        let after = if after > self.newest_seq { 0 } else { after };
        let newer = self.newest_seq - after;
        let available = newer.min(self.rows.len() as u64) as usize;
        let rows = available.min(max_rows);
        for (i, row) in self.rows.iter().skip(self.rows.len() - rows).enumerate() {
            if i > 0 {
                out.push(ROW_SEPARATOR);
            }
            out.push_str(row);
        }
        RowsRead { rows, newest_seq: self.newest_seq, skipped: newer - rows as u64 }
    }
}

/// channel, data, from, timestamp: the columns of the host's table.
fn format_row(message: &Message, row: &mut String) {
    push_clean(row, &message.channel);
    row.push(CELL_SEPARATOR);
    match &message.body {
        Body::Json(text) => push_truncated(row, text),
        Body::Binary { data, content_type, .. } => {
            row.push('<');
            push_clean(row, content_type);
            let _ = write!(row, ", {} bytes>", data.len());
        }
    }
    row.push(CELL_SEPARATOR);
    push_clean(row, &message.from);
    row.push(CELL_SEPARATOR);
    let _ = write!(row, "{}", message.ts);
}

/// Copies text that came from the network, turning the two separators into U+FFFD.
fn push_clean(out: &mut String, text: &str) {
    // Both separators are ASCII, so a byte of either value is that character.
    let separator = |b: &u8| *b == ROW_SEPARATOR as u8 || *b == CELL_SEPARATOR as u8;
    if text.as_bytes().iter().any(separator) {
        out.extend(text.chars().map(|c| if c == ROW_SEPARATOR || c == CELL_SEPARATOR { '\u{fffd}' } else { c }));
    } else {
        out.push_str(text);
    }
}

fn push_truncated(out: &mut String, json_text: &str) {
    // No more bytes than the limit: no more characters either.
    if json_text.len() <= MAX_CELL_CHARS {
        return push_clean(out, json_text);
    }
    match json_text.char_indices().nth(MAX_CELL_CHARS) {
        None => push_clean(out, json_text),
        Some((cut, _)) => {
            push_clean(out, &json_text[..cut]);
            out.push_str("...");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(channel: &str, text: &str, ts: i64) -> Message {
        Message::json(channel, "c-1", ts, text)
    }

    fn read(ring: &RowRing, after: u64, max: usize) -> (Vec<Vec<String>>, RowsRead) {
        let mut out = String::new();
        let got = ring.read(after, max, &mut out);
        let rows = if out.is_empty() {
            Vec::new()
        } else {
            out.split(ROW_SEPARATOR).map(|r| r.split(CELL_SEPARATOR).map(str::to_string).collect()).collect()
        };
        (rows, got)
    }

    #[test]
    fn cells_and_cursor() {
        let mut ring = RowRing::new(10);
        ring.push(&json("a", r#"{"x": 1}"#, 5));
        let binary = Body::Binary { data: vec![0; 3], content_type: "binary/dmx".into(), meta: None, raw: false };
        ring.push(&Message { channel: "b".into(), from: "c-2".into(), ts: 6, body: binary, pickled: None });
        let (rows, got) = read(&ring, 0, 100);
        assert_eq!(rows, vec![vec!["a", r#"{"x": 1}"#, "c-1", "5"], vec!["b", "<binary/dmx, 3 bytes>", "c-2", "6"]]);
        assert_eq!(got, RowsRead { rows: 2, newest_seq: 2, skipped: 0 });
        let (rows, got) = read(&ring, 2, 100);
        assert!(rows.is_empty());
        assert_eq!(got.skipped, 0);
    }

    #[test]
    fn bounded_by_max_rows_and_capacity_with_every_row_counted() {
        let mut ring = RowRing::new(5);
        for n in 1..=12 {
            ring.push(&json("a", &n.to_string(), n));
        }
        let (rows, got) = read(&ring, 0, 3);
        assert_eq!(rows.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(), vec!["10", "11", "12"]);
        assert_eq!(got, RowsRead { rows: 3, newest_seq: 12, skipped: 9 });
        let (rows, got) = read(&ring, 9, 100);
        assert_eq!(rows.len(), 3);
        assert_eq!(got.skipped, 0);
        let (rows, got) = read(&ring, 50, 100);
        assert_eq!((rows.len(), got.skipped), (5, 7), "a cursor from the future reads from the start");
        let none = RowRing::new(0);
        assert_eq!(read(&none, 0, 10).1.rows, 0);
    }

    /// The socket thread's cost per row, for messages of the benchmark's shape:
    /// `cargo test --release --lib rows_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn rows_speed() {
        use crate::protocol::pickle::speed::bench_payload;
        let messages: Vec<Message> = (0..1000)
            .map(|i| Message::json("project.bench.ch3", "c-12", 1_700_000_000_000 + i as i64, &bench_payload(i)))
            .collect();
        let mut ring = RowRing::new(1000);
        let rounds = 200;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            for message in &messages {
                ring.push(message);
            }
        }
        let per_row = started.elapsed().as_secs_f64() * 1e9 / (rounds * messages.len()) as f64;
        println!("rows_speed: {per_row:.0} ns per row");
        std::hint::black_box(ring);
    }

    #[test]
    fn separators_never_leak_and_long_payloads_are_cut() {
        let mut ring = RowRing::new(3);
        ring.push(&Message::json("a\u{1e}b", "x\u{1f}", 1, "1"));
        let long = format!("\"{}\"", "é".repeat(MAX_CELL_CHARS + 10));
        ring.push(&json("c", &long, 2));
        let (rows, _) = read(&ring, 0, 10);
        assert_eq!(rows[0], vec!["a\u{fffd}b", "1", "x\u{fffd}", "1"]);
        assert_eq!(rows[1][1].chars().count(), MAX_CELL_CHARS + 3);
        assert!(rows[1][1].ends_with("..."));
        // Exactly the limit in characters, twice that in bytes: kept whole.
        let at_limit = format!("\"{}\"", "é".repeat(MAX_CELL_CHARS - 2));
        ring.push(&json("d", &at_limit, 3));
        let (rows, _) = read(&ring, 2, 10);
        assert_eq!(rows[0][1], at_limit);
    }
}

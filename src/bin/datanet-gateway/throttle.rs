//! Warnings that a client can provoke at will (malformed frames, floods, bad
//! handshakes) are rate-limited: the first one of an interval is printed at once,
//! the rest are counted and summarized in one line when the interval is over, so
//! a flood costs at most one line per source per interval, never one per frame.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    /// Warnings counted, not printed, in the current interval.
    held: BTreeMap<String, u64>,
}

pub struct Throttle {
    window: Mutex<Window>,
}

impl Throttle {
    pub const fn new() -> Self {
        Throttle { window: Mutex::new(Window { started: None, held: BTreeMap::new() }) }
    }

    /// Logs `who: what`, or counts it when this source already logged in this interval.
    pub fn warn(&self, who: &str, what: &str) {
        self.warn_at(who, what, None, Instant::now(), &mut |line| crate::log(format_args!("{line}")));
    }

    /// Like `warn`, with a detail printed on the line but not used to count.
    pub fn warn_with(&self, who: &str, what: &str, detail: &str) {
        self.warn_at(who, what, Some(detail), Instant::now(), &mut |line| crate::log(format_args!("{line}")));
    }

    /// Prints what is still held (at disconnect).
    pub fn flush(&self, who: &str) {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(line) = summary(who, &mut window) {
            crate::log(format_args!("{line}"));
        }
    }

    fn warn_at(&self, who: &str, what: &str, detail: Option<&str>, now: Instant, print: &mut dyn FnMut(String)) {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let open = window.started.is_some_and(|started| now.duration_since(started) < LOG_INTERVAL);
        if open {
            *window.held.entry(what.to_string()).or_default() += 1;
            return;
        }
        if let Some(line) = summary(who, &mut window) {
            print(line);
        }
        window.started = Some(now);
        match detail {
            Some(detail) => print(format!("{who}: {what} ({detail})")),
            None => print(format!("{who}: {what}")),
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

fn summary(who: &str, window: &mut Window) -> Option<String> {
    if window.held.is_empty() {
        return None;
    }
    let counts: Vec<String> = window.held.iter().map(|(what, n)| format!("{n} x {what}")).collect();
    window.held.clear();
    let seconds = LOG_INTERVAL.as_secs();
    Some(format!("{who}: also {} (within {seconds} s of the line before)", counts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_counts() {
        let throttle = Throttle::new();
        let mut lines = Vec::new();
        let start = Instant::now();
        for n in 0..1000 {
            let what = if n % 2 == 0 { "bad_request" } else { "rate_limited" };
            let at = start + Duration::from_millis(n);
            throttle.warn_at("c-1", what, Some("first"), at, &mut |line| lines.push(line));
        }
        assert_eq!(lines, ["c-1: bad_request (first)"]);
        throttle.warn_at("c-1", "bad_request", None, start + LOG_INTERVAL, &mut |line| lines.push(line));
        assert_eq!(
            lines[1..],
            [
                "c-1: also 499 x bad_request, 500 x rate_limited (within 10 s of the line before)".to_string(),
                "c-1: bad_request".to_string()
            ]
        );
    }
}

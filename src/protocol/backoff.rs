//! Reconnect schedule (PROTOCOL.md §7): `min(base * 2^n, cap)` with full jitter in
//! `[0.5 x, x]`, an optional cap on consecutive attempts, and a reset only after a
//! connection stayed up long enough to count as stable.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ReconnectPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// 0 = unlimited.
    pub max_attempts: u32,
    /// A connection must stay up this long before the attempt counter resets.
    pub stable_after: Duration,
    attempts: u32,
}

impl ReconnectPolicy {
    pub fn new(base: Duration, cap: Duration, max_attempts: u32) -> Self {
        ReconnectPolicy { base, cap, max_attempts, stable_after: Duration::from_secs(10), attempts: 0 }
    }

    /// Consecutive attempts made since the last stable connection.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The nominal delay before attempt `n` (0-based), before jitter.
    pub fn nominal_delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt, or `None` when the attempts are used up.
    /// `unit` is a uniform random number in `[0, 1)`.
    pub fn next_delay(&mut self, unit: f64) -> Option<Duration> {
        if self.max_attempts != 0 && self.attempts >= self.max_attempts {
            return None;
        }
        let nominal = self.nominal_delay(self.attempts);
        self.attempts += 1;
        Some(jitter(nominal, unit))
    }

    /// Call when a connection ends after having been up for `uptime`.
    pub fn on_connection_ended(&mut self, uptime: Duration) {
        if uptime >= self.stable_after {
            self.attempts = 0;
        }
    }
}

/// Full jitter: a delay uniformly in `[0.5 x, x]`.
pub fn jitter(nominal: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
    nominal.mul_f64(0.5 + 0.5 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn sdk_schedule_nominal() {
        let p = ReconnectPolicy::new(ms(1000), ms(30_000), 0);
        let got: Vec<u64> = (0..8).map(|n| p.nominal_delay(n).as_millis() as u64).collect();
        assert_eq!(got, vec![1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(p.nominal_delay(200), ms(30_000));
    }

    #[test]
    fn jitter_stays_in_half_to_full() {
        let mut p = ReconnectPolicy::new(ms(1000), ms(30_000), 0);
        assert_eq!(p.next_delay(0.0), Some(ms(500)));
        assert_eq!(p.next_delay(0.999_999).map(|d| d.as_millis()), Some(1999));
        assert_eq!(jitter(ms(1000), f64::NAN), ms(500));
        assert_eq!(jitter(ms(1000), 7.0), ms(1000));
    }

    #[test]
    fn attempts_cap_and_stable_reset() {
        let mut p = ReconnectPolicy::new(ms(10), ms(100), 3);
        assert!(p.next_delay(0.5).is_some());
        assert!(p.next_delay(0.5).is_some());
        p.on_connection_ended(Duration::from_secs(9));
        assert!(p.next_delay(0.5).is_some());
        assert_eq!(p.next_delay(0.5), None);
        p.on_connection_ended(Duration::from_secs(10));
        assert_eq!(p.attempts(), 0);
        assert_eq!(p.next_delay(0.0), Some(ms(5)));
    }
}

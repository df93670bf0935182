//! Subscription registry: how many local subscribers each channel has. The wire
//! sees one `sub` when the first arrives and one `unsub` when the last leaves.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct SubscriptionRegistry {
    counts: BTreeMap<String, u32>,
}

impl SubscriptionRegistry {
    /// Adds a subscriber; true when it is the channel's first (send `sub`).
    pub fn add(&mut self, channel: &str) -> bool {
        let count = self.counts.entry(channel.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        *count == 1
    }

    /// Removes a subscriber; true when it was the channel's last (send `unsub`).
    pub fn remove(&mut self, channel: &str) -> bool {
        match self.counts.get_mut(channel) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                self.counts.remove(channel);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, channel: &str) -> bool {
        self.counts.contains_key(channel)
    }

    pub fn subscribers(&self, channel: &str) -> u32 {
        self.counts.get(channel).copied().unwrap_or(0)
    }

    /// Every channel with at least one subscriber, in a stable order.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.counts.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_subscriber() {
        let mut r = SubscriptionRegistry::default();
        assert!(r.add("a"));
        assert!(!r.add("a"));
        assert!(r.add("b"));
        assert_eq!(r.subscribers("a"), 2);
        assert!(!r.remove("a"));
        assert!(r.remove("a"));
        assert!(!r.remove("a"));
        assert!(!r.contains("a"));
        assert_eq!(r.channels().collect::<Vec<_>>(), vec!["b"]);
    }
}

//! Subscription registry: how many local subscribers each channel has, and how its
//! messages reach the host. The wire sees one `sub` when the first subscriber
//! arrives and one `unsub` when the last leaves.

use std::collections::BTreeMap;

/// How a subscribed channel's messages reach the host's poll. Every message
/// always updates the last-value store and the table rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Each message is an event (the default).
    #[default]
    Every,
    /// At most one message per channel per poll: the newest, with how many it replaced.
    Latest,
    /// No events: the store and the rows only.
    StoreOnly,
}

#[derive(Debug, Clone)]
struct Entry {
    subscribers: u32,
    delivery: Delivery,
}

#[derive(Debug, Default, Clone)]
pub struct SubscriptionRegistry {
    channels: BTreeMap<String, Entry>,
}

impl SubscriptionRegistry {
    /// Adds a subscriber; true when it is the channel's first (send `sub`).
    pub fn add(&mut self, channel: &str) -> bool {
        let entry =
            self.channels.entry(channel.to_string()).or_insert(Entry { subscribers: 0, delivery: Delivery::Every });
        entry.subscribers = entry.subscribers.saturating_add(1);
        entry.subscribers == 1
    }

    /// Removes a subscriber; true when it was the channel's last (send `unsub`).
    pub fn remove(&mut self, channel: &str) -> bool {
        match self.channels.get_mut(channel) {
            Some(entry) if entry.subscribers > 1 => {
                entry.subscribers -= 1;
                false
            }
            Some(_) => {
                self.channels.remove(channel);
                true
            }
            None => false,
        }
    }

    /// Sets how a subscribed channel is delivered; false when it is not subscribed.
    pub fn set_delivery(&mut self, channel: &str, delivery: Delivery) -> bool {
        match self.channels.get_mut(channel) {
            Some(entry) => {
                entry.delivery = delivery;
                true
            }
            None => false,
        }
    }

    /// `None` when the channel is not subscribed.
    pub fn delivery(&self, channel: &str) -> Option<Delivery> {
        self.channels.get(channel).map(|entry| entry.delivery)
    }

    pub fn contains(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }

    pub fn subscribers(&self, channel: &str) -> u32 {
        self.channels.get(channel).map_or(0, |entry| entry.subscribers)
    }

    /// Every channel with at least one subscriber, in a stable order.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
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

    #[test]
    fn delivery_lives_and_dies_with_the_subscription() {
        let mut r = SubscriptionRegistry::default();
        assert!(!r.set_delivery("a", Delivery::Latest), "not subscribed");
        assert_eq!(r.delivery("a"), None);
        r.add("a");
        assert_eq!(r.delivery("a"), Some(Delivery::Every));
        assert!(r.set_delivery("a", Delivery::Latest));
        r.add("a");
        assert_eq!(r.delivery("a"), Some(Delivery::Latest), "a second subscriber keeps the mode");
        r.remove("a");
        r.remove("a");
        r.add("a");
        assert_eq!(r.delivery("a"), Some(Delivery::Every), "a fresh subscription starts over");
    }
}

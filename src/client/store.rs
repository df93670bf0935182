//! The last-value store: per channel the newest message, per flattened numeric
//! field the newest number. TD reads it once per cook instead of replaying every
//! message, so a CHOP costs the same at 10 or 10,000 messages per second.

use std::collections::HashMap;
use std::sync::Arc;

use super::event::Message;
use crate::protocol::flatten::flatten_numeric;
use crate::protocol::lighting::BinaryNumbers;

pub struct LastValues {
    messages: HashMap<String, Arc<Message>>,
    /// channel → key → slot in `names`/`values`.
    slots: HashMap<String, HashMap<String, usize>>,
    names: Vec<(String, String)>,
    values: Vec<f64>,
    /// Bumped when the set of names changes.
    names_generation: u64,
    /// Bumped on every value write.
    values_version: u64,
    max_numeric: usize,
    dropped_numeric: u64,
}

/// The numeric fields of one message.
pub enum Numbers<'a> {
    /// JSON text, flattened in document order.
    Json(&'a str),
    Indexed(&'a BinaryNumbers),
}

/// Writes one channel's numeric fields, adding names within the bound.
struct SlotWriter<'a> {
    channel: &'a str,
    keys: &'a mut HashMap<String, usize>,
    names: &'a mut Vec<(String, String)>,
    values: &'a mut Vec<f64>,
    names_generation: &'a mut u64,
    max_numeric: usize,
    dropped_numeric: &'a mut u64,
}

impl SlotWriter<'_> {
    fn put(&mut self, key: &str, number: f64) {
        let slot = match self.keys.get(key) {
            Some(&slot) => slot,
            None if self.names.len() < self.max_numeric => {
                self.keys.insert(key.to_string(), self.names.len());
                self.names.push((self.channel.to_string(), key.to_string()));
                self.values.push(0.0);
                *self.names_generation += 1;
                self.names.len() - 1
            }
            None => {
                *self.dropped_numeric += 1;
                return;
            }
        };
        self.values[slot] = number;
    }
}

/// A copy of the numeric channels for one cook.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub names_generation: u64,
    pub values_version: u64,
    pub names: Vec<(String, String)>,
    pub values: Vec<f64>,
}

impl LastValues {
    pub fn new(max_numeric: usize) -> Self {
        LastValues {
            messages: HashMap::new(),
            slots: HashMap::new(),
            names: Vec::new(),
            values: Vec::new(),
            names_generation: 0,
            values_version: 0,
            max_numeric,
            dropped_numeric: 0,
        }
    }

    /// Records a message; `numbers` are the numeric fields it carries: a JSON
    /// value to flatten, or the slots of a binary payload.
    pub fn record(&mut self, message: Arc<Message>, numbers: Option<Numbers<'_>>) {
        match numbers {
            Some(Numbers::Json(text)) => {
                let mut writer = self.writer(&message.channel);
                // The text was validated with the envelope, so this cannot fail; if it
                // did, the numbers before the fault are kept, which is all there is.
                let _ = flatten_numeric(text, |key, number| writer.put(key, number));
                self.values_version += 1;
            }
            Some(Numbers::Indexed(binary)) => {
                let mut writer = self.writer(&message.channel);
                let mut key = binary.prefix.clone();
                for (offset, number) in binary.values.iter().enumerate() {
                    key.truncate(binary.prefix.len());
                    key.push_str(&(binary.first_index + offset).to_string());
                    writer.put(&key, *number);
                }
                self.values_version += 1;
            }
            None => {}
        }
        match self.messages.get_mut(&message.channel) {
            Some(slot) => *slot = message,
            None => {
                self.messages.insert(message.channel.clone(), message);
            }
        }
    }

    fn writer<'a>(&'a mut self, channel: &'a str) -> SlotWriter<'a> {
        if !self.slots.contains_key(channel) {
            self.slots.insert(channel.to_string(), HashMap::new());
        }
        SlotWriter {
            channel,
            keys: self.slots.get_mut(channel).expect("inserted above"),
            names: &mut self.names,
            values: &mut self.values,
            names_generation: &mut self.names_generation,
            max_numeric: self.max_numeric,
            dropped_numeric: &mut self.dropped_numeric,
        }
    }

    /// Forgets a channel (its last subscriber left), keeping the store bounded by
    /// what is subscribed.
    pub fn remove_channel(&mut self, channel: &str) {
        self.messages.remove(channel);
        if self.slots.remove(channel).is_none() {
            return;
        }
        let mut kept_names = Vec::with_capacity(self.names.len());
        let mut kept_values = Vec::with_capacity(self.values.len());
        for ((ch, key), value) in self.names.drain(..).zip(self.values.drain(..)) {
            if ch != channel {
                kept_names.push((ch, key));
                kept_values.push(value);
            }
        }
        self.names = kept_names;
        self.values = kept_values;
        for (index, (ch, key)) in self.names.iter().enumerate() {
            if let Some(slot) = self.slots.get_mut(ch).and_then(|keys| keys.get_mut(key)) {
                *slot = index;
            }
        }
        self.names_generation += 1;
        self.values_version += 1;
    }

    pub fn message(&self, channel: &str) -> Option<Arc<Message>> {
        self.messages.get(channel).cloned()
    }

    pub fn value(&self, channel: &str, key: &str) -> Option<f64> {
        let slot = *self.slots.get(channel)?.get(key)?;
        Some(self.values[slot])
    }

    /// Numeric channels; names are copied only when the caller's generation is stale.
    pub fn snapshot(&self, known_generation: Option<u64>) -> Snapshot {
        let names = if known_generation == Some(self.names_generation) { Vec::new() } else { self.names.clone() };
        Snapshot {
            names_generation: self.names_generation,
            values_version: self.values_version,
            names,
            values: self.values.clone(),
        }
    }

    pub fn values_version(&self) -> u64 {
        self.values_version
    }

    pub fn numeric_len(&self) -> usize {
        self.values.len()
    }

    pub fn dropped_numeric(&self) -> u64 {
        self.dropped_numeric
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::event::Body;
    use serde_json::{json, Value};

    fn msg(channel: &str, value: &Value) -> Arc<Message> {
        Arc::new(Message::json(channel, "x", 1, &value.to_string()))
    }

    fn put(store: &mut LastValues, channel: &str, value: Value) {
        let text = value.to_string();
        store.record(msg(channel, &value), Some(Numbers::Json(&text)));
    }

    #[test]
    fn names_follow_the_publishers_field_order_across_messages() {
        let mut s = LastValues::new(100);
        for text in [r#"{"r":1,"g":2,"b":3}"#, r#"{"w":4,"g":5,"a":6}"#] {
            let message = Arc::new(Message::json("c", "x", 1, text));
            s.record(message, Some(Numbers::Json(text)));
        }
        let keys: Vec<String> = s.snapshot(None).names.into_iter().map(|(_, k)| k).collect();
        assert_eq!(keys, vec!["r", "g", "b", "w", "a"]);
        assert_eq!(s.value("c", "g"), Some(5.0));
    }

    #[test]
    fn newest_values_and_generations() {
        let mut s = LastValues::new(100);
        put(&mut s, "a", json!({"x": 1, "y": 2}));
        let g1 = s.snapshot(None).names_generation;
        put(&mut s, "a", json!({"x": 5, "y": 6}));
        assert_eq!(s.snapshot(None).names_generation, g1, "same names, same generation");
        assert_eq!(s.value("a", "x"), Some(5.0));
        put(&mut s, "b", json!(7));
        assert_eq!(s.value("b", ""), Some(7.0));
        let snap = s.snapshot(None);
        assert_eq!(snap.names, vec![("a".into(), "x".into()), ("a".into(), "y".into()), ("b".into(), "".into())]);
        assert_eq!(snap.values, vec![5.0, 6.0, 7.0]);
        assert!(s.snapshot(Some(snap.names_generation)).names.is_empty());
        assert_eq!(s.message("a").unwrap().body, Body::Json(json!({"x": 5, "y": 6}).to_string()));
    }

    #[test]
    fn bounded_and_removable() {
        let mut s = LastValues::new(2);
        put(&mut s, "a", json!([1, 2, 3]));
        assert_eq!(s.numeric_len(), 2);
        assert_eq!(s.dropped_numeric(), 1);
        put(&mut s, "b", json!(9));
        assert_eq!(s.dropped_numeric(), 2);
        s.remove_channel("a");
        assert_eq!(s.numeric_len(), 0);
        assert!(s.message("a").is_none());
        put(&mut s, "b", json!(9));
        put(&mut s, "c", json!({"k": 4}));
        assert_eq!(s.snapshot(None).values, vec![9.0, 4.0]);
        s.remove_channel("b");
        assert_eq!(s.value("c", "k"), Some(4.0));
    }

    #[test]
    fn binary_slots_are_indexed_keys() {
        let mut s = LastValues::new(100);
        let dmx = BinaryNumbers { prefix: "u1/".into(), first_index: 1, values: vec![0.0, 255.0, 7.0] };
        s.record(msg("d", &json!(null)), Some(Numbers::Indexed(&dmx)));
        assert_eq!(s.value("d", "u1/2"), Some(255.0));
        assert_eq!(s.value("d", "u1/3"), Some(7.0));
        let names: Vec<String> = s.snapshot(None).names.into_iter().map(|(_, k)| k).collect();
        assert_eq!(names, vec!["u1/1", "u1/2", "u1/3"]);
    }
}

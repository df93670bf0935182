//! The last-value store: per channel the newest message, per flattened numeric
//! field the newest number. TD reads it once per cook instead of replaying every
//! message, so a CHOP costs the same at 10 or 10,000 messages per second.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::event::Message;
use crate::protocol::flatten::flatten_numeric;

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

    /// Records a message; `json` is its parsed value when it is a JSON message.
    pub fn record(&mut self, message: Arc<Message>, json: Option<&Value>) {
        if let Some(value) = json {
            self.record_numbers(&message.channel, value);
        }
        match self.messages.get_mut(&message.channel) {
            Some(slot) => *slot = message,
            None => {
                self.messages.insert(message.channel.clone(), message);
            }
        }
    }

    fn record_numbers(&mut self, channel: &str, value: &Value) {
        let LastValues { slots, names, values, names_generation, values_version, max_numeric, dropped_numeric, .. } =
            self;
        if !slots.contains_key(channel) {
            slots.insert(channel.to_string(), HashMap::new());
        }
        let keys = slots.get_mut(channel).expect("inserted above");
        flatten_numeric(value, |key, number| {
            let slot = match keys.get(key) {
                Some(&slot) => slot,
                None if names.len() < *max_numeric => {
                    keys.insert(key.to_string(), names.len());
                    names.push((channel.to_string(), key.to_string()));
                    values.push(0.0);
                    *names_generation += 1;
                    names.len() - 1
                }
                None => {
                    *dropped_numeric += 1;
                    return;
                }
            };
            values[slot] = number;
        });
        *values_version += 1;
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

    pub fn names_generation(&self) -> u64 {
        self.names_generation
    }

    pub fn numeric_len(&self) -> usize {
        self.values.len()
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn values_version(&self) -> u64 {
        self.values_version
    }

    pub fn dropped_numeric(&self) -> u64 {
        self.dropped_numeric
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::event::Body;
    use serde_json::json;

    fn msg(channel: &str, value: &Value) -> Arc<Message> {
        Arc::new(Message { channel: channel.into(), from: "x".into(), ts: 1, body: Body::Json(value.to_string()) })
    }

    fn put(store: &mut LastValues, channel: &str, value: Value) {
        store.record(msg(channel, &value), Some(&value));
    }

    #[test]
    fn newest_values_and_generations() {
        let mut s = LastValues::new(100);
        put(&mut s, "a", json!({"x": 1, "y": 2}));
        let g1 = s.names_generation();
        put(&mut s, "a", json!({"x": 5, "y": 6}));
        assert_eq!(s.names_generation(), g1, "same names, same generation");
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
}

//! Numeric flattening: every number reachable in a JSON value becomes a named
//! channel. Object keys and array indices join with `/` (`pos/x`, `arr/0`);
//! booleans become 0/1; strings and nulls are not channels. A bare number has the
//! empty key.
//!
//! It walks the JSON text itself, in document order, without building a tree of
//! values: field order is the publisher's (`r, g, b` stays `r, g, b`), and every
//! number becomes an `f64` (integers beyond 2^53 round to the nearest double).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

pub(crate) const KEY_SEPARATOR: char = '/';

/// Calls `emit(key, value)` for each numeric leaf of the JSON `text`, depth first,
/// in document order. Text that is not JSON emits what came before the fault and
/// returns the error.
pub fn flatten_numeric(text: &str, mut emit: impl FnMut(&str, f64)) -> Result<(), serde_json::Error> {
    let mut path = String::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Walk { path: &mut path, emit: &mut emit }.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// One value at `path`: numbers and booleans are emitted, containers descend.
struct Walk<'p, E> {
    path: &'p mut String,
    emit: &'p mut E,
}

impl<'de, E: FnMut(&str, f64)> DeserializeSeed<'de> for Walk<'_, E> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<E: FnMut(&str, f64)> Walk<'_, E> {
    fn number(self, value: f64) {
        (self.emit)(self.path, value);
    }
}

impl<'de, E: FnMut(&str, f64)> Visitor<'de> for Walk<'_, E> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<Er>(self, v: bool) -> Result<(), Er> {
        self.number(if v { 1.0 } else { 0.0 });
        Ok(())
    }

    fn visit_i64<Er>(self, v: i64) -> Result<(), Er> {
        self.number(v as f64);
        Ok(())
    }

    fn visit_u64<Er>(self, v: u64) -> Result<(), Er> {
        self.number(v as f64);
        Ok(())
    }

    fn visit_f64<Er>(self, v: f64) -> Result<(), Er> {
        self.number(v);
        Ok(())
    }

    fn visit_str<Er>(self, _: &str) -> Result<(), Er> {
        Ok(())
    }

    fn visit_unit<Er>(self) -> Result<(), Er> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let restore = self.path.len();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            push_segment(self.path, restore, &key);
            map.next_value_seed(Walk { path: &mut *self.path, emit: &mut *self.emit })?;
            self.path.truncate(restore);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let restore = self.path.len();
        let mut index = 0usize;
        loop {
            push_segment(self.path, restore, itoa(index, &mut [0u8; 20]));
            let more = seq.next_element_seed(Walk { path: &mut *self.path, emit: &mut *self.emit })?;
            self.path.truncate(restore);
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
}

fn push_segment(path: &mut String, restore: usize, segment: &str) {
    path.truncate(restore);
    if restore > 0 {
        path.push(KEY_SEPARATOR);
    }
    path.push_str(segment);
}

/// Decimal text of `n` in `buf`, without allocating.
fn itoa(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        flatten_numeric(text, |k, f| out.push((k.to_string(), f))).unwrap();
        out
    }

    fn pairs(expected: &[(&str, f64)]) -> Vec<(String, f64)> {
        expected.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn nested_paths_in_document_order() {
        let got = flat(
            r#"{"pos": {"x": 1, "y": -2.5}, "temp": 20.5, "on": true, "off": false,
                "name": "s1", "none": null, "arr": [3, {"z": 4}, "s"]}"#,
        );
        let expected = [
            ("pos/x", 1.0),
            ("pos/y", -2.5),
            ("temp", 20.5),
            ("on", 1.0),
            ("off", 0.0),
            ("arr/0", 3.0),
            ("arr/1/z", 4.0),
        ];
        assert_eq!(got, pairs(&expected));
    }

    #[test]
    fn publisher_order_and_spelling() {
        let got = flat(r#"{"r":1,"g":2,"b":3,"big":12345678901234567890123,"f":1e-3,"z":{"y":1,"x":2}}"#);
        let expected = [
            ("r", 1.0),
            ("g", 2.0),
            ("b", 3.0),
            ("big", 1.2345678901234568e22),
            ("f", 0.001),
            ("z/y", 1.0),
            ("z/x", 2.0),
        ];
        assert_eq!(got, pairs(&expected));
        assert_eq!(flat(r#"{"k\u00e9y":[[7]]}"#), pairs(&[("k\u{e9}y/0/0", 7.0)]));
        assert_eq!(flat("[0,1,2,3,4,5,6,7,8,9,10]").last().unwrap().0, "10");
    }

    #[test]
    fn scalars_and_empties() {
        assert_eq!(flat("42"), pairs(&[("", 42.0)]));
        assert_eq!(flat("true"), pairs(&[("", 1.0)]));
        assert!(flat(r#""text""#).is_empty());
        assert!(flat("null").is_empty());
        assert!(flat("{}").is_empty());
        assert!(flat("[]").is_empty());
        assert_eq!(flat(&u64::MAX.to_string()), pairs(&[("", u64::MAX as f64)]));
        assert_eq!(flat("-9223372036854775808"), pairs(&[("", i64::MIN as f64)]));
    }

    #[test]
    fn bad_text_is_an_error_not_a_panic() {
        let mut seen = Vec::new();
        assert!(flatten_numeric(r#"{"a":1,"b":"#, |k, _| seen.push(k.to_string())).is_err());
        assert_eq!(seen, vec!["a"]);
        assert!(flatten_numeric("1 2", |_, _| {}).is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(flatten_numeric(&deep, |_, _| {}).is_err());
    }
}

//! Numeric flattening: every number reachable in a JSON value becomes a named
//! channel. Object keys and array indices join with `/` (`pos/x`, `arr/0`);
//! booleans become 0/1; strings and nulls are not channels. A bare number has the
//! empty key.
//!
//! It walks the JSON text itself, in document order, without building a tree of
//! values: field order is the publisher's (`r, g, b` stays `r, g, b`), and every
//! number becomes an `f64` (integers beyond 2^53 round to the nearest double,
//! magnitudes beyond the double range become infinite, as in Python and
//! JavaScript).

use super::json_walk::{number_value, walk, NotJson, Scalar, Visitor};

pub(crate) const KEY_SEPARATOR: char = '/';

/// Calls `emit(key, value)` for each numeric leaf of the JSON `text`, depth first,
/// in document order. Text that is not JSON emits what came before the fault and
/// returns the error.
pub fn flatten_numeric(text: &str, emit: impl FnMut(&str, f64)) -> Result<(), NotJson> {
    let mut flattener = Flattener { path: String::new(), restore: Vec::new(), emit };
    walk(text, &mut flattener)
}

struct Flattener<E> {
    path: String,
    /// The path's length at each open container.
    restore: Vec<usize>,
    emit: E,
}

impl<E> Flattener<E> {
    fn open(&mut self) {
        self.restore.push(self.path.len());
    }

    fn close(&mut self) {
        if let Some(len) = self.restore.pop() {
            self.path.truncate(len);
        }
    }

    /// Replaces the last segment of the open container's path.
    fn segment(&mut self, segment: &str) {
        let base = self.restore.last().copied().unwrap_or(0);
        self.path.truncate(base);
        if base > 0 {
            self.path.push(KEY_SEPARATOR);
        }
        self.path.push_str(segment);
    }
}

impl<E: FnMut(&str, f64)> Visitor for Flattener<E> {
    fn scalar(&mut self, value: Scalar<'_>) {
        match value {
            Scalar::Number(token) => {
                if let Some(number) = number_value(token) {
                    (self.emit)(&self.path, number);
                }
            }
            Scalar::Bool(b) => (self.emit)(&self.path, if b { 1.0 } else { 0.0 }),
            Scalar::Null | Scalar::String(_) => {}
        }
    }

    fn begin_object(&mut self) {
        self.open();
    }

    fn key(&mut self, key: &[u8]) {
        self.segment(&String::from_utf8_lossy(key));
    }

    fn end_object(&mut self) {
        self.close();
    }

    fn begin_array(&mut self) {
        self.open();
    }

    fn element(&mut self, index: usize) {
        self.segment(itoa(index, &mut [0u8; 20]));
    }

    fn end_array(&mut self) {
        self.close();
    }
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
        assert_eq!(flat(r#"{"big":1e400,"after":1}"#), pairs(&[("big", f64::INFINITY), ("after", 1.0)]));
    }
}

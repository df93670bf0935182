//! One pass over JSON text, in document order, reporting what it finds to a
//! visitor: the numeric flattening (CHOP values) and the Python batches of the C
//! ABI both read payloads this way, without building a tree of values and without
//! losing what a tree would: field order, repeated keys, every digit of a number.
//!
//! Numbers are handed over as their own text. Strings are handed over decoded, as
//! Python holds them encoded with "surrogatepass": UTF-8, with a surrogate pair
//! joined and a lone surrogate escape (`\ud800`) kept as its three bytes, so the
//! bytes are valid UTF-8 exactly when the string has no lone surrogate.

/// Deeper nesting is refused (the envelope decoder already refuses beyond 128).
pub(crate) const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    /// The literal's text, e.g. `-12`, `1e-3`, `12345678901234567890123`.
    Number(&'a str),
    /// Decoded content (see the module's note on surrogates).
    String(&'a [u8]),
}

pub trait Visitor {
    fn scalar(&mut self, value: Scalar<'_>);
    fn begin_object(&mut self);
    /// Before each member's value.
    fn key(&mut self, key: &[u8]);
    fn end_object(&mut self);
    fn begin_array(&mut self);
    /// Before each element.
    fn element(&mut self, index: usize);
    fn end_array(&mut self);
}

/// Walks one JSON value that fills `text` (surrounding whitespace allowed). On
/// `NotJson` the visitor has seen the part before the fault.
pub fn walk(text: &str, visitor: &mut impl Visitor) -> Result<(), NotJson> {
    let mut walker = Walker { text: text.as_bytes(), at: 0, scratch: Vec::new() };
    walker.value(visitor, 0)?;
    match walker.peek() {
        None => Ok(()),
        Some(_) => Err(NotJson),
    }
}

/// A number literal's value as a double: integers beyond 2^53 round to the nearest
/// one, magnitudes beyond the double range become infinite (as Python's `float`).
/// `None` for text that is not a number.
pub fn number_value(token: &str) -> Option<f64> {
    token.parse().ok()
}

/// Whether a number literal is an integer (no fraction, no exponent), as Python's
/// `json.loads` decides between int and float.
pub fn is_integer(token: &str) -> bool {
    !token.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

struct Walker<'t> {
    text: &'t [u8],
    at: usize,
    scratch: Vec<u8>,
}

impl Walker<'_> {
    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.text.get(self.at) {
            if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8) -> Result<(), NotJson> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    fn value(&mut self, visitor: &mut impl Visitor, depth: usize) -> Result<(), NotJson> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        match self.peek().ok_or(NotJson)? {
            b'{' => {
                self.at += 1;
                visitor.begin_object();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    visitor.end_object();
                    return Ok(());
                }
                loop {
                    if self.peek() != Some(b'"') {
                        return Err(NotJson);
                    }
                    self.string()?;
                    visitor.key(&self.scratch);
                    self.expect(b':')?;
                    self.value(visitor, depth + 1)?;
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            visitor.end_object();
                            return Ok(());
                        }
                        _ => return Err(NotJson),
                    }
                }
            }
            b'[' => {
                self.at += 1;
                visitor.begin_array();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    visitor.end_array();
                    return Ok(());
                }
                let mut index = 0;
                loop {
                    visitor.element(index);
                    self.value(visitor, depth + 1)?;
                    index += 1;
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            visitor.end_array();
                            return Ok(());
                        }
                        _ => return Err(NotJson),
                    }
                }
            }
            b'"' => {
                self.string()?;
                visitor.scalar(Scalar::String(&self.scratch));
                Ok(())
            }
            b't' => self.literal(b"true", Scalar::Bool(true), visitor),
            b'f' => self.literal(b"false", Scalar::Bool(false), visitor),
            b'n' => self.literal(b"null", Scalar::Null, visitor),
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                self.at += 1;
                while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.text.get(self.at) {
                    self.at += 1;
                }
                // The bytes scanned are ASCII. Their grammar was checked with the
                // envelope; what reads the number checks it again (`number_value`).
                let token = std::str::from_utf8(&self.text[start..self.at]).map_err(|_| NotJson)?;
                visitor.scalar(Scalar::Number(token));
                Ok(())
            }
            _ => Err(NotJson),
        }
    }

    fn literal(&mut self, word: &[u8], scalar: Scalar<'_>, visitor: &mut impl Visitor) -> Result<(), NotJson> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            visitor.scalar(scalar);
            Ok(())
        } else {
            Err(NotJson)
        }
    }

    /// Decodes the string starting at the opening quote into `scratch`.
    fn string(&mut self) -> Result<(), NotJson> {
        self.scratch.clear();
        self.at += 1;
        loop {
            let rest = &self.text[self.at..];
            let plain = rest.iter().position(|&b| b == b'"' || b == b'\\').ok_or(NotJson)?;
            if rest[..plain].iter().any(|&b| b < 0x20) {
                return Err(NotJson);
            }
            self.scratch.extend_from_slice(&rest[..plain]);
            self.at += plain;
            if self.text[self.at] == b'"' {
                self.at += 1;
                return Ok(());
            }
            let escape = *self.text.get(self.at + 1).ok_or(NotJson)?;
            self.at += 2;
            let simple = match escape {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 8,
                b'f' => 12,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let code = self.unicode_escape()?;
                    push_code_point(&mut self.scratch, code);
                    continue;
                }
                _ => return Err(NotJson),
            };
            self.scratch.push(simple);
        }
    }

    /// The code point of a `\u` escape (after its `\u`), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<u32, NotJson> {
        let unit = self.hex4()?;
        if (0xd800..0xdc00).contains(&unit) && self.text[self.at..].starts_with(b"\\u") {
            let save = self.at;
            self.at += 2;
            let low = self.hex4()?;
            if (0xdc00..0xe000).contains(&low) {
                return Ok(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00));
            }
            self.at = save;
        }
        Ok(unit)
    }

    fn hex4(&mut self) -> Result<u32, NotJson> {
        let digits = self.text.get(self.at..self.at + 4).ok_or(NotJson)?;
        let text = std::str::from_utf8(digits).map_err(|_| NotJson)?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NotJson);
        }
        let unit = u32::from_str_radix(text, 16).map_err(|_| NotJson)?;
        self.at += 4;
        Ok(unit)
    }
}

/// UTF-8, extended to lone surrogates the way Python's "surrogatepass" writes them.
fn push_code_point(out: &mut Vec<u8>, code: u32) {
    if code < 0x80 {
        out.push(code as u8);
    } else if code < 0x800 {
        out.extend_from_slice(&[0xc0 | (code >> 6) as u8, 0x80 | (code & 0x3f) as u8]);
    } else if code < 0x10000 {
        out.extend_from_slice(&[
            0xe0 | (code >> 12) as u8,
            0x80 | ((code >> 6) & 0x3f) as u8,
            0x80 | (code & 0x3f) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xf0 | (code >> 18) as u8,
            0x80 | ((code >> 12) & 0x3f) as u8,
            0x80 | ((code >> 6) & 0x3f) as u8,
            0x80 | (code & 0x3f) as u8,
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes what it visits as a compact trace.
    #[derive(Default)]
    struct Trace(String);

    impl Visitor for Trace {
        fn scalar(&mut self, value: Scalar<'_>) {
            match value {
                Scalar::Null => self.0.push_str("null "),
                Scalar::Bool(b) => self.0.push_str(&format!("{b} ")),
                Scalar::Number(n) => self.0.push_str(&format!("#{n} ")),
                Scalar::String(s) => self.0.push_str(&format!("{:?} ", String::from_utf8_lossy(s))),
            }
        }
        fn begin_object(&mut self) {
            self.0.push_str("{ ");
        }
        fn key(&mut self, key: &[u8]) {
            self.0.push_str(&format!("{}: ", String::from_utf8_lossy(key)));
        }
        fn end_object(&mut self) {
            self.0.push_str("} ");
        }
        fn begin_array(&mut self) {
            self.0.push_str("[ ");
        }
        fn element(&mut self, index: usize) {
            self.0.push_str(&format!("{index}: "));
        }
        fn end_array(&mut self) {
            self.0.push_str("] ");
        }
    }

    fn trace(text: &str) -> Result<String, NotJson> {
        let mut t = Trace::default();
        walk(text, &mut t).map(|()| t.0.trim_end().to_string())
    }

    #[test]
    fn document_order_and_number_text() {
        assert_eq!(
            trace(r#" {"r": 1, "g": [true, null, {}], "b": 1e-3, "r": -12345678901234567890123} "#).unwrap(),
            r#"{ r: #1 g: [ 0: true 1: null 2: { } ] b: #1e-3 r: #-12345678901234567890123 }"#
        );
        assert_eq!(trace("[]").unwrap(), "[ ]");
        assert_eq!(trace(r#""a\n\u00e9\ud83d\ude00""#).unwrap(), r#""a\né😀""#);
    }

    #[test]
    fn lone_surrogates_are_kept_as_python_keeps_them() {
        struct Bytes(Vec<u8>);
        impl Visitor for Bytes {
            fn scalar(&mut self, value: Scalar<'_>) {
                if let Scalar::String(s) = value {
                    self.0 = s.to_vec();
                }
            }
            fn begin_object(&mut self) {}
            fn key(&mut self, _: &[u8]) {}
            fn end_object(&mut self) {}
            fn begin_array(&mut self) {}
            fn element(&mut self, _: usize) {}
            fn end_array(&mut self) {}
        }
        let mut b = Bytes(Vec::new());
        walk(r#""\ud800x""#, &mut b).unwrap();
        assert_eq!(b.0, vec![0xed, 0xa0, 0x80, b'x']);
    }

    #[test]
    fn numbers() {
        assert_eq!(number_value("1e400"), Some(f64::INFINITY));
        assert_eq!(number_value("-1e400"), Some(f64::NEG_INFINITY));
        assert_eq!(number_value("12345678901234567890123"), Some(1.2345678901234568e22));
        assert_eq!(number_value("1e"), None);
        assert!(is_integer("-12") && !is_integer("1.0") && !is_integer("1e3"));
    }

    #[test]
    fn not_json() {
        // Number grammar is left to what reads the number (`number_value`).
        for bad in ["", "{", "[1,", r#"{"a" 1}"#, "tru", r#""\x""#, "1 2", r#""open"#, "[1]]", "\"a\u{1}\""] {
            assert_eq!(trace(bad), Err(NotJson), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert_eq!(trace(&deep), Err(NotJson));
    }
}

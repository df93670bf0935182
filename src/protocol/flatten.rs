//! Numeric flattening: every number reachable in a JSON value becomes a named
//! channel. Object keys and array indices join with `/` (`pos/x`, `arr/0`);
//! booleans become 0/1; strings and nulls are not channels. A bare number has the
//! empty key.

use serde_json::Value;

pub(crate) const KEY_SEPARATOR: char = '/';

/// Calls `emit(key, value)` for each numeric leaf, depth first, in document order.
pub fn flatten_numeric(value: &Value, mut emit: impl FnMut(&str, f64)) {
    let mut path = String::new();
    walk(value, &mut path, &mut emit);
}

fn walk(value: &Value, path: &mut String, emit: &mut impl FnMut(&str, f64)) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                emit(path, f);
            }
        }
        Value::Bool(b) => emit(path, if *b { 1.0 } else { 0.0 }),
        Value::Object(map) => {
            for (key, child) in map {
                descend(path, key, child, emit);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                descend(path, &index.to_string(), child, emit);
            }
        }
        Value::Null | Value::String(_) => {}
    }
}

fn descend(path: &mut String, segment: &str, child: &Value, emit: &mut impl FnMut(&str, f64)) {
    let restore = path.len();
    if !path.is_empty() {
        path.push(KEY_SEPARATOR);
    }
    path.push_str(segment);
    walk(child, path, emit);
    path.truncate(restore);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flat(v: Value) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        flatten_numeric(&v, |k, f| out.push((k.to_string(), f)));
        out
    }

    #[test]
    fn nested_paths() {
        let got = flat(json!({"pos": {"x": 1, "y": -2.5}, "temp": 20.5, "on": true, "off": false,
                              "name": "s1", "none": null, "arr": [3, {"z": 4}, "s"]}));
        let expected: Vec<(String, f64)> = [
            ("arr/0", 3.0),
            ("arr/1/z", 4.0),
            ("off", 0.0),
            ("on", 1.0),
            ("pos/x", 1.0),
            ("pos/y", -2.5),
            ("temp", 20.5),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn scalars_and_empties() {
        assert_eq!(flat(json!(42)), vec![(String::new(), 42.0)]);
        assert_eq!(flat(json!(true)), vec![(String::new(), 1.0)]);
        assert!(flat(json!("text")).is_empty());
        assert!(flat(json!(null)).is_empty());
        assert!(flat(json!({})).is_empty());
        assert_eq!(flat(json!([[1]])), vec![("0/0".to_string(), 1.0)]);
        assert_eq!(flat(json!(u64::MAX)), vec![(String::new(), u64::MAX as f64)]);
    }
}

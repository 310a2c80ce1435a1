//! Canonical JSON: object keys sorted at every depth, no insignificant whitespace. Used wherever
//! JSON is hashed or compared (ledger entries, approval digests), so equal values always give
//! equal bytes.

/// JSON text with object keys sorted at every depth and no insignificant whitespace.
///
/// Sorting is done here rather than relying on `serde_json`'s map order, which a feature flag
/// elsewhere in the build could change. Keys and scalars are written straight into one buffer
/// (no string per key or value): every ledger entry and request digest goes through here.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // serde_json writes only UTF-8, so the lossy branch never changes anything.
    String::from_utf8(out).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key.as_str(), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// A string, number, boolean or null as `serde_json` writes it.
fn write_scalar<T: serde::Serialize + ?Sized>(scalar: &T, out: &mut Vec<u8>) {
    // Writing into a `Vec` cannot fail, and a string, number, boolean or null always serializes.
    let _ = serde_json::to_writer(&mut *out, scalar);
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::canonical_json;

    /// The plain definition: each key and scalar through `to_string`, keys sorted.
    fn reference(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let parts: Vec<String> = keys
                    .iter()
                    .map(|key| format!("{}:{}", Value::String((*key).clone()), reference(&map[key.as_str()])))
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
            Value::Array(items) => format!("[{}]", items.iter().map(reference).collect::<Vec<_>>().join(",")),
            scalar => scalar.to_string(),
        }
    }

    #[test]
    fn matches_the_plain_definition_byte_for_byte() {
        let value = json!({
            "quote\"and\\slash": "line\nbreak\ttab \u{1} control, é, 漢字, 🦀",
            "numbers": [0, -1, 1.5, 1e-7, 12345678901234567i64, u64::MAX, -0.0, 0.1],
            "empty": {}, "none": [], "flags": [true, false, null],
            "nested": {"Z": {"a": "", "B": [[], [{}]]}, "": "empty key"},
        });
        assert_eq!(canonical_json(&value), reference(&value));
        for scalar in [json!("plain"), json!(42), json!(null), json!(2.5)] {
            assert_eq!(canonical_json(&scalar), reference(&scalar));
        }
    }
}

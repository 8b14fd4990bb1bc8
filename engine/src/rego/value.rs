//! JSON to regorus's value type, directly.
//!
//! regorus converts through serde (`Value::deserialize`), which copies every string twice (to a
//! `String`, then to the shared `str`) and visits each node through the deserializer's
//! callbacks. The review is converted once per decision, so this walks the tree instead and
//! builds the same value: strings and keys shared once, `u64`, `i64` and `f64` numbers as
//! serde hands them to regorus's visitor. The one input serde treats specially, an object whose
//! first key is serde_json's private big-number marker, is left to serde.

use regorus::Value as RegoValue;
use serde::Deserialize as _;
use serde_json::Value;

/// serde_json's marker for an arbitrary-precision number, which regorus's visitor decodes.
const NUMBER_MARKER: &str = "$serde_json::private::Number";

/// `json` as regorus's value; `Undefined` where regorus's own conversion fails.
pub fn to_rego(json: &Value) -> RegoValue {
    direct(json).unwrap_or_else(|| RegoValue::deserialize(json).unwrap_or(RegoValue::Undefined))
}

/// `None` when the tree holds something only serde's path decodes as regorus does.
fn direct(json: &Value) -> Option<RegoValue> {
    Some(match json {
        Value::Null => RegoValue::Null,
        Value::Bool(b) => RegoValue::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                RegoValue::from(u)
            } else if let Some(i) = n.as_i64() {
                RegoValue::from(i)
            } else {
                // serde_json holds only finite floats, as regorus's visitor requires.
                RegoValue::from(n.as_f64()?)
            }
        }
        Value::String(s) => RegoValue::from(s.as_str()),
        Value::Array(items) => {
            RegoValue::from(items.iter().map(direct).collect::<Option<Vec<_>>>()?)
        }
        Value::Object(map) => {
            if map.keys().next().is_some_and(|k| k == NUMBER_MARKER) {
                return None;
            }
            // Into regorus's sorted storage with no map built on the way: the entries are sorted
            // once (serde_json keeps a document's key order here), which costs less than a
            // map's inserts, and already-sorted keys are only checked.
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                out.push((RegoValue::from(k.as_str()), direct(v)?));
            }
            RegoValue::from_sorted_entries(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same value as regorus's serde conversion, node for node.
    #[test]
    fn converts_as_regorus_deserializes() {
        let json = serde_json::json!({
            "s": "x", "n": null, "b": true, "u": u64::MAX, "i": i64::MIN,
            "f": 1.5, "e": 1e300, "z": -0.0, "a": [1, "two", [], {}, {"k": [null]}],
            "o": {}, "nested": {"b": 2, "a": 1}, "unicode": "ü\u{0}"
        });
        let expected = RegoValue::deserialize(&json).unwrap();
        assert_eq!(to_rego(&json), expected);
        assert_eq!(
            serde_json::to_string(&to_rego(&json)).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
    }

    /// Entries out of order, or with a key twice, still make a well-formed object: sorted, the
    /// last value of a key kept (as a map's inserts would), every key found by lookup.
    #[test]
    fn objects_from_entries_in_any_order_are_sorted_and_deduplicated() {
        let entries = [("b", 1), ("a", 2), ("c", 3), ("a", 4), ("B", 5)];
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in entries {
            map.insert(RegoValue::from(k), RegoValue::from(v));
        }
        let built = RegoValue::from_sorted_entries(
            entries
                .iter()
                .map(|(k, v)| (RegoValue::from(*k), RegoValue::from(*v)))
                .collect(),
        );
        assert_eq!(built, RegoValue::from(map));
        assert_eq!(built["a"], RegoValue::from(4));
        assert_eq!(built["B"], RegoValue::from(5));
        assert_eq!(
            serde_json::to_string(&built).unwrap(),
            r#"{"B":5,"a":4,"b":1,"c":3}"#
        );
    }

    #[test]
    fn the_big_number_marker_goes_through_serde() {
        let json = serde_json::json!({"v": {NUMBER_MARKER: "12345678901234567890123"}});
        assert_eq!(to_rego(&json), RegoValue::deserialize(&json).unwrap());
    }
}

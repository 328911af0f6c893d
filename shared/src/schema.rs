//! JSON Schemas in the standard vocabulary only, for the tools' arguments and results and for
//! the events' payloads.
//!
//! schemars marks Rust integers with formats such as `uint32` and `int64`, which no JSON Schema
//! draft defines: strict validators (Ajv in the TypeScript SDK, the Inspector, the conformance
//! suite and the AsyncAPI parser) warn about them. Here they become the range they stand for. An
//! optional field's type union (`"type": ["string", "null"]`), legal but not understood by every
//! client's schema subset, becomes `anyOf` branches of one type each.

use serde_json::{Map, Value};

/// The formats JSON Schema 2020-12 defines (its format-annotation vocabulary).
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Rewrites `schema` (and every schema in it) into the standard vocabulary.
pub fn standardise(schema: &mut Map<String, Value>) {
    visit(schema);
}

/// Keywords that describe a value rather than constrain it: they stay beside an `anyOf`.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

/// `{"type": [T, "null"], …}` as `{"anyOf": [{"type": T, …}, {"type": "null"}]}`, the
/// constraints on `T` in its branch and the annotations outside.
fn split_type_union(object: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = object.get("type") else {
        return;
    };
    if types.len() < 2 || object.contains_key("anyOf") {
        return;
    }
    let types = types.clone();
    let mut constraints = Map::new();
    for key in object.keys().cloned().collect::<Vec<_>>() {
        if !ANNOTATIONS.contains(&key.as_str()) {
            constraints.insert(key.clone(), object.remove(&key).unwrap_or_default());
        }
    }
    let branches = types
        .into_iter()
        .map(|ty| {
            let mut branch = match ty.as_str() {
                Some("null") => Map::new(),
                _ => constraints.clone(),
            };
            branch.insert("type".to_owned(), ty);
            Value::Object(branch)
        })
        .collect();
    object.insert("anyOf".to_owned(), Value::Array(branches));
}

fn visit(object: &mut Map<String, Value>) {
    split_type_union(object);
    if let Some(Value::String(format)) = object.get("format")
        && !STANDARD_FORMATS.contains(&format.as_str())
    {
        let (min, max) = integer_range(format);
        if let Some(min) = min {
            tighten(object, "minimum", min, i64::max);
        }
        if let Some(max) = max {
            tighten(object, "maximum", max, i64::min);
        }
        object.remove("format");
    }
    for value in object.values_mut() {
        match value {
            Value::Object(inner) => visit(inner),
            Value::Array(items) => items.iter_mut().for_each(|item| {
                if let Value::Object(inner) = item {
                    visit(inner);
                }
            }),
            _ => {}
        }
    }
}

/// The range a schemars integer format stands for (none for floating-point formats). The upper
/// bounds of 64-bit integers go unsaid: JSON numbers cannot state them exactly, and they bound
/// nothing a caller would send.
fn integer_range(format: &str) -> (Option<i64>, Option<i64>) {
    let (min, max): (i64, i64) = match format {
        "int8" => (i8::MIN.into(), i8::MAX.into()),
        "uint8" => (0, u8::MAX.into()),
        "int16" => (i16::MIN.into(), i16::MAX.into()),
        "uint16" => (0, u16::MAX.into()),
        "int32" => (i32::MIN.into(), i32::MAX.into()),
        "uint32" => (0, u32::MAX.into()),
        "uint" | "uint64" | "uint128" => return (Some(0), None),
        _ => return (None, None),
    };
    (Some(min), Some(max))
}

/// Sets `key` to `bound`, or keeps a tighter bound already there (`pick` chooses).
fn tighten(object: &mut Map<String, Value>, key: &str, bound: i64, pick: fn(i64, i64) -> i64) {
    let bound = match object.get(key).and_then(Value::as_i64) {
        Some(existing) => pick(existing, bound),
        None => bound,
    };
    object.insert(key.to_owned(), bound.into());
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn standardised(schema: Value) -> Value {
        let Value::Object(mut object) = schema else {
            unreachable!()
        };
        standardise(&mut object);
        Value::Object(object)
    }

    #[test]
    fn integer_formats_become_ranges_and_tighter_ranges_stay() {
        let schema = json!({"type": "object", "properties": {
            "minutes": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
            "interval": {"type": "integer", "format": "uint32", "minimum": 1, "maximum": 1000},
            "total": {"type": "integer", "format": "int64"},
            "ratio": {"type": "number", "format": "double"},
            "nested": {"anyOf": [{"type": "integer", "format": "int8"}, {"type": "null"}]},
            "due": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"}
        }});
        let p = &standardised(schema)["properties"];
        assert_eq!(
            p["minutes"],
            json!({"anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 4294967295u32},
                {"type": "null"}
            ]})
        );
        assert_eq!(
            p["interval"],
            json!({"type": "integer", "minimum": 1, "maximum": 1000})
        );
        assert_eq!(p["total"], json!({"type": "integer"}));
        assert_eq!(p["ratio"], json!({"type": "number"}));
        assert_eq!(
            p["nested"]["anyOf"][0],
            json!({"type": "integer", "minimum": -128, "maximum": 127})
        );
        assert_eq!(p["due"]["format"], "date-time", "standard formats stay");
        assert_eq!(p["id"]["format"], "uuid");
    }

    #[test]
    fn type_unions_become_one_type_per_branch() {
        let schema = json!({"type": "object", "properties": {
            "due": {"description": "When.", "type": ["string", "null"], "default": null},
            "ids": {"type": ["array", "null"], "items": {"type": "string", "format": "uuid"},
                    "maxItems": 50},
            "either": {"anyOf": [{"type": "string"}, {"type": "null"}]}
        }});
        let p = &standardised(schema)["properties"];
        assert_eq!(
            p["due"],
            json!({"description": "When.", "default": null,
                   "anyOf": [{"type": "string"}, {"type": "null"}]})
        );
        assert_eq!(
            p["ids"],
            json!({"anyOf": [
                {"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": 50},
                {"type": "null"}
            ]})
        );
        assert_eq!(
            p["either"],
            json!({"anyOf": [{"type": "string"}, {"type": "null"}]})
        );
    }
}

//! Reading the benchmarks' JSON-lines results for the reports. A number that is missing reads as
//! NaN (shown as `-` by [`num`]) or 0, so that a report of a partial run still renders.

use serde_json::Value;

/// The number at JSON pointer `path` (e.g. `/latency/p50_ms`), or NaN.
pub fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The unsigned integer at JSON pointer `path`, or 0.
pub fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or(0)
}

/// The string under `key`, or "".
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `x` with `decimals` digits, or `-` for NaN.
pub fn num(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        "-".to_owned()
    } else {
        format!("{x:.decimals$}")
    }
}

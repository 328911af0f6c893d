//! Latency summaries, for every figure of both benchmarks: nanoseconds into an HDR histogram
//! (`hdrhistogram`, 3 significant digits: a quantile is within 0.05 % of the values it stands
//! for), summarised as `n`, `min_ms`, `p50_ms`, `p90_ms`, `p99_ms`, `max_ms` and `mean_ms`.
//!
//! Durations measured between processes (received − committed, received − due) can be negative:
//! an event may arrive a little before the instant it is compared with. Those are kept in a
//! second histogram of their magnitudes, so that a quantile falling among them is reported as
//! the negative value it is rather than clamped, and their count is reported as `negative`.
//! Quantiles are nearest-rank; min, max and mean are exact.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Signed nanosecond values.
#[derive(Clone)]
pub struct Latencies {
    /// Values ≥ 0.
    pos: Histogram<u64>,
    /// Magnitudes of the values < 0.
    neg: Histogram<u64>,
    sum: i128,
    min: i64,
    max: i64,
}

impl Default for Latencies {
    fn default() -> Self {
        let histogram = || Histogram::new(3).expect("3 significant digits are supported");
        Self {
            pos: histogram(),
            neg: histogram(),
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
        }
    }
}

impl FromIterator<i64> for Latencies {
    fn from_iter<I: IntoIterator<Item = i64>>(values: I) -> Self {
        let mut l = Self::default();
        for v in values {
            l.record(v);
        }
        l
    }
}

impl Latencies {
    /// Records one value in nanoseconds.
    pub fn record(&mut self, ns: i64) {
        let h = if ns < 0 { &mut self.neg } else { &mut self.pos };
        // `record` grows the histogram as needed (up to 2^62 ns); only past that would it fail.
        if h.record(ns.unsigned_abs()).is_err() {
            h.saturating_record(ns.unsigned_abs());
        }
        self.sum += i128::from(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    /// Records a measured duration.
    pub fn record_duration(&mut self, d: Duration) {
        self.record(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    }

    /// Adds the values of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Both histograms resize themselves: adding cannot run out of range.
        let _ = self.pos.add(&other.pos);
        let _ = self.neg.add(&other.neg);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.pos.len() + self.neg.len()
    }

    /// The nearest-rank quantile `q` (0 to 1) in nanoseconds; `None` without values.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let neg = self.neg.len();
        Some(if rank <= neg {
            // The rank-th smallest value is the negative of the (neg − rank + 1)-th smallest
            // magnitude.
            -(at_rank(&self.neg, neg - rank + 1) as i64)
        } else {
            at_rank(&self.pos, rank - neg) as i64
        })
    }

    /// [`Self::quantile`] in milliseconds, rounded to the microsecond.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile(q).map(ms)
    }

    /// The summary every result carries; without values, `n` is 0 and the rest null.
    pub fn summary(&self) -> Value {
        let n = self.len();
        let exact = |v: i64| (n > 0).then(|| ms(v));
        let mut out = json!({
            "n": n,
            "min_ms": exact(self.min),
            "p50_ms": self.quantile_ms(0.50),
            "p90_ms": self.quantile_ms(0.90),
            "p99_ms": self.quantile_ms(0.99),
            "max_ms": exact(self.max),
            "mean_ms": (n > 0).then(|| round3(self.sum as f64 / n as f64 / 1e6)),
        });
        if !self.neg.is_empty() {
            out["negative"] = json!(self.neg.len());
        }
        out
    }
}

/// The k-th smallest value (1-based) of a histogram, as the middle of its bucket.
fn at_rank(h: &Histogram<u64>, k: u64) -> u64 {
    // hdrhistogram takes the value of rank ceil(q·n); with q = (k − ½)/n that is k however q·n
    // rounds.
    h.median_equivalent(h.value_at_quantile((k as f64 - 0.5) / h.len() as f64))
}

fn ms(ns: i64) -> f64 {
    round3(ns as f64 / 1e6)
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest rank over a sorted copy: what the histogram must agree with.
    fn exact(values: &[i64], q: f64) -> i64 {
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    #[test]
    fn small_values_are_exact_nearest_ranks() {
        // Below 2048 ns a 3-digit histogram has unit buckets: quantiles must be exact, on both
        // sides of zero.
        let values: Vec<i64> = (0..1000).map(|i| (i * 7919) % 2001 - 1000).collect();
        let l: Latencies = values.iter().copied().collect();
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
            assert_eq!(l.quantile(q), Some(exact(&values, q)), "q = {q}");
        }
        let s = l.summary();
        assert_eq!(s["n"], 1000);
        assert_eq!(s["negative"], values.iter().filter(|v| **v < 0).count());
    }

    #[test]
    fn negative_values_keep_their_sign() {
        let l: Latencies = [-3, -1, 2, 5].into_iter().collect();
        assert_eq!(l.quantile(0.25), Some(-3));
        assert_eq!(l.quantile(0.5), Some(-1));
        assert_eq!(l.quantile(0.75), Some(2));
        assert_eq!(l.quantile(1.0), Some(5));
        let l: Latencies = [-2_000_000, 4_000_000].into_iter().collect();
        let s = l.summary();
        assert_eq!(s["min_ms"], -2.0);
        assert_eq!(s["p50_ms"], -2.0);
        assert_eq!(s["max_ms"], 4.0);
        assert_eq!(s["mean_ms"], 1.0);
        assert_eq!(s["negative"], 1);
    }

    #[test]
    fn large_values_within_the_precision() {
        let values: Vec<i64> = (1..=100).map(|i| i * 1_000_000).collect();
        let l: Latencies = values.iter().copied().collect();
        for (key, want) in [("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0)] {
            let got = l.summary()[key].as_f64().unwrap();
            assert!((got - want).abs() <= want * 5e-4, "{key}: {got}");
        }
        let s = l.summary();
        assert_eq!(s["min_ms"], 1.0);
        assert_eq!(s["max_ms"], 100.0);
        assert_eq!(s["mean_ms"], 50.5);
        assert!(s.get("negative").is_none());
    }

    #[test]
    fn merged_equals_recorded_together() {
        let a: Latencies = (0..500).map(|i| i * 3 - 700).collect();
        let b: Latencies = (0..300).map(|i| i * 5).collect();
        let mut merged = a.clone();
        merged.merge(&b);
        let all: Latencies = (0..500)
            .map(|i| i * 3 - 700)
            .chain((0..300).map(|i| i * 5))
            .collect();
        assert_eq!(merged.summary(), all.summary());
    }

    #[test]
    fn empty_has_no_figures() {
        let s = Latencies::default().summary();
        assert_eq!(s["n"], 0);
        assert!(s["p50_ms"].is_null() && s["max_ms"].is_null() && s["mean_ms"].is_null());
    }
}

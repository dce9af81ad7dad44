//! Counting what went wrong, latency histograms, and the two ways results are printed: a human
//! summary, and one JSON line (`--json`) that scripts read field by field.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::meter::ThreadCpu;

/// How many failure descriptions are kept to show the user; the rest are only counted.
const SAMPLES: usize = 8;

/// Wrong or missing replies: a count, and the first few described.
#[derive(Default)]
pub struct Failures {
    pub count: u64,
    pub samples: Vec<String>,
}

impl Failures {
    pub fn add(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.samples.len() < SAMPLES {
            self.samples.push(what());
        }
    }

    pub fn merge(&mut self, other: Failures) {
        self.count += other.count;
        for s in other.samples {
            if self.samples.len() < SAMPLES {
                self.samples.push(s);
            }
        }
    }
}

/// Latencies in microseconds, 1 us to 10 minutes, 3 significant digits.
pub struct Latency(Histogram<u64>);

impl Latency {
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts; failing here is a programming error.
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 600_000_000);
        // In range by the clamp above.
        let _ = self.0.record(us);
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// (p50, p99, max, mean) in microseconds; zeros when empty.
    pub fn summary(&self) -> (u64, u64, u64, f64) {
        if self.0.is_empty() {
            return (0, 0, 0, 0.0);
        }
        (
            self.0.value_at_quantile(0.50),
            self.0.value_at_quantile(0.99),
            self.0.max(),
            self.0.mean(),
        )
    }
}

/// A flat JSON object built field by field; values are numbers, booleans or plain strings
/// (addresses, modes) that need no escaping beyond quotes and backslashes.
pub struct Json(String);

impl Json {
    pub fn new() -> Self {
        Self(String::from("{"))
    }

    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "\"{k}\":");
    }

    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(self.0, "\"{escaped}\"");
        self
    }

    pub fn num(mut self, k: &str, v: impl Into<f64>) -> Self {
        self.key(k);
        let v: f64 = v.into();
        if !v.is_finite() {
            self.0.push_str("null");
        } else if v.fract() == 0.0 && v.abs() < 1e15 {
            let _ = write!(self.0, "{}", v as i64);
        } else {
            let _ = write!(self.0, "{v:.3}");
        }
        self
    }

    pub fn opt(self, k: &str, v: Option<f64>) -> Self {
        match v {
            Some(v) => self.num(k, v),
            None => {
                let mut s = self;
                s.key(k);
                s.0.push_str("null");
                s
            }
        }
    }

    pub fn bool(mut self, k: &str, v: bool) -> Self {
        self.key(k);
        self.0.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// CPU microseconds per unit of work, or `None` when nothing was done or CPU was not read.
pub fn us_per(cpu: Option<Duration>, units: u64) -> Option<f64> {
    match cpu {
        Some(c) if units > 0 => Some(c.as_secs_f64() * 1e6 / units as f64),
        _ => None,
    }
}

impl Json {
    /// The server's CPU per `unit` by thread kind: `receiver_cpu_us_per_<unit>`,
    /// `workers_...` and `others_...` (null when not measured).
    pub fn threads(self, threads: Option<ThreadCpu>, units: u64, unit: &str) -> Self {
        let per = |pick: fn(&ThreadCpu) -> Duration| us_per(threads.as_ref().map(pick), units);
        self.opt(&format!("receiver_cpu_us_per_{unit}"), per(|t| t.receiver))
            .opt(&format!("workers_cpu_us_per_{unit}"), per(|t| t.workers))
            .opt(&format!("others_cpu_us_per_{unit}"), per(|t| t.others))
    }
}

/// `receiver 0.860 us/reply, workers 1.560 us/reply, others (directory) 0.000
/// us/reply`, or `None` when not measured.
pub fn threads_line(threads: Option<ThreadCpu>, units: u64, unit: &str) -> Option<String> {
    let t = threads?;
    let per = |d: Duration| us_per(Some(d), units).unwrap_or(0.0);
    Some(format!(
        "receiver {:.3} us/{unit}, workers {:.3} us/{unit}, others (directory) {:.3} \
         us/{unit}",
        per(t.receiver),
        per(t.workers),
        per(t.others)
    ))
}

/// `12.3 s (61% of a core, 4.5 us per reply)`, or `not measured`.
pub fn cpu_line(cpu: Option<Duration>, wall: Duration, units: u64, unit: &str) -> String {
    match cpu {
        None => "not measured".into(),
        Some(c) => {
            let share = if wall.is_zero() {
                0.0
            } else {
                c.as_secs_f64() / wall.as_secs_f64() * 100.0
            };
            match us_per(cpu, units) {
                Some(per) => format!(
                    "{:.2} s ({share:.0}% of a core, {per:.2} us per {unit})",
                    c.as_secs_f64()
                ),
                None => format!("{:.2} s ({share:.0}% of a core)", c.as_secs_f64()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_one_flat_object() {
        let j = Json::new()
            .str("mode", "ping")
            .num("replies", 12u32)
            .num("rate", 1.5)
            .opt("cpu", None)
            .bool("ok", true)
            .str("q", "a\"b")
            .finish();
        assert_eq!(
            j,
            r#"{"mode":"ping","replies":12,"rate":1.500,"cpu":null,"ok":true,"q":"a\"b"}"#
        );
    }

    #[test]
    fn latency_summary_reads_quantiles() {
        let mut l = Latency::new();
        assert_eq!(l.summary().0, 0);
        for us in 1..=100u64 {
            l.record(Duration::from_micros(us));
        }
        let mut other = Latency::new();
        other.record(Duration::from_millis(50));
        l.merge(&other);
        let (p50, p99, max, _) = l.summary();
        assert_eq!(l.count(), 101);
        assert!((50..=51).contains(&p50), "{p50}");
        assert!((99..=100).contains(&p99), "{p99}");
        assert!((49_950..=50_050).contains(&max), "{max}");
    }

    #[test]
    fn failures_keep_a_few_samples_and_count_all() {
        let mut f = Failures::default();
        for i in 0..20 {
            f.add(|| format!("bad {i}"));
        }
        let mut g = Failures::default();
        g.add(|| "other".into());
        g.merge(f);
        assert_eq!(g.count, 21);
        assert_eq!(g.samples.len(), SAMPLES);
        assert_eq!(g.samples[0], "other");
    }

    #[test]
    fn cpu_per_unit() {
        assert_eq!(us_per(Some(Duration::from_secs(1)), 1_000_000), Some(1.0));
        assert_eq!(us_per(Some(Duration::from_secs(1)), 0), None);
        assert_eq!(us_per(None, 10), None);
        assert!(cpu_line(
            Some(Duration::from_secs(1)),
            Duration::from_secs(2),
            10,
            "reply"
        )
        .contains("50% of a core"));
    }
}

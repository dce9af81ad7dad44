//! The Prometheus text of a [`Snapshot`]: the figures of the counter tables
//! (`runtime::stats::sets`), each at its row, and what is not a table row: the requests,
//! replies and error replies by label, the queue depths, the handling time histogram and the
//! build info.
//!
//! prometheus-client's own metric types keep their values in atomics of their own; the
//! threads already count in [`Counters`](crate::runtime::Counters), so a scrape encodes a
//! snapshot through a [`Collector`] instead of copying it into a registry of metrics.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::Snapshot;
use crate::runtime::stats::table::{Kind, Metric};
use crate::runtime::stats::Value;
use crate::runtime::{Totals, COMMANDS, HANDLING_BUCKETS_NS, REPLY_KINDS};
use crate::wire::ErrorCode;

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, kind)?;
    write_value(metric, kind, value)
}

/// Writes one metric with one series per `(label value, value)`.
fn family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &str,
    series: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (value_of_label, value) in series {
        let labels = [(label, value_of_label)];
        write_value(metric.encode_family(&labels)?, kind, value)?;
    }
    Ok(())
}

fn write_value(mut metric: MetricEncoder, kind: MetricType, value: u64) -> std::fmt::Result {
    match kind {
        MetricType::Counter => metric.encode_counter::<NoLabelSet, _, u64>(&value, None),
        _ => metric.encode_gauge(&value),
    }
}

/// The Prometheus type of a figure.
fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
    }
}

/// Writes the figures of the counter tables: each single metric at its row, each family once,
/// at its first series, with all its series in table order.
fn figures(e: &mut DescriptorEncoder, totals: &Totals) -> Result<(), std::fmt::Error> {
    let all: Vec<Value> = totals.figures().collect();
    let in_family = |v: &Value, name: &str| matches!(v.metric, Metric::Series { family, .. } if family.name == name);
    for (i, v) in all.iter().enumerate() {
        match *v.metric {
            Metric::Single { name, kind, help } => {
                single(e, name, help, metric_type(kind), v.value)?;
            }
            Metric::Series { family: f, .. } => {
                if all[..i].iter().any(|w| in_family(w, f.name)) {
                    continue;
                }
                let series: Vec<(&str, &str, u64)> = all[i..]
                    .iter()
                    .filter_map(|w| match *w.metric {
                        Metric::Series {
                            family,
                            value,
                            help,
                        } if family.name == f.name => Some((value, help, w.value)),
                        _ => None,
                    })
                    .collect();
                let reasons: Vec<String> = series
                    .iter()
                    .map(|(value, help, _)| format!("{value} ({help})"))
                    .collect();
                let help = format!("{}: {}.", f.help, reasons.join(", "));
                family(
                    e,
                    f.name,
                    &help,
                    metric_type(f.kind),
                    f.label,
                    series.iter().map(|&(value, _, n)| (value, n)),
                )?;
            }
        }
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let t = &self.totals;
        let e = &mut e;
        figures(e, t)?;
        family(
            e,
            "rabid_punch_requests",
            "Well-formed requests received, by command letter.",
            Counter,
            "command",
            COMMANDS.iter().copied().zip(t.requests),
        )?;
        family(
            e,
            "rabid_punch_replies",
            "Replies handed to the kernel (sent or send_error), by kind: i: info, s: start, error.",
            Counter,
            "kind",
            REPLY_KINDS.iter().copied().zip(t.replies),
        )?;
        family(
            e,
            "rabid_punch_error_replies",
            "Error replies handed to the kernel, by error string (error:session_full is \
             error=\"session_full\").",
            Counter,
            "error",
            ErrorCode::ALL
                .iter()
                .map(|code| code.as_str().trim_start_matches("error:"))
                .zip(t.errors),
        )?;
        let workers: Vec<String> = (0..self.queue_depths.len())
            .map(|w| w.to_string())
            .collect();
        family(
            e,
            "rabid_punch_queue_depth",
            "Batches (up to 32 datagrams each) waiting in a worker's queue; at --queue-capacity \
             new ones are dropped (reason queue_full).",
            Gauge,
            "worker",
            workers
                .iter()
                .map(String::as_str)
                .zip(self.queue_depths.iter().map(|&d| d as u64)),
        )?;
        // Per-bucket counts, not cumulative: the encoder adds them up into `le` buckets.
        let buckets: Vec<(f64, u64)> = HANDLING_BUCKETS_NS
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .chain([f64::INFINITY])
            .zip(t.handling)
            .collect();
        let mut histogram = e.encode_descriptor(
            "rabid_punch_request_duration_seconds",
            "Time a worker spends per request: each batch, from taking it off the queue to its \
             replies sent, divided evenly among its requests.",
            None,
            MetricType::Histogram,
        )?;
        histogram.encode_histogram::<NoLabelSet>(
            t.handling_sum_ns as f64 / 1e9,
            t.handled(),
            &buckets,
            None,
        )?;
        family(
            e,
            "rabid_punch_build_info",
            "Always 1; the version label tells which rabid-punch runs.",
            Gauge,
            "version",
            [(env!("CARGO_PKG_VERSION"), 1)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' '))
        })
    }

    #[test]
    fn every_figure_is_exported_under_its_name_and_labels() {
        let mut totals = Totals {
            handling_sum_ns: 3_000,
            ..Totals::default()
        };
        totals.runtime.datagrams_in = 7;
        totals.runtime.bytes_out = 99;
        totals.runtime.dropped_table_full = 3;
        totals.shard.hosts_refused_by_cap = 2;
        totals.runtime.sessions = 4;
        totals.requests[1] = 5;
        totals.replies[2] = 6;
        let full = ErrorCode::ALL
            .iter()
            .position(|&c| c == ErrorCode::SessionFull)
            .unwrap();
        totals.errors[full] = 2;
        totals.handling[0] = 1;
        totals.handling[2] = 2;
        totals.relay.sessions_relayed = 8;
        totals.relay.closed_idle = 5;
        totals.relay.closed_unused = 4;
        totals.relay.dropped_budget = 11;
        totals.relay.ports_total = 1000;
        totals.runtime.relay_dropped_too_big = 13;
        totals.shard.players_joined = 9;
        totals.runtime.relay_bytes_in = 17;
        let text = Snapshot {
            totals,
            queue_depths: vec![0, 12],
        }
        .encode();
        for (series, value) in [
            ("rabid_punch_datagrams_in_total", "7"),
            ("rabid_punch_bytes_out_total", "99"),
            ("rabid_punch_requests_total{command=\"c\"}", "5"),
            ("rabid_punch_requests_total{command=\"h\"}", "0"),
            ("rabid_punch_replies_total{kind=\"error\"}", "6"),
            (
                "rabid_punch_error_replies_total{error=\"session_full\"}",
                "2",
            ),
            (
                "rabid_punch_error_replies_total{error=\"player_timeout\"}",
                "0",
            ),
            ("rabid_punch_drops_total{reason=\"budget_table_full\"}", "3"),
            ("rabid_punch_drops_total{reason=\"session_cap\"}", "2"),
            ("rabid_punch_sessions_open", "4"),
            ("rabid_punch_queue_depth{worker=\"1\"}", "12"),
            (
                "rabid_punch_request_duration_seconds_bucket{le=\"1e-06\"}",
                "1",
            ),
            (
                "rabid_punch_request_duration_seconds_bucket{le=\"2.5e-06\"}",
                "1",
            ),
            (
                "rabid_punch_request_duration_seconds_bucket{le=\"5e-06\"}",
                "3",
            ),
            (
                "rabid_punch_request_duration_seconds_bucket{le=\"+Inf\"}",
                "3",
            ),
            ("rabid_punch_request_duration_seconds_count", "3"),
            ("rabid_punch_relay_sessions_total", "8"),
            ("rabid_punch_relay_closed_total{reason=\"idle\"}", "5"),
            ("rabid_punch_relay_closed_total{reason=\"unused\"}", "4"),
            ("rabid_punch_relay_drops_total{reason=\"budget\"}", "11"),
            ("rabid_punch_relay_drops_total{reason=\"too_big\"}", "13"),
            ("rabid_punch_relay_ports", "1000"),
            ("rabid_punch_relay_ports_in_use", "0"),
            ("rabid_punch_players_joined_total", "9"),
            ("rabid_punch_players_kicked_total", "0"),
            ("rabid_punch_players_exited_total", "0"),
            ("rabid_punch_relay_bytes_in_total", "17"),
            ("rabid_punch_request_duration_seconds_sum", "0.000003"),
        ] {
            let found = line(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
            assert_eq!(found, format!("{series} {value}"), "{text}");
        }
        assert!(
            text.contains("# TYPE rabid_punch_drops_total counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE rabid_punch_players gauge"), "{text}");
        assert!(
            text.contains("# TYPE rabid_punch_request_duration_seconds histogram"),
            "{text}"
        );
    }
}

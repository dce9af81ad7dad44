//! The metrics endpoint (`--metrics ADDR`): Prometheus text at `/metrics`, 404 elsewhere.
//!
//! Nothing here is on the datagram path. The threads count in their own
//! [`Counters`](crate::runtime::Counters); a scrape takes a [`Snapshot`] of them through a
//! [`Probe`] (plain atomic loads, no lock, so a scrape never makes a worker wait), builds a fresh
//! `prometheus-client` registry around that snapshot and encodes it. The HTTP side is
//! `tiny_http` on a thread of its own: blocking, small, one scrape at a time, which is all
//! Prometheus needs. It is not meant to face the internet (see the README's Monitoring section).
//!
//! Every metric name starts with `rabid_punch_`; `contrib/prometheus/rabid-punch.rules.yml`
//! alerts on them, so a rename must update it too.
//!
//! Three parts: this module, what a scrape reads ([`Snapshot`]); `encode.rs`, the Prometheus
//! text of a snapshot (the figures of the counter tables in `runtime::stats::sets`, and the
//! labelled arrays and histogram beside them); `http.rs`, the endpoint that serves it.

mod encode;
mod http;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use crate::runtime::{Probe, Totals};
pub use http::{Endpoint, Serving};

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";
/// Where the lobby directory is served as JSON (docs/lobbies.md, "The HTTP view").
pub const LOBBIES_PATH: &str = "/lobbies";

/// What one scrape reports: every thread's counters added up, and the worker queues' depths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub totals: Totals,
    /// Batches waiting per worker, in worker order.
    pub queue_depths: Vec<usize>,
}

impl Snapshot {
    /// Reads the running server's figures now.
    pub fn take(probe: &Probe) -> Self {
        Self {
            totals: probe.totals(),
            queue_depths: probe.queue_depths(),
        }
    }

    /// The snapshot in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut text = String::new();
        // Writing into a String cannot fail, and our collector returns no error of its own.
        let _ = prometheus_text::encode(&mut text, &registry);
        text
    }
}

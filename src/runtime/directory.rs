//! The directory thread: answers the listings (`l:`, `b:1:`, `q:1:`) the receiver hands it, from
//! the shared [`Directory`], through its own clone of the server socket and the send budgets.
//!
//! Listings get a thread of their own because they are the server's largest replies to its
//! smallest requests: a flood of them costs this thread and its bounded queue (what does not
//! fit is dropped and counted), not the receiver and not the workers, so pings and starts go
//! on. Each reply is charged to its destination's send budget like any other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::Gate;
use crate::core::{Directory, DirectoryQuery};
use crate::outbox::Outbox;

/// Queries for the directory thread, as one channel message per receive batch.
pub type DirectoryBatch = Vec<(SocketAddr, Box<DirectoryQuery>)>;

/// Batches the directory thread may have waiting; past it the receiver drops (and counts).
pub const QUEUE: usize = 64;

/// Answers queries until the receiver hangs up.
pub fn run(directory: Arc<Directory>, queries: Receiver<DirectoryBatch>, gate: Gate) {
    let mut out = Outbox::new();
    for batch in queries {
        let now = Instant::now();
        for (from, query) in &batch {
            out.push_unless_empty(*from, |buf| directory.answer(query, now, buf));
        }
        gate.counters
            .directory_answered(batch.len(), directory.len());
        gate.send(&out, now);
        out.clear();
    }
}

//! What the receiver hands a worker: requests the front door parsed and routed, stored inline.

use crate::core::Routed;

/// Requests for one worker, sent as one channel message. Each is stored inline (names in fixed
/// arrays), so forwarding them allocates nothing beyond the batch.
pub type Batch = Vec<Routed>;

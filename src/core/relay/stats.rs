//! The counters of a shard's relays.

/// Counters of a shard's relays, for the stats line and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Sessions started through the relay.
    pub sessions_relayed: u64,
    /// Starts that should have been relayed but went direct: pool empty, an IP at its cap, or no
    /// address to list.
    pub fallbacks: u64,
    pub closed_idle: u64,
    pub closed_lifetime: u64,
    /// Relays closed because no member sent through them within `unused_timeout`.
    pub closed_unused: u64,
    pub datagrams: u64,
    pub bytes: u64,
    /// Datagrams on a relay's port that no member sent.
    pub dropped_strangers: u64,
    /// Datagrams on a port of the pool that no relay holds: mostly greetings aimed at the
    /// neighbours of a relay port (the peer phase tries 8 ports each side), or a port scan.
    pub dropped_unheld_port: u64,
    /// Datagrams over the byte budget of their session or of their sender's IP.
    pub dropped_budget: u64,
    /// Relay ports held by open relays now.
    pub ports_in_use: u64,
    /// Relay ports this shard was given.
    pub ports_total: u64,
    /// Starts `auto` took for a retry of the same group, and relayed (or tried to: a fallback
    /// is counted in `fallbacks` too).
    pub auto_retries: u64,
    /// Starts `auto` left direct because every player is on the server's own machine.
    pub auto_direct_local: u64,
    /// Starts `auto` left direct because no recent start had two of their players.
    pub auto_direct_new: u64,
}

//! The live view: `GET /metrics/stream` (a WebSocket pushing a snapshot every interval,
//! and alert changes at once) and the built-in page at `GET /` that draws it.
//!
//! # Layout
//! - [`subscription`]: what a client may send, and the scope it resolves to.
//! - [`snapshot`]: one scope's numbers over a sliding window, computed with the REST
//!   answers' own functions.
//! - [`hub`]: one feed (task + broadcast) per scope, shared by all its subscribers.
//! - [`socket`]: one connection: authentication, subscription, heartbeats, slow clients.
//! - [`page`]: the page and its assets, embedded in the binary.
//! - [`metrics`]: `voicemon_live_*` self-metrics.
//!
//! The message schema is documented in `docs/live.md`.

pub mod hub;
pub mod metrics;
pub mod page;
pub mod snapshot;
pub mod socket;
pub mod subscription;

pub use hub::LiveHub;
pub use metrics::LiveMetrics;

use std::time::Duration;

/// Live view settings: the limits that keep slow or silent clients from costing memory.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Messages a feed keeps for its subscribers (one buffer per scope, shared). A client
    /// further behind skips the oldest ones.
    pub queue_frames: usize,
    /// A client that skips messages this many times in a row is disconnected.
    pub max_lag_strikes: u32,
    /// A client whose socket does not take a message within this is disconnected.
    pub write_timeout: Duration,
    /// A ping is sent this often; a client that has not answered the previous one by
    /// then is disconnected.
    pub ping_every: Duration,
    /// A connection opened without a key must send one within this.
    pub auth_timeout: Duration,
    /// Connections beyond this are refused with 503.
    pub max_connections: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            queue_frames: 16,
            max_lag_strikes: 3,
            write_timeout: Duration::from_secs(10),
            ping_every: Duration::from_secs(20),
            auth_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

//! Health history: once a minute the platform-wide health report is summarised and
//! stored (`sampler`), so `GET /metrics/health?from&to` can show the recent past.
//!
//! The report itself (what is sick now) is a read: [`crate::query::health`].

pub mod sampler;

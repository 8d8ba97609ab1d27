//! voicemon-core: the pure heart of voicemon. No I/O, no async, tests in seconds.
//!
//! # Layout
//! - [`alerting`]: alert rules, evaluation, notification policy, silences, inhibition.
//! - [`event`]: the typed event contract v1.
//! - [`validate`]: one JSON event → typed event, or an error naming the field.
//! - [`body`]: an ingest body (object, array, NDJSON) → events.
//! - [`sketch`]: mergeable DDSketch-style latency sketches and their encoding.
//! - [`health`]: worker staleness, breaker timelines, provider status and uptime.
//! - [`latency`]: latency components and the observations events contribute.
//! - [`money`]: integer nano-USD and exact decimal text.
//! - [`pricing`]: the dated price book and the cost of usage events.
//! - [`window`]: the minute grid, query ranges and steps.
//! - [`clock`]: injectable time.
//! - [`access`]: key roles and hashing.

pub mod access;
pub mod alerting;
pub mod body;
pub mod clock;
pub mod event;
pub mod health;
pub mod latency;
pub mod money;
pub mod pricing;
pub mod sketch;
pub mod validate;
pub mod window;

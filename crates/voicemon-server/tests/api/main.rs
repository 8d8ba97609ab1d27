//! API tests: the real server on a random port with a temporary data directory.

mod helpers;

mod access;
mod browser;
mod calls;
mod cost;
mod cost_properties;
mod explorer;
mod health;
mod http;
mod ingest;
mod latency;
mod limits;
mod live;
mod openapi;
mod prometheus;
mod reprice;
mod shutdown;

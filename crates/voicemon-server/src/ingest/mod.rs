//! Ingest: the group-commit [`writer`] that stores validated events in batches and
//! answers each submitter once its events are durable. The HTTP side of ingest
//! (`POST /v1/events`: framing, validation, costing) is `api::ingest`.

pub mod writer;

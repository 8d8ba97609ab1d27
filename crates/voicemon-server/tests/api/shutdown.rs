//! Graceful shutdown flushes what the batch writer holds; readiness follows the store.

use crate::helpers::{eventually, spawn_app, spawn_app_in, spawn_app_with, status_and_json, turn};
use serde_json::Value;
use std::time::Duration;
use voicemon_store::sqlite::DB_FILE;

/// Far longer than any bounded wait below: a commit that waited for it would show.
const LINGER: Duration = Duration::from_secs(30);
/// A bound for what should take milliseconds, not a measurement.
const BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_graceful_shutdown_commits_what_the_writer_holds_and_answers_every_post() {
    let app = spawn_app_with(|config| {
        config.writer.linger = LINGER;
        config.writer.max_wait = Duration::from_secs(60);
        config.writer.max_events = 1000;
    })
    .await;
    let posts: Vec<_> = (0..3)
        .map(|request| {
            let lines: String = (0..2)
                .map(|i| format!("{}\n", turn(&format!("t{request}-{i}"), "acme", "c1", -30_000, 640.0)))
                .collect();
            let post = app
                .client
                .post(app.url("/v1/events"))
                .header("content-type", "application/x-ndjson")
                .body(lines);
            tokio::spawn(
                async move { status_and_json(post.send().await.expect("the request is sent")).await },
            )
        })
        .collect();
    // The writer, lingering for a fuller group, says when it holds all six events.
    let holds_all = || async { app.metric("voicemon_ingest_writer_events").await == 6.0 };
    let held = eventually(BOUND, holds_all).await;
    assert!(held, "the three requests reach the writer");
    assert!(posts.iter().all(|post| !post.is_finished()), "the writer did not linger");
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 0, "nothing is committed yet");

    let data_dir = tokio::time::timeout(BOUND, app.shutdown())
        .await
        .expect("shutdown stops the linger instead of waiting it out");
    for post in posts {
        let (status, report): (u16, Value) =
            tokio::time::timeout(BOUND, post).await.expect("the post is answered").expect("the post task");
        assert_eq!(status, 202, "{report}");
        assert_eq!(report["accepted"], 2, "{report}");
    }

    let app = spawn_app_in(data_dir, |_| {}).await;
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 6);
    app.shutdown().await;
}

#[tokio::test]
async fn events_acknowledged_before_a_restart_are_found_after_it() {
    let app = spawn_app().await;
    app.ingest_ok(&[turn("t1", "acme", "c1", -30_000, 640.0)]).await;
    let data_dir = app.shutdown().await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 1);
    let (status, report) = app.ingest(&[turn("t1", "acme", "c1", -30_000, 640.0)], None).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["duplicates"], 1, "ids are remembered across restarts: {report}");
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_is_503_with_retry_after_once_the_database_file_is_gone() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    std::fs::remove_file(app.data_dir.path().join(DB_FILE)).expect("the database file is removed");
    let response = app.get("/readyz", None).await;
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_owned());
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    let (status, body) = app.get_json("/healthz", None).await;
    assert_eq!(status, 200, "the process still answers: {body}");
    app.shutdown().await;
}

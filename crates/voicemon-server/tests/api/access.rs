//! API keys: roles, tenant scope, revocation, and what answers without a key.

use crate::helpers::{
    assert_error, create_key, eventually, revoke_key, spawn_app, spawn_app_in, status_and_json, turn,
    TestApp, TestKey,
};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use voicemon_core::access::Role;

/// A server started with keys for two tenants and an admin key, and two turns of each
/// tenant already stored (written with the admin key).
struct Keyed {
    app: TestApp,
    ingest_acme: TestKey,
    read_acme: TestKey,
    admin: TestKey,
}

async fn spawn_keyed_app() -> Keyed {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let ingest_acme = create_key(data_dir.path(), Role::Ingest, Some("acme")).await;
    let read_acme = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    let (status, report) = app
        .ingest(
            &[
                turn("a1", "acme", "c1", -60_000, 500.0),
                turn("a2", "acme", "c1", -50_000, 510.0),
                turn("g1", "globex", "c2", -60_000, 3_000.0),
                turn("g2", "globex", "c2", -50_000, 3_100.0),
            ],
            admin.secret(),
        )
        .await;
    assert_eq!(status, 202, "the admin key writes every tenant: {report}");
    Keyed { app, ingest_acme, read_acme, admin }
}

const NEVER_ISSUED: &str = "vm_this_key_was_never_issued";

#[tokio::test]
async fn a_request_without_a_key_is_answered_401_with_a_json_error() {
    let Keyed { app, .. } = spawn_keyed_app().await;
    let (status, body) = app.get_json("/metrics/latency", None).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = app.get_json("/metrics/calls", None).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = app.ingest(&[turn("x", "acme", "c", -1_000, 1.0)], None).await;
    assert_error(status, &body, 401, "unauthorized");
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_key_is_answered_401() {
    let Keyed { app, .. } = spawn_keyed_app().await;
    let (status, body) = app.get_json("/metrics/latency", Some(NEVER_ISSUED)).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = app.ingest(&[turn("x", "acme", "c", -1_000, 1.0)], Some(NEVER_ISSUED)).await;
    assert_error(status, &body, 401, "unauthorized");
    app.shutdown().await;
}

#[tokio::test]
async fn an_authorization_header_that_is_not_bearer_is_answered_401() {
    let Keyed { app, read_acme, .. } = spawn_keyed_app().await;
    let response = app
        .client
        .get(app.url("/metrics/latency"))
        .header("authorization", format!("Basic {}", read_acme.secret))
        .send()
        .await
        .expect("the request is sent");
    let (status, body) = status_and_json(response).await;
    assert_error(status, &body, 401, "unauthorized");
    app.shutdown().await;
}

#[tokio::test]
async fn an_ingest_key_writes_its_own_tenant() {
    let Keyed { app, ingest_acme, admin, .. } = spawn_keyed_app().await;
    let (status, report) =
        app.ingest(&[turn("a3", "acme", "c1", -40_000, 520.0)], ingest_acme.secret()).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    assert_eq!(app.latency_count("tenant_id=acme", admin.secret()).await, 3);
    app.shutdown().await;
}

#[tokio::test]
async fn an_ingest_key_writing_another_tenant_is_refused_and_nothing_of_the_batch_is_stored() {
    let Keyed { app, ingest_acme, admin, .. } = spawn_keyed_app().await;
    let batch = [turn("a3", "acme", "c1", -40_000, 520.0), turn("g3", "globex", "c2", -40_000, 3_200.0)];
    let (status, body) = app.ingest(&batch, ingest_acme.secret()).await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(app.latency_count("tenant_id=globex", admin.secret()).await, 2);
    assert_eq!(app.latency_count("tenant_id=acme", admin.secret()).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn an_ingest_key_cannot_read_metrics() {
    let Keyed { app, ingest_acme, .. } = spawn_keyed_app().await;
    for path in ["/metrics/latency", "/metrics/latency?tenant_id=acme", "/metrics/calls?tenant_id=acme"] {
        let (status, body) = app.get_json(path, ingest_acme.secret()).await;
        assert_error(status, &body, 403, "forbidden");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_read_key_cannot_read_another_tenant() {
    let Keyed { app, read_acme, .. } = spawn_keyed_app().await;
    for path in ["/metrics/latency?tenant_id=globex", "/metrics/calls?tenant_id=globex"] {
        let (status, body) = app.get_json(path, read_acme.secret()).await;
        assert_error(status, &body, 403, "forbidden");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_read_key_without_a_tenant_parameter_reads_its_own_tenant_only() {
    let Keyed { app, read_acme, .. } = spawn_keyed_app().await;
    let (status, body) = app.get_json("/metrics/latency", read_acme.secret()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant_id"], "acme", "{body}");
    assert_eq!(body["overall"]["count"], 2, "{body}");
    let p99 = body["overall"]["p99"].as_f64().expect("a p99");
    assert!(p99 < 600.0, "globex's 3 s turns are not mixed in: {body}");
    let (status, body) = app.get_json("/metrics/latency?tenant_id=acme", read_acme.secret()).await;
    assert_eq!((status, body["overall"]["count"].clone()), (200, 2.into()), "{body}");
    let (status, body) = app.get_json("/metrics/calls", read_acme.secret()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant_id"], "acme", "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_read_key_cannot_post_events() {
    let Keyed { app, read_acme, admin, .. } = spawn_keyed_app().await;
    let (status, body) = app.ingest(&[turn("a3", "acme", "c1", -40_000, 520.0)], read_acme.secret()).await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(app.latency_count("tenant_id=acme", admin.secret()).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_read_key_is_refused_before_its_events_are_looked_at() {
    let Keyed { app, read_acme, .. } = spawn_keyed_app().await;
    let (status, body) = app.ingest(&[turn("bad", "acme", "c1", -40_000, -1.0)], read_acme.secret()).await;
    assert_error(status, &body, 403, "forbidden");
    app.shutdown().await;
}

#[tokio::test]
async fn an_admin_key_without_a_tenant_reads_every_tenant() {
    let Keyed { app, admin, .. } = spawn_keyed_app().await;
    let (status, body) = app.get_json("/metrics/latency", admin.secret()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant_id"], serde_json::Value::Null, "{body}");
    assert_eq!(body["overall"]["count"], 4, "{body}");
    assert_eq!(app.latency_count("tenant_id=globex", admin.secret()).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_once_the_ring_reloads() {
    let Keyed { app, read_acme, .. } = spawn_keyed_app().await;
    assert_eq!(app.latency_count("", read_acme.secret()).await, 2);
    revoke_key(app.data_dir.path(), &read_acme).await;
    // An unknown key makes the ring reload (at most once a second); the periodic reload
    // every five seconds would do it too.
    let (app_ref, read_acme_ref) = (&app, &read_acme);
    let refused = eventually(Duration::from_secs(8), || async move {
        let (app, read_acme) = (app_ref, read_acme_ref);
        let _ = app.get("/metrics/latency", Some(NEVER_ISSUED)).await;
        app.get("/metrics/latency", read_acme.secret()).await.status().as_u16() == 401
    })
    .await;
    assert!(refused, "the revoked key is still accepted");
    let (status, body) = app.get_json("/metrics/latency", read_acme.secret()).await;
    assert_error(status, &body, 401, "unauthorized");
    app.shutdown().await;
}

#[tokio::test]
async fn a_key_created_while_the_server_runs_is_accepted_after_a_reload() {
    let Keyed { app, .. } = spawn_keyed_app().await;
    let read_globex = create_key(app.data_dir.path(), Role::Read, Some("globex")).await;
    let (app_ref, read_globex_ref) = (&app, &read_globex);
    let accepted = eventually(Duration::from_secs(8), || async move {
        let (app, read_globex) = (app_ref, read_globex_ref);
        app.get("/metrics/latency", read_globex.secret()).await.status().as_u16() == 200
    })
    .await;
    assert!(accepted, "the new key is never accepted");
    assert_eq!(app.latency_count("", read_globex.secret()).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_server_beyond_loopback_refuses_everything_once_its_last_key_is_revoked() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |config| config.bind = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))).await;
    assert_eq!(app.latency_count("", admin.secret()).await, 0);
    revoke_key(app.data_dir.path(), &admin).await;
    let (app_ref, admin_ref) = (&app, &admin);
    let refused = eventually(Duration::from_secs(8), || async move {
        let (app, admin) = (app_ref, admin_ref);
        let _ = app.get("/metrics/latency", Some(NEVER_ISSUED)).await;
        app.get("/metrics/latency", admin.secret()).await.status().as_u16() == 401
    })
    .await;
    assert!(refused, "the revoked key is still accepted");
    let (status, body) = app.get_json("/metrics/latency", None).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = app.ingest(&[turn("x", "acme", "c", -1_000, 1.0)], None).await;
    assert_error(status, &body, 401, "unauthorized");
    app.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_key() {
    let Keyed { app, .. } = spawn_keyed_app().await;
    let (status, body) = app.get_json("/healthz", None).await;
    assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
    let (status, body) = app.get_json("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["store"], "sqlite", "{body}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_unknown_route_is_answered_404_with_a_json_error() {
    let Keyed { app, admin, .. } = spawn_keyed_app().await;
    for key in [None, admin.secret()] {
        let (status, body) = app.get_json("/v1/nothing-here", key).await;
        assert_error(status, &body, 404, "not_found");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn an_open_server_on_loopback_needs_no_key() {
    let app = spawn_app().await;
    let (status, report) = app.ingest(&[turn("t1", "acme", "c", -1_000, 1.0)], None).await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(app.latency_count("", Some(NEVER_ISSUED)).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_answered_405_with_a_json_error() {
    let app = spawn_app().await;
    let response = app.get("/v1/events", None).await;
    assert_eq!(response.headers().get("allow").map(|v| v.as_bytes()), Some(&b"POST"[..]));
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 405, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    app.shutdown().await;
}

//! `spawn_app()`: a real voicemon on a random loopback port with a fresh data directory.

use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use voicemon_core::access::{hash_key, Role};
use voicemon_core::clock::ManualClock;
use voicemon_server::limits::LimitsConfig;
use voicemon_server::startup::{Application, ServeConfig};
use voicemon_store::sqlite::{Durability, SqliteStore};
use voicemon_store::{KeyStore, NewApiKey};

/// 2026-11-27T12:00:00Z, the clock every test app starts at.
pub const NOW_MS: i64 = 1_795_780_800_000;
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns an app after letting the test adjust its configuration.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    spawn_app_in(data_dir, adjust).await
}

/// Spawns an app over an existing data directory (keys created in it beforehand are
/// loaded at start). Listens on loopback unless the test asks otherwise.
pub async fn spawn_app_in(data_dir: tempfile::TempDir, adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let mut config = ServeConfig::new(data_dir.path().to_owned());
    config.port = 0;
    config.bind = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    config.limits = limits_no_test_reaches();
    adjust(&mut config);
    let clock = ManualClock::at(NOW_MS);
    let app = Application::build(config, Arc::new(clock.clone())).await.expect("the app builds");
    let mut local = app.local_addr();
    if local.ip().is_unspecified() {
        local.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let address = format!("http://{local}");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    TestApp { address, client, clock, data_dir, stop: Some(stop), server: Some(server) }
}

/// The test clock stands still, so a bucket never refills: apps of tests that are not
/// about rate limits get buckets no test empties (`limits.rs` sets its own).
pub fn limits_no_test_reaches() -> LimitsConfig {
    let most = |n: u32| std::num::NonZeroU32::new(n).expect("above 0");
    LimitsConfig {
        ingest_events_per_second: most(1_000_000),
        ingest_burst: most(u32::MAX),
        query_requests_per_second: most(1_000_000),
        query_burst: most(u32::MAX),
        refusal_hold: std::time::Duration::ZERO,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the server gracefully and waits for it (and its writer) to finish.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("the server task").expect("the server stops cleanly");
        }
        self.data_dir
    }

    pub async fn post_ndjson(&self, lines: &[Value], key: Option<&str>) -> reqwest::Response {
        let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
        self.post_body(body, Some("application/x-ndjson"), key).await
    }

    /// Posts a raw body to `/v1/events` with the given content type.
    pub async fn post_body(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
        key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url("/v1/events")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("the request is sent")
    }

    /// Posts events and returns the status and the JSON answer.
    pub async fn ingest(&self, lines: &[Value], key: Option<&str>) -> (u16, Value) {
        let response = self.post_ndjson(lines, key).await;
        status_and_json(response).await
    }

    /// Posts events that must all be accepted.
    pub async fn ingest_ok(&self, lines: &[Value]) {
        let (status, report) = self.ingest(lines, None).await;
        assert_eq!(status, 202, "{report}");
        assert_eq!(report["rejected"], json!([]), "{report}");
    }

    pub async fn get(&self, path_and_query: &str, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path_and_query));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("the request is sent")
    }

    pub async fn get_json(&self, path_and_query: &str, key: Option<&str>) -> (u16, Value) {
        status_and_json(self.get(path_and_query, key).await).await
    }

    /// The value of one series of `GET /metrics` (`series` is its name and labels as
    /// exposed, e.g. `voicemon_ingest_writer_events`); 0 when it is absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status(), 200, "GET /metrics");
        let text = response.text().await.expect("metrics text");
        text.lines()
            .filter_map(|line| line.strip_prefix(series))
            .find_map(|rest| rest.strip_prefix(' ').and_then(|value| value.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// `overall.count` of a latency query that must succeed.
    pub async fn latency_count(&self, query: &str, key: Option<&str>) -> u64 {
        let (status, body) = self.get_json(&format!("/metrics/latency?{query}"), key).await;
        assert_eq!(status, 200, "{body}");
        body["overall"]["count"].as_u64().unwrap_or_else(|| panic!("a count in {body}"))
    }
}

pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("status {status}: body is not JSON ({err}): {text:?}"));
    (status, body)
}

/// Asserts the `{error: {code, message}}` shape of every API error.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, expected_code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], expected_code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "an error message in {body}");
}

/// RFC 3339 text for `NOW_MS + offset_ms`.
pub fn at(offset_ms: i64) -> String {
    voicemon_core::window::format_time(NOW_MS + offset_ms)
}

/// An event of `kind` with the envelope filled in and `fields` merged over it.
pub fn event(kind: &str, id: &str, tenant: &str, offset_ms: i64, fields: Value) -> Value {
    let mut event = json!({"id": id, "type": kind, "timestamp": at(offset_ms), "tenant_id": tenant});
    let object = event.as_object_mut().expect("an object");
    for (name, value) in fields.as_object().expect("fields are an object") {
        object.insert(name.clone(), value.clone());
    }
    event
}

/// A `turn.completed` with only its end-to-end latency.
pub fn turn(id: &str, tenant: &str, call: &str, offset_ms: i64, e2e_ms: f64) -> Value {
    event(
        "turn.completed",
        id,
        tenant,
        offset_ms,
        json!({"call_id": call, "turn_index": 0, "e2e_ms": e2e_ms}),
    )
}

/// The exact value at rank floor(q × (n − 1)) of `values`.
pub fn exact_quantile(values: &[f64], q: f64) -> f64 {
    assert!(!values.is_empty(), "a quantile of nothing");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// An API key created directly in the store of `data_dir`.
#[derive(Debug, Clone)]
pub struct TestKey {
    pub id: i64,
    pub secret: String,
}

impl TestKey {
    pub fn secret(&self) -> Option<&str> {
        Some(&self.secret)
    }
}

static NEXT_KEY: AtomicUsize = AtomicUsize::new(1);

/// Creates an API key in the store under `data_dir`. A running server sees it after its
/// next reload (at most a second after an unknown key is presented).
pub async fn create_key(data_dir: &Path, role: Role, tenant_id: Option<&str>) -> TestKey {
    let number = NEXT_KEY.fetch_add(1, Ordering::SeqCst);
    let secret = format!("vm_{number:06}_{}_test_secret", role.as_str());
    let store = open_store(data_dir);
    let key = store
        .create_key(NewApiKey {
            name: format!("test key {number}"),
            role,
            tenant_id: tenant_id.map(str::to_owned),
            prefix: secret[..9].to_owned(),
            key_hash: hash_key(&secret),
            created_ms: NOW_MS,
        })
        .await
        .expect("the key is created");
    TestKey { id: key.id, secret }
}

/// Revokes a key in the store under `data_dir`.
pub async fn revoke_key(data_dir: &Path, key: &TestKey) {
    open_store(data_dir).revoke_key(&key.id.to_string(), NOW_MS).await.expect("the key is revoked");
}

fn open_store(data_dir: &Path) -> SqliteStore {
    SqliteStore::open(data_dir, Durability::Full).expect("the store opens")
}

/// Retries `attempt` every 50 ms until it returns true, for at most `limit`.
/// Returns whether it ever did.
pub async fn eventually<F, Fut>(limit: Duration, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if attempt().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

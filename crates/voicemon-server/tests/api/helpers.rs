//! `spawn_app()`: a real voicemon on a random loopback port with a fresh data directory.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use voicemon_core::clock::ManualClock;
use voicemon_server::startup::{Application, ServeConfig};

/// 2026-11-27T12:00:00Z, the clock every test app starts at.
pub const NOW_MS: i64 = 1_795_780_800_000;

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

pub async fn spawn_app_in(data_dir: tempfile::TempDir, adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let mut config = ServeConfig::new(data_dir.path().to_owned());
    config.port = 0;
    adjust(&mut config);
    let clock = ManualClock::at(NOW_MS);
    let app = Application::build(config, Arc::new(clock.clone())).await.expect("the app builds");
    let address = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    TestApp { address, client, clock, data_dir, stop: Some(stop), server: Some(server) }
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

    pub async fn post_ndjson(&self, lines: &[serde_json::Value], key: Option<&str>) -> reqwest::Response {
        let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
        let mut request = self
            .client
            .post(self.url("/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.expect("the request is sent")
    }

    pub async fn get_json(&self, path_and_query: &str, key: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.client.get(self.url(path_and_query));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("the request is sent");
        let status = response.status().as_u16();
        let body = response.json().await.expect("a JSON body");
        (status, body)
    }
}

/// RFC 3339 text for `NOW_MS + offset_ms`.
pub fn at(offset_ms: i64) -> String {
    voicemon_core::window::format_time(NOW_MS + offset_ms)
}

//! What the binary's end-to-end tests share: a real `voicemon serve` on a free port.

#![allow(dead_code)]

pub mod proxy;
pub mod stand_in;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_voicemon");

/// A running `voicemon serve` on a free loopback port.
pub struct Server {
    child: Child,
    pub base: String,
    /// Every line it has logged so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `voicemon serve --port 0` on `data_dir`, with `config` when given (else from
    /// inside `data_dir`'s parent, where no voicemon.toml is), plus `extra` flags, and
    /// waits for the log line saying where it listens.
    pub fn start(data_dir: &Path, config: Option<&Path>, extra: &[&str]) -> Server {
        Server::start_with_env(data_dir, config, extra, &[])
    }

    /// [`Server::start`] with environment variables set (e.g. `DATABASE_URL`).
    pub fn start_with_env(
        data_dir: &Path,
        config: Option<&Path>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch(Command::new(BIN), data_dir, config, extra, env)
    }

    /// [`Server::start`] in a shell that first sets the open-file limit (soft and hard) to
    /// `open_files`, as `ulimit -n` does on a machine with that default.
    pub fn start_with_open_files(open_files: u64, data_dir: &Path, config: Option<&Path>) -> Server {
        let mut shell = Command::new("sh");
        shell.arg("-c").arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\"")).arg(BIN);
        Server::launch(shell, data_dir, config, &[], &[])
    }

    /// Runs `command` (the binary, or a launcher whose arguments end with it) as
    /// `serve --port 0` on `data_dir`.
    fn launch(
        mut command: Command,
        data_dir: &Path,
        config: Option<&Path>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        command.args(["serve", "--port", "0", "--data-dir"]).arg(data_dir);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        std::fs::create_dir_all(data_dir).expect("the data directory");
        let mut child = command
            .args(extra)
            .current_dir(data_dir.parent().unwrap_or(data_dir))
            .env("RUST_LOG", "info")
            .env_remove("VOICEMON_DATA_DIR")
            .env_remove("VOICEMON_CONFIG")
            .env_remove("METRICS_API_PORT")
            .env_remove("REDIS_URL")
            .env_remove("SLACK_WEBHOOK_URL")
            .env_remove("DATABASE_URL")
            .env_remove("NATS_URL")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .env_remove("PGSSLMODE")
            .env_remove("PGSSLROOTCERT")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("voicemon starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (found, address) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let logged = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = found.send(addr);
                }
                logged.lock().expect("the log").push(line);
            }
        });
        let addr = address.recv_timeout(Duration::from_secs(30)).expect("voicemon says where it listens");
        Server { child, base: format!("http://{addr}"), log }
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has logged so far (stderr), one line each.
    pub fn log(&self) -> String {
        self.log.lock().expect("the log").join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        self.child.wait().expect("voicemon exits")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs `events` as one NDJSON body to `server`; the answer must be 202.
pub async fn post_ndjson(
    client: &reqwest::Client,
    server: &Server,
    events: &[serde_json::Value],
) -> serde_json::Value {
    let body: String = events.iter().map(|e| e.to_string() + "\n").collect();
    let response = client
        .post(server.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("ingest answers");
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.expect("ingest answers JSON");
    assert_eq!(status, 202, "events stored: {answer}");
    answer
}

/// One series of `server`'s own `GET /metrics`, by its name and labels as exposed
/// (`voicemon_ingest_writer_events`, `voicemon_alerting_evaluations_total{outcome="ok"}`);
/// 0 when absent.
pub async fn metric(client: &reqwest::Client, server: &Server, series: &str) -> f64 {
    metric_with_key(client, server, None, series).await
}

/// [`metric`] with a key (a server with keys answers `/metrics` to an admin key).
pub async fn metric_with_key(
    client: &reqwest::Client,
    server: &Server,
    key: Option<&str>,
    series: &str,
) -> f64 {
    let mut request = client.get(server.url("/metrics"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("voicemon answers");
    assert!(response.status().is_success(), "GET /metrics: {}", response.status());
    let text = response.text().await.expect("the exposition");
    text.lines()
        .filter_map(|line| line.strip_prefix(series))
        .find_map(|rest| rest.strip_prefix(' ').and_then(|value| value.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Polls [`metric`] until it reaches `at_least` (an explicit signal instead of a guessed
/// sleep); fails the test after 30 s.
pub async fn wait_for_metric(client: &reqwest::Client, server: &Server, series: &str, at_least: f64) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let value = metric(client, server, series).await;
        if value >= at_least {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{series} stayed at {value}, below {at_least}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

/// RFC 3339 time `offset_ms` from now (negative: in the past).
pub fn time_from_now(offset_ms: i64) -> String {
    voicemon_core::window::format_time(now_ms() + offset_ms)
}

/// The PostgreSQL tests' server, from `VOICEMON_TEST_DATABASE_URL`; `None` (after saying
/// how to enable them) when unset.
pub fn postgres_url(suite: &str) -> Option<String> {
    match std::env::var("VOICEMON_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipping {suite}: set VOICEMON_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to run it"
            );
            None
        }
    }
}

/// A schema of its own in the test PostgreSQL, dropped when this is dropped.
pub struct TestSchema {
    admin_url: String,
    pub name: String,
}

impl TestSchema {
    pub fn create(admin_url: &str) -> TestSchema {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("vm_e2e_{}_{}_{n}", std::process::id(), now_ms() % 1_000_000_000);
        run_sql(admin_url, &format!("CREATE SCHEMA {name}"));
        TestSchema { admin_url: admin_url.to_owned(), name }
    }

    /// `DATABASE_URL` for a voicemon keeping its tables in this schema.
    pub fn url(&self) -> String {
        with_search_path(&self.admin_url, &self.name)
    }

    pub fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        let url = self.url();
        let sql = sql.to_owned();
        on_own_runtime(move || async move {
            let (client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connects");
            tokio::spawn(connection);
            client.query(&sql, &[]).await.expect("the query runs")
        })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        run_sql(&self.admin_url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// `url` with `options=-csearch_path=<schema>` added.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-csearch_path%3D{schema}")
}

fn run_sql(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_runtime(move || async move {
        let (client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap_or_else(|err| {
                panic!("VOICEMON_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {err}")
            });
        tokio::spawn(connection);
        client.batch_execute(&sql).await.expect("the statement runs");
    })
}

/// Runs an async block on a runtime of its own thread (callable from sync and async tests).
fn on_own_runtime<T, F, Fut>(work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(work())
    })
    .join()
    .expect("the database helper thread")
}

//! End-to-end tests of the real `voicemon` binary.

use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::{time_from_now, Server, BIN};

/// A batch of `size` turns for one tenant; every event has a unique id.
fn turns_ndjson(tenant: &str, size: usize) -> String {
    (0..size)
        .map(|i| {
            json!({"id": format!("{tenant}-{i}"), "type": "turn.completed", "timestamp": time_from_now(-1_000),
                   "tenant_id": tenant, "call_id": format!("{tenant}-call"), "turn_index": i, "e2e_ms": 500 + i})
            .to_string()
                + "\n"
        })
        .collect()
}

async fn post(
    client: &reqwest::Client,
    server_url: &str,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{server_url}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
}

async fn turn_count(client: &reqwest::Client, server: &Server, tenant: &str) -> u64 {
    let body: serde_json::Value = client
        .get(server.url(&format!("/metrics/latency?tenant_id={tenant}&from=2020-01-01T00:00:00Z")))
        .send()
        .await
        .expect("latency answers")
        .json()
        .await
        .expect("latency JSON");
    body["overall"]["count"].as_u64().expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), None, &[]);
    let client = reqwest::Client::new();
    let base = server.base.clone();
    // Four senders post distinct tenants' batches until the server dies under them.
    let mut senders = Vec::new();
    for sender in 0..4 {
        let client = client.clone();
        let base = base.clone();
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for batch in 0..10_000 {
                let tenant = format!("s{sender}-b{batch}");
                match post(&client, &base, turns_ndjson(&tenant, 50)).await {
                    Ok(response) if response.status().as_u16() == 202 => acknowledged.push(tenant),
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    // Killed once a few batches were acknowledged, while the senders keep posting.
    common::wait_for_metric(&client, &server, "voicemon_ingest_events_total{outcome=\"accepted\"}", 200.0)
        .await;
    server.kill();
    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    assert!(!acknowledged.is_empty(), "some batches were acknowledged before the kill");

    let server = Server::start(&data.path().join("data"), None, &[]);
    for tenant in &acknowledged {
        assert_eq!(turn_count(&client, &server, tenant).await, 50, "acknowledged batch {tenant} is complete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_a_lingering_group_and_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        &data.path().join("data"),
        None,
        &["--flush-linger", "30s", "--flush-interval", "60s", "--batch-max-events", "1000"],
    );
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { post(&client, &base, turns_ndjson("lingering", 7)).await.map(|r| r.status().as_u16()) }
    });
    // The writer says when the request's seven events wait in its lingering group.
    common::wait_for_metric(&client, &server, "voicemon_ingest_writer_events", 7.0).await;
    assert!(!pending.is_finished(), "the group lingers until shutdown");
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert_eq!(pending.await.unwrap().expect("the request completes"), 202);
    assert!(status.success(), "voicemon exits 0 on SIGTERM, got {status}");

    let server = Server::start(&data.path().join("data"), None, &[]);
    assert_eq!(turn_count(&client, &server, "lingering").await, 7);
}

fn voicemon(args: &[&str], data_dir: &Path) -> Output {
    Command::new(BIN).args(args).env("VOICEMON_DATA_DIR", data_dir).output().expect("voicemon runs")
}

#[test]
fn keys_are_created_listed_and_revoked_and_only_hashes_are_stored() {
    let data = tempfile::tempdir().unwrap();
    let created = voicemon(
        &["keys", "create", "--role", "ingest", "--tenant", "acme", "--name", "worker"],
        data.path(),
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let secret = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(secret.starts_with("vm_") && secret.len() == 67, "secret {secret}");

    let listed = voicemon(&["keys", "list"], data.path());
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listing.contains("ingest") && listing.contains("acme") && listing.contains("active"),
        "{listing}"
    );
    assert!(!listing.contains(&secret), "the secret is never listed");

    let database = std::fs::read(data.path().join("voicemon.sqlite3")).unwrap();
    let needle = &secret.as_bytes()[3..];
    assert!(!database.windows(needle.len()).any(|w| w == needle), "the secret is not stored");

    let prefix = &secret[..11];
    let revoked = voicemon(&["keys", "revoke", prefix], data.path());
    assert!(revoked.status.success());
    let listing = String::from_utf8(voicemon(&["keys", "list"], data.path()).stdout).unwrap();
    assert!(listing.contains("revoked"), "{listing}");
}

#[test]
fn a_read_key_without_a_tenant_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let output = voicemon(&["keys", "create", "--role", "read"], data.path());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs --tenant"));
}

#[test]
fn config_check_accepts_a_valid_file_and_names_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[server]\nport = 4000\n[ingest]\nflush_interval = \"2s\"\nbatch_max_events = 500\n",
    )
    .unwrap();
    let output = Command::new(BIN).args(["config", "check", "--config"]).arg(&good).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("4000") && text.contains("500") && text.contains("2s"), "{text}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nprot = 4000\n").unwrap();
    let output = Command::new(BIN).args(["config", "check", "--config"]).arg(&bad).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("prot"), "names the unknown key");

    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, "[ingest]\nflush_interval = \"soon\"\n").unwrap();
    let output = Command::new(BIN).args(["config", "check", "--config"]).arg(&wrong).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ingest.flush_interval"));
}

#[test]
fn config_check_prints_the_prometheus_label_bounds_and_the_series_they_allow() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voicemon.toml");
    std::fs::write(&file, "[prometheus]\nmax_tenants = 10\nmax_providers = 5\n").unwrap();
    let output = Command::new(BIN).args(["config", "check", "--config"]).arg(&file).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let limits = voicemon_server::telemetry::voice::PrometheusLimits { max_tenants: 10, max_providers: 5 };
    let expected = format!("max_tenants 10, max_providers 5: at most {} series", limits.worst_case_series());
    assert!(text.contains(&expected), "{text}");
}

/// `config check` in `dir` with `env` set (and the configuration variables of the test's
/// own environment removed) and `args` after it.
fn config_check_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = Command::new(BIN);
    command.current_dir(dir).args(["config", "check"]).args(args);
    for name in ["METRICS_API_PORT", "VOICEMON_BIND", "VOICEMON_DATA_DIR", "VOICEMON_CONFIG", "DATABASE_URL"]
    {
        command.env_remove(name);
    }
    for name in ["REDIS_URL", "SLACK_WEBHOOK_URL", "VOICEMON_ALLOWED_ORIGINS"] {
        command.env_remove(name);
    }
    let output = command.envs(env.iter().copied()).output().expect("voicemon runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The effective line of `key` in `config check`'s output: `key = value  # origin`.
fn effective_line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[test]
fn config_check_takes_each_setting_from_the_file_under_the_environment_under_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("voicemon.toml"),
        "[server]\nport = 4000\n[ingest]\nflush_interval = \"2s\"\n\
         [health]\nredis_url = \"redis://:FILEPASS@filehost:6379\"\n",
    )
    .unwrap();
    let environment = [("METRICS_API_PORT", "4001"), ("REDIS_URL", "redis://:ENVPASS@envhost:6379")];
    let flags =
        ["--port", "4002", "--flush-interval", "250ms", "--redis-url", "rediss://:FLAGPASS@flaghost:6380"];

    let from_file = config_check_in(dir.path(), &[], &[]);
    assert!(effective_line(&from_file, "port").starts_with("port = 4000 "), "{from_file}");
    assert!(effective_line(&from_file, "port").ends_with("# voicemon.toml"), "{from_file}");
    assert!(effective_line(&from_file, "flush_interval").contains("\"2s\""), "{from_file}");
    assert!(effective_line(&from_file, "redis_url").contains("\"redis://filehost:6379\""), "{from_file}");

    let from_environment = config_check_in(dir.path(), &environment, &[]);
    assert!(effective_line(&from_environment, "port").starts_with("port = 4001 "), "{from_environment}");
    assert!(effective_line(&from_environment, "port").ends_with("# METRICS_API_PORT"), "{from_environment}");
    let redis = effective_line(&from_environment, "redis_url");
    assert!(
        redis.contains("\"redis://envhost:6379\"") && redis.ends_with("# REDIS_URL"),
        "{from_environment}"
    );

    let from_flags = config_check_in(dir.path(), &environment, &flags);
    assert!(effective_line(&from_flags, "port").starts_with("port = 4002 "), "{from_flags}");
    assert!(effective_line(&from_flags, "port").ends_with("# --port"), "{from_flags}");
    let flush = effective_line(&from_flags, "flush_interval");
    assert!(flush.contains("\"250ms\"") && flush.ends_with("# --flush-interval"), "{from_flags}");
    let redis = effective_line(&from_flags, "redis_url");
    assert!(redis.contains("\"rediss://flaghost:6380\"") && redis.ends_with("# --redis-url"), "{from_flags}");
    assert!(effective_line(&from_flags, "flush_linger").ends_with("# default"), "{from_flags}");

    for text in [from_file, from_environment, from_flags] {
        for password in ["FILEPASS", "ENVPASS", "FLAGPASS"] {
            assert!(!text.contains(password), "{password} printed:\n{text}");
        }
    }
}

#[test]
fn allowed_origins_come_comma_separated_from_the_environment_or_from_repeated_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("voicemon.toml"), "").unwrap();
    let environment = [("VOICEMON_ALLOWED_ORIGINS", "https://a.example,https://b.example:8443")];
    let from_environment = config_check_in(dir.path(), &environment, &[]);
    let line = effective_line(&from_environment, "allowed_origins");
    assert!(
        line.contains(r#"["https://a.example", "https://b.example:8443"]"#)
            && line.ends_with("# VOICEMON_ALLOWED_ORIGINS"),
        "{from_environment}"
    );
    let flags = ["--allowed-origin", "https://c.example", "--allowed-origin", "http://d.example"];
    let from_flags = config_check_in(dir.path(), &environment, &flags);
    let line = effective_line(&from_flags, "allowed_origins");
    assert!(
        line.contains(r#"["https://c.example", "http://d.example"]"#) && line.ends_with("# --allowed-origin"),
        "{from_flags}"
    );
    let none = config_check_in(dir.path(), &[], &[]);
    assert!(effective_line(&none, "allowed_origins").starts_with("allowed_origins = []"), "{none}");
}

#[test]
fn config_check_names_the_flag_or_key_of_a_value_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voicemon.toml");
    std::fs::write(&file, "[alerting]\nrepeat_interval = \"often\"\n").unwrap();
    let output = Command::new(BIN).args(["config", "check", "--config"]).arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("alerting.repeat_interval") && stderr.contains("\"often\""), "{stderr}");

    std::fs::write(&file, "").unwrap();
    let output = Command::new(BIN)
        .args(["config", "check", "--batch-max-events", "0", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--batch-max-events must be above 0"));
}

#[test]
fn serve_refuses_a_broken_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("voicemon.toml");
    std::fs::write(&bad, "[nonsense]\n").unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--port", "0", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nonsense"));
}

//! Secrets never print: the real binary runs with passwords, a Slack webhook URL (its
//! secret is in the path), a webhook with credentials and API keys in its configuration,
//! every error path that can be provoked here is provoked, and what it printed is searched
//! for them.

mod common;

use common::{Server, BIN};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const SLACK_SECRET: &str = "SLACKPATHSECRET4e1b";
const WEBHOOK_PASSWORD: &str = "WEBHOOKPASS9a2f";
const REDIS_PASSWORD: &str = "REDISPASS77c3";
const DATABASE_PASSWORD: &str = "DBPASS51d0";
const API_KEY: &str = "vm_APIKEYSECRET0f9e";

const SECRETS: [&str; 5] = [SLACK_SECRET, WEBHOOK_PASSWORD, REDIS_PASSWORD, DATABASE_PASSWORD, API_KEY];

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} printed the secret {secret}:\n{text}");
    }
}

fn printed(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs the binary once with `args` and `env`, everything logged.
fn run(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "trace")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("SLACK_WEBHOOK_URL")
        .env_remove("VOICEMON_CONFIG")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("voicemon runs")
}

/// A configuration whose receivers and Redis carry secrets and lead nowhere on this
/// machine; with `plain`, also a clear-text receiver on another host (for `config check`
/// only: a serving voicemon would try to reach it).
fn write_config(dir: &Path, port: u16, plain: bool) -> std::path::PathBuf {
    let plain = if plain {
        format!("[[alerting.receiver]]\nname = \"plain\"\nkind = \"webhook\"\nurl = \"http://hooks.example.test/{SLACK_SECRET}\"\n")
    } else {
        String::new()
    };
    let text = format!(
        r#"[alerting]
evaluation_interval = "1s"
group_wait = "1s"

[[alerting.receiver]]
name = "slack"
kind = "slack"
url = "https://127.0.0.1:{port}/services/T0001/B0002/{SLACK_SECRET}"

[[alerting.receiver]]
name = "pager"
kind = "webhook"
url = "https://oncall:{WEBHOOK_PASSWORD}@127.0.0.1:{port}/hook"

{plain}
[health]
redis_url = "redis://monitor:{REDIS_PASSWORD}@127.0.0.1:{port}"
"#
    );
    let path = dir.join("voicemon.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

#[test]
fn config_check_validates_and_warns_without_printing_any_secret() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = closed_port();
    let config = write_config(dir.path(), port, true);
    let env = [
        ("SLACK_WEBHOOK_URL", format!("https://127.0.0.1:{port}/services/T9/B9/{SLACK_SECRET}")),
        (
            "DATABASE_URL",
            format!("postgres://voicemon:{DATABASE_PASSWORD}@127.0.0.1:{port}/metrics?sslmode=require"),
        ),
        ("REDIS_URL", format!("rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}")),
    ];
    let output = run(dir.path(), &["config", "check", "--config", config.to_str().expect("UTF-8")], &env);
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(
            "warning: receiver `plain` sends alerts over plain http:// to http://hooks.example.test/…"
        ),
        "{text}"
    );
    assert!(!text.contains("receiver `pager` sends"), "https:// is not warned about: {text}");
    assert!(
        text.contains("PostgreSQL postgresql://") || text.contains("PostgreSQL postgres://127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("(sslmode=require)"), "{text}");
    // The effective configuration shows where each secret came from, redacted.
    let line = |key: &str| {
        text.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or_else(|| panic!("{key}: {text}"))
    };
    let database = line("database_url");
    assert!(
        database.contains(&format!("\"postgres://127.0.0.1:{port}/metrics (sslmode=require)\""))
            && database.ends_with("# DATABASE_URL"),
        "{text}"
    );
    let redis = line("redis_url");
    assert!(
        redis.contains(&format!("\"rediss://127.0.0.1:{port}\"")) && redis.ends_with("# REDIS_URL"),
        "{text}"
    );
    let slack = line("slack_webhook_url");
    assert!(
        slack.contains(&format!("\"https://127.0.0.1:{port}/…\"")) && slack.ends_with("# SLACK_WEBHOOK_URL"),
        "{text}"
    );
    assert!(line("receiver").contains(&format!("pager (webhook, https://127.0.0.1:{port}/…)")), "{text}");
    assert_no_secret("config check", &text);
}

#[test]
fn bad_database_urls_are_refused_without_printing_the_password() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = closed_port();
    let urls = [
        // No root certificate for verify-full: refused before connecting.
        format!("postgres://voicemon:{DATABASE_PASSWORD}@127.0.0.1:{port}/metrics?sslmode=verify-full"),
        // Nothing listens there.
        format!("postgres://voicemon:{DATABASE_PASSWORD}@127.0.0.1:{port}/metrics?connect_timeout=2"),
        // Not a port.
        format!("postgres://voicemon:{DATABASE_PASSWORD}@127.0.0.1:notaport/metrics"),
        // Not PostgreSQL.
        format!("mysql://voicemon:{DATABASE_PASSWORD}@127.0.0.1:{port}/metrics"),
    ];
    for url in urls {
        for command in [&["migrate"][..], &["keys", "list"][..], &["serve", "--port", "0"][..]] {
            let output = run(dir.path(), command, &[("DATABASE_URL", url.clone())]);
            let text = printed(&output);
            assert!(!output.status.success(), "{command:?} with a bad DATABASE_URL fails: {text}");
            assert!(
                text.contains("DATABASE_URL") || text.contains("postgresql"),
                "{command:?} says why: {text}"
            );
            assert_no_secret(&format!("{command:?}"), &text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_voicemon_whose_receivers_and_redis_fail_never_logs_a_secret() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = closed_port();
    let config = write_config(dir.path(), port, false);
    let slack = format!("https://127.0.0.1:{port}/services/T9/B9/{SLACK_SECRET}");
    let server = Server::start_with_env(
        &dir.path().join("data"),
        Some(&config),
        &[],
        &[("SLACK_WEBHOOK_URL", &slack), ("RUST_LOG", "trace")],
    );

    // Slow turns: the latency alert fires and every receiver is tried and fails.
    let now = common::now_ms();
    let events: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            serde_json::json!({"id": format!("secret-{i}"), "type": "turn.completed",
                "timestamp": voicemon_core::window::format_time(now - 2_000 - i * 100),
                "tenant_id": "t-secrets", "call_id": "c-1", "turn_index": i, "e2e_ms": 1500})
        })
        .collect();
    let client = reqwest::Client::new();
    let answer = client.post(server.url("/v1/events")).json(&events).send().await.expect("ingest answers");
    assert_eq!(answer.status(), 202);
    // A wrong key, in the header and in the query, is refused without being echoed.
    let answer = client.get(server.url("/alerts")).bearer_auth(API_KEY).send().await.expect("answers");
    let body = answer.text().await.unwrap_or_default();
    assert_no_secret("an answer to a bad key", &body);

    let deadline = Instant::now() + Duration::from_secs(30);
    let failures = ["pager", "slack"];
    loop {
        let log = server.log();
        let tried = failures.iter().all(|name| {
            log.lines().any(|l| l.contains("alert notification will be retried") && l.contains(name))
        });
        if tried && log.contains("the platform's Redis cannot be polled") {
            break;
        }
        assert!(Instant::now() < deadline, "every receiver and Redis failed at least once:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let history: serde_json::Value =
        client.get(server.url("/alerts/history")).send().await.expect("answers").json().await.expect("JSON");
    let health =
        client.get(server.url("/metrics/health")).send().await.expect("answers").text().await.unwrap();
    assert_no_secret("the alert history", &history.to_string());
    assert_no_secret("the health report", &health);
    assert_no_secret("the log", &server.log());
}

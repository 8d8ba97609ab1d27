//! End-to-end tests of cost tracking with the real `voicemon` binary: the price book in
//! `voicemon.toml` as `config check` and `serve` judge it, and `voicemon reprice` on a
//! store a real server wrote.

use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{post_ndjson, time_from_now, Server, BIN};

/// A `[[pricing.price]]` entry for STT.
fn stt_price(provider: &str, model: &str, from: &str, extra: &str) -> String {
    format!(
        "[[pricing.price]]\ncomponent = \"stt\"\nprovider = \"{provider}\"\nmodel = \"{model}\"\n\
         effective_from = \"{from}\"\n{extra}\n"
    )
}

/// Writes `text` as a `voicemon.toml` in `dir`.
fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("config written");
    path
}

fn config_check(config: &Path) -> Output {
    Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(config)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("voicemon runs")
}

/// Runs `config check` on a file that must be refused; returns its stderr.
fn refused_by_config_check(config: &Path) -> String {
    let output = config_check(config);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "config check accepted {}:\n{}",
        config.display(),
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// A price for a model the shipped book does not know, one for a model it does (with the
/// default's own `effective_from`, so it replaces that entry), both valid.
const VALID_OVERRIDES: &str = r#"
[[pricing.price]]
component = "stt"
provider = "acme-stt"
model = "x1"
effective_from = "2020-01-01"
per_audio_minute = "0.012"
billing_increment_seconds = 15
minimum_billed_seconds = 30
source = "acme contract 2026-001"

[[pricing.price]]
component = "stt"
provider = "deepgram"
model = "nova-3"
effective_from = "2025-01-01"
per_audio_minute = "0.0065"
source = "our Deepgram contract"
"#;

/// Files the price book must refuse, with words the refusal must contain.
fn bad_price_books() -> Vec<(&'static str, String, Vec<&'static str>)> {
    vec![
        (
            "negative.toml",
            stt_price("acme-stt", "x1", "2026-01-01", "per_audio_minute = \"-0.01\""),
            vec!["price #1", "acme-stt x1", "per_audio_minute", "negative"],
        ),
        (
            "negative-number.toml",
            stt_price("acme-stt", "x1", "2026-01-01", "per_audio_minute = -0.01"),
            vec!["per_audio_minute", "negative"],
        ),
        (
            "unknown-unit.toml",
            stt_price("acme-stt", "x1", "2026-01-01", "per_audio_hour = \"0.60\""),
            vec!["unknown field `per_audio_hour`"],
        ),
        (
            "unit-of-another-component.toml",
            stt_price("acme-stt", "x1", "2026-01-01", "per_million_characters = \"30\""),
            vec!["price #1", "unit `per_million_characters` does not apply to stt"],
        ),
        (
            // The shipped book prices deepgram/nova-3 from 2025-01-01, open-ended.
            "overlaps-a-default.toml",
            stt_price(
                "deepgram",
                "nova-3",
                "2024-06-01",
                "effective_to = \"2025-03-01\"\nper_audio_minute = \"0.0065\"",
            ),
            vec!["overlap", "stt/deepgram/nova-3@2024-06-01", "stt/deepgram/nova-3@2025-01-01"],
        ),
        (
            "overlapping-overrides.toml",
            stt_price(
                "acme-stt",
                "x1",
                "2026-01-01",
                "effective_to = \"2026-07-01\"\nper_audio_minute = \"0.01\"",
            ) + &stt_price("acme-stt", "x1", "2026-03-01", "per_audio_minute = \"0.02\""),
            vec!["overlap", "stt/acme-stt/x1@2026-01-01", "stt/acme-stt/x1@2026-03-01"],
        ),
    ]
}

#[test]
fn config_check_refuses_a_bad_price_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, words) in bad_price_books() {
        let stderr = refused_by_config_check(&write_config(dir.path(), name, &text));
        for word in words {
            assert!(stderr.contains(word), "{name}: the refusal names `{word}`:\n{stderr}");
        }
    }
}

#[test]
fn config_check_refuses_two_overrides_for_the_same_model_from_the_same_day() {
    // Two prices for one model in force at once: which one applies cannot be told.
    let dir = tempfile::tempdir().unwrap();
    let text = stt_price("acme-stt", "x1", "2026-01-01", "per_audio_minute = \"0.01\"")
        + &stt_price("acme-stt", "x1", "2026-01-01", "per_audio_minute = \"0.02\"");
    let stderr = refused_by_config_check(&write_config(dir.path(), "same-day.toml", &text));
    assert!(stderr.contains("overlap") && stderr.contains("stt/acme-stt/x1@2026-01-01"), "{stderr}");
}

#[test]
fn a_price_book_problem_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = stt_price("acme-stt", "x1", "2026-01-01", "per_audio_minute = \"-0.01\"");
    let stderr = refused_by_config_check(&write_config(dir.path(), "negative.toml", &text));
    assert_eq!(stderr.matches("is negative").count(), 1, "the message is not repeated:\n{stderr}");
}

#[test]
fn config_check_accepts_valid_overrides_and_prints_the_price_book_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = config_check(&write_config(dir.path(), "voicemon.toml", VALID_OVERRIDES));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.lines().find(|l| l.trim_start().starts_with("price book:")).expect("a price book line");
    assert!(line.contains("check them against your contracts"), "{line}");
    // "price book: 15 entries (14 shipped defaults, 2 from this file); …"
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [entries, defaults, from_file] = numbers[..] else { panic!("three counts in {line}") };
    assert_eq!(from_file, 2, "{line}");
    assert!(defaults > 0, "{line}");
    assert_eq!(entries, defaults + 1, "acme-stt/x1 is added, deepgram/nova-3 replaced: {line}");
}

/// Runs `voicemon serve` with `config`, expecting it to exit on its own.
fn serve_until_exit(config: &Path, data_dir: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env("RUST_BACKTRACE", "0")
        .env_remove("METRICS_API_PORT")
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("voicemon starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("voicemon serve started with the bad price book {}", config.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn serve_refuses_to_start_with_a_bad_price_book() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, words) in bad_price_books() {
        let data = tempfile::tempdir().unwrap();
        let (status, stderr) = serve_until_exit(&write_config(dir.path(), name, &text), data.path());
        assert!(!status.success(), "{name}: serve exits non-zero, got {status}");
        assert!(!stderr.contains("listening on"), "{name}: serve never listens:\n{stderr}");
        for word in words {
            assert!(stderr.contains(word), "{name}: the refusal names `{word}`:\n{stderr}");
        }
    }
}

#[test]
fn reprice_refuses_a_bad_price_book() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, words) in bad_price_books() {
        let output = Command::new(BIN)
            .args(["reprice", "--from", "2026-01-01", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(write_config(dir.path(), name, &text))
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("voicemon runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}: reprice exits non-zero");
        assert!(String::from_utf8_lossy(&output.stdout).is_empty(), "{name}: no summary");
        for word in words {
            assert!(stderr.contains(word), "{name}: the refusal names `{word}`:\n{stderr}");
        }
    }
}

async fn call_cost(client: &reqwest::Client, server: &Server, call_id: &str) -> Value {
    let response = client
        .get(server.url(&format!("/metrics/cost?call_id={call_id}")))
        .send()
        .await
        .expect("cost answers");
    assert_eq!(response.status().as_u16(), 200, "call {call_id} is known");
    response.json().await.expect("cost JSON")
}

fn nano_usd(amount: &Value) -> i64 {
    amount["nano_usd"].as_i64().unwrap_or_else(|| panic!("an amount, got {amount}"))
}

/// The value after `label:` in `voicemon reprice`'s summary.
fn summary_value<'a>(summary: &'a str, label: &str) -> &'a str {
    summary
        .lines()
        .find_map(|line| line.strip_prefix(label).and_then(|rest| rest.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("`{label}` in the summary:\n{summary}"))
}

fn reprice(data_dir: &Path, config: &Path, from: &str, tenant: &str) -> (String, String) {
    let output = Command::new(BIN)
        .args(["reprice", "--from", from, "--tenant", tenant, "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env("RUST_BACKTRACE", "0")
        .env_remove("VOICEMON_DATA_DIR")
        .output()
        .expect("voicemon runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "reprice succeeds:\n{stdout}{stderr}");
    (stdout, stderr)
}

/// One call with two `acme-stt/x1` lines (unpriced by the shipped book) and one
/// `deepgram/nova-3` line (priced by it), ended after 120 s.
fn unpriced_call(tenant: &str, call_id: &str) -> Vec<Value> {
    let envelope = |id: &str, kind: &str, ago_ms: i64| {
        json!({"id": format!("{call_id}-{id}"), "type": kind, "timestamp": time_from_now(-ago_ms),
               "tenant_id": tenant, "call_id": call_id})
    };
    let with = |mut event: Value, fields: Value| {
        event.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        event
    };
    vec![
        with(envelope("start", "call.started", 240_000), json!({"channel": "phone"})),
        with(
            envelope("stt-1", "stt.usage", 200_000),
            json!({"provider": "acme-stt", "model": "x1", "audio_seconds": 61.2}),
        ),
        with(
            envelope("stt-2", "stt.usage", 180_000),
            json!({"provider": "acme-stt", "model": "x1", "audio_seconds": 3.0}),
        ),
        with(
            envelope("stt-3", "stt.usage", 170_000),
            json!({"provider": "deepgram", "model": "nova-3", "audio_seconds": 5.07}),
        ),
        with(envelope("end", "call.ended", 120_000), json!({"duration_s": 120.0, "status": "completed"})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprice_prices_past_usage_once_and_the_server_answers_the_new_cost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let client = reqwest::Client::new();

    // The shipped book has no price for acme-stt/x1: its lines are stored unpriced.
    let server = Server::start(&data, None, &[]);
    let accepted = post_ndjson(&client, &server, &unpriced_call("acme-dental", "call-x1")).await;
    assert_eq!(accepted["accepted"], 5, "{accepted}");
    post_ndjson(&client, &server, &unpriced_call("other-tenant", "call-other")).await;
    let before = call_cost(&client, &server, "call-x1").await;
    assert_eq!(before["unpriced_lines"], 2, "{before}");
    // nova-3 at the list $0.0077/min, 1 s blocks: 5.07 s → 6 s → 770 000 nano-USD.
    assert_eq!(nano_usd(&before["total"]), 770_000, "{before}");
    let stopped = server.terminate();
    assert!(stopped.success(), "voicemon exits 0 on SIGTERM, got {stopped}");

    // Only the new acme-stt/x1 price: the nova-3 line keeps its list price.
    let prices = write_config(
        dir.path(),
        "voicemon.toml",
        &stt_price(
            "acme-stt",
            "x1",
            "2020-01-01",
            "per_audio_minute = \"0.012\"\nbilling_increment_seconds = 15\nminimum_billed_seconds = 30",
        ),
    );
    let from = &time_from_now(-24 * 60 * 60 * 1000)[..10];
    let (summary, progress) = reprice(&data, &prices, from, "acme-dental");
    // $0.012/min in 15 s blocks, 30 s minimum: 61.2 s → 75 s → $0.015; 3 s → 30 s → $0.006.
    assert_eq!(summary_value(&summary, "usage lines examined"), "3", "{summary}");
    assert_eq!(summary_value(&summary, "lines changed"), "2", "{summary}");
    assert_eq!(summary_value(&summary, "newly priced"), "2", "{summary}");
    assert_eq!(summary_value(&summary, "newly unpriced"), "0", "{summary}");
    assert_eq!(summary_value(&summary, "cost before"), "$0.00077", "{summary}");
    assert_eq!(summary_value(&summary, "cost after"), "$0.02177", "{summary}");
    assert_eq!(summary_value(&summary, "difference"), "$0.021", "{summary}");
    assert!(progress.contains("100%") && progress.contains("3/3 usage lines"), "progress: {progress}");

    let (again, _) = reprice(&data, &prices, from, "acme-dental");
    assert_eq!(summary_value(&again, "usage lines examined"), "3", "{again}");
    assert_eq!(summary_value(&again, "lines changed"), "0", "a second run changes nothing:\n{again}");
    assert_eq!(summary_value(&again, "newly priced"), "0", "{again}");
    assert_eq!(summary_value(&again, "difference"), "$0.00", "{again}");

    let server = Server::start(&data, Some(&prices), &[]);
    let after = call_cost(&client, &server, "call-x1").await;
    assert_eq!(after["unpriced_lines"], 0, "{after}");
    assert_eq!(nano_usd(&after["total"]), 21_770_000, "{after}");
    // 21 770 000 nano-USD over 2 minutes.
    assert_eq!(nano_usd(&after["cost_per_minute"]), 10_885_000, "{after}");
    let x1_lines: Vec<&Value> =
        after["lines"].as_array().unwrap().iter().filter(|line| line["provider"] == "acme-stt").collect();
    let costs: Vec<i64> = x1_lines.iter().map(|line| nano_usd(&line["cost"])).collect();
    assert_eq!(costs, [15_000_000, 6_000_000], "{after}");
    for line in x1_lines {
        assert_eq!(line["price_ref"], "stt/acme-stt/x1@2020-01-01", "{line}");
        assert_eq!(line["unit_price"], "$0.012/audio min, 15 s blocks, 30 s minimum", "{line}");
        assert_eq!(line["unpriced"], false, "{line}");
    }
    // --tenant kept the other tenant's usage as it was.
    let other = call_cost(&client, &server, "call-other").await;
    assert_eq!(other["unpriced_lines"], 2, "{other}");
    assert_eq!(nano_usd(&other["total"]), 770_000, "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_token_count_never_becomes_a_negative_cost() {
    // Validation takes token counts up to 2^64 − 1. 10^15 output tokens at gpt-4o's list
    // $10/M is $10^10: more nano-USD than an i64 holds. The line may be refused or left
    // unpriced, but its cost must never be stored wrapped around to a negative amount.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None, &[]);
    let client = reqwest::Client::new();
    let event = json!({"id": "huge-1", "type": "llm.usage", "timestamp": time_from_now(-60_000),
                       "tenant_id": "acme-dental", "call_id": "call-huge", "provider": "openai",
                       "model": "gpt-4o", "input_tokens": 0, "output_tokens": 1_000_000_000_000_000u64});
    let response = client
        .post(server.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(event.to_string())
        .send()
        .await
        .expect("ingest answers");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("ingest JSON");
    if status != 202 || answer["accepted"] == 0 {
        return; // refused: acceptable
    }
    let cost = call_cost(&client, &server, "call-huge").await;
    for line in cost["lines"].as_array().unwrap() {
        if !line["cost"].is_null() {
            assert!(nano_usd(&line["cost"]) >= 0, "a line cost is negative: {line}");
        }
    }
    assert!(nano_usd(&cost["total"]) >= 0, "the call total is negative: {cost}");
}

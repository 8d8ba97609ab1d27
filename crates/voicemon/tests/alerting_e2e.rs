//! End-to-end tests of alerting with the real `voicemon` binary: rules evaluated every
//! second against events it ingested, notifications delivered over HTTPS to local
//! stand-ins for a Slack incoming webhook and a Prometheus Alertmanager
//! ([`common::stand_in`]), whose certificates a test CA signs. voicemon trusts that CA
//! through `SSL_CERT_FILE`, as an operator adds a private CA; without it nothing is sent.
//!
//! The `voicemon alerts` command line is run as the real binary against a real server.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use voicemon_core::window::parse_time;

mod common;

use common::stand_in::{Received, Reply, StandIn};
use common::tls::TestCa;
use common::{now_ms, time_from_now, Server, BIN};

/// How long any awaited outcome may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Stored alert evaluations, from voicemon's own `/metrics`.
const EVALUATIONS: &str = "voicemon_alerting_evaluations_total{outcome=\"ok\"}";

/// Reads of the outbox by the dispatcher that found nothing due to send.
const IDLE_DISPATCH_ROUNDS: &str = "voicemon_notify_dispatch_rounds_total{outcome=\"idle\"}";

/// Evaluations that [`Setup::settled`] waits for. The first may be the one that was being
/// stored when it was called; the third begins an interval (1 s) after the second, so more
/// than `group_wait` (1 s) after anything that fired before the call.
const SETTLING_EVALUATIONS: f64 = 3.0;

// ------------------------------------------------------------------ what the stand-ins saw

/// The texts of a Block Kit message's header blocks (`… FIRING: rule (severity, n)`).
fn slack_headings(message: &Value) -> Vec<String> {
    message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|block| block["type"] == "header")
        .filter_map(|block| block["text"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// The accepted Slack messages with a `title` (FIRING or RESOLVED) heading for `rule`.
fn slack_messages(slack: &StandIn, title: &str, rule: &str) -> Vec<Received> {
    let wanted = format!("{title}: {rule} (");
    slack
        .received()
        .into_iter()
        .filter(|r| r.accepted() && slack_headings(&r.body).iter().any(|h| h.contains(&wanted)))
        .collect()
}

/// Every request to Slack (accepted or not) whose message speaks of `rule`.
fn slack_requests_for(slack: &StandIn, rule: &str) -> Vec<Received> {
    let wanted = format!(": {rule} (");
    slack
        .received()
        .into_iter()
        .filter(|r| slack_headings(&r.body).iter().any(|h| h.contains(&wanted)))
        .collect()
}

/// The mrkdwn texts of a message's section blocks.
fn slack_sections(message: &Value) -> Vec<String> {
    message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|block| block["type"] == "section")
        .filter_map(|block| block["text"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// The text of a message's last context block (the link line).
fn slack_footer(message: &Value) -> String {
    let blocks = message["blocks"].as_array().cloned().unwrap_or_default();
    let last = blocks.last().cloned().unwrap_or_default();
    assert_eq!(last["type"], "context", "a message ends with its link line: {message:#}");
    last["elements"][0]["text"].as_str().unwrap_or_default().to_owned()
}

/// Every alert of `rule` posted to the Alertmanager's `/api/v2/alerts`, with its arrival.
fn alertmanager_alerts(alertmanager: &StandIn, rule: &str) -> Vec<(Instant, Value)> {
    alertmanager
        .received()
        .into_iter()
        .filter(|r| r.path == "/api/v2/alerts")
        .flat_map(|r| {
            let at = r.at;
            r.body.as_array().cloned().unwrap_or_default().into_iter().map(move |alert| (at, alert))
        })
        .filter(|(_, alert)| alert["labels"]["alertname"] == rule)
        .collect()
}

/// Polls `probe` until it gives a value; fails the test after [`PATIENCE`].
async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------ voicemon

/// A `voicemon.toml` with fast alerting and the two stand-ins as receivers.
fn write_config(dir: &Path, slack: &StandIn, alertmanager: &StandIn) -> PathBuf {
    let text = format!(
        r#"[alerting]
evaluation_interval = "1s"
group_wait = "1s"
public_url = "https://voicemon.example"

[[alerting.receiver]]
name = "slack"
kind = "slack"
url = "{slack}"

[[alerting.receiver]]
name = "alertmanager"
kind = "alertmanager"
url = "{alertmanager}"
"#,
        slack = slack.webhook_url(),
        alertmanager = alertmanager.base,
    );
    let path = dir.join("voicemon.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// `voicemon serve` trusting the test CA that signed the stand-ins' certificates.
fn serve(data: &Path, config: &Path) -> Server {
    let ca = TestCa::shared().ca_file.to_str().expect("a UTF-8 path").to_owned();
    Server::start_with_env(data, Some(config), &[], &[("SSL_CERT_FILE", &ca)])
}

/// `voicemon serve` trusting only the system's store, which does not know the test CA.
fn serve_untrusting(data: &Path, config: &Path) -> Server {
    Server::start(data, Some(config), &[])
}

/// A voicemon serving with the stand-ins as receivers, and what it needs to restart.
struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    server: Server,
    client: reqwest::Client,
}

impl Setup {
    fn start(slack: &StandIn, alertmanager: &StandIn) -> Setup {
        Setup::start_with(slack, alertmanager, serve)
    }

    fn start_with(slack: &StandIn, alertmanager: &StandIn, serve: fn(&Path, &Path) -> Server) -> Setup {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        let config = write_config(dir.path(), slack, alertmanager);
        let server = serve(&data, &config);
        Setup { _dir: dir, data, config, server, client: reqwest::Client::new() }
    }

    /// Stops voicemon with SIGTERM and starts it again on the same data and config.
    async fn restart(self) -> Setup {
        self.restart_after(|| ()).await
    }

    /// Stops voicemon with SIGTERM, does `while_stopped`, and starts it again on the same
    /// data and config.
    async fn restart_after(self, while_stopped: impl FnOnce()) -> Setup {
        let Setup { _dir, data, config, server, client } = self;
        let status = tokio::task::spawn_blocking(move || server.terminate()).await.expect("terminated");
        assert!(status.success(), "voicemon exits 0 on SIGTERM, got {status}");
        while_stopped();
        let server = serve(&data, &config);
        Setup { _dir, data, config, server, client }
    }

    async fn send(&self, events: &[Value]) {
        let response = self
            .client
            .post(self.server.url("/v1/events"))
            .json(events)
            .send()
            .await
            .expect("ingest answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("ingest answers JSON");
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["rejected"], json!([]), "every event is valid: {body}");
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.client.get(self.server.url(path)).send().await.expect("voicemon answers");
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.expect("a JSON answer")
    }

    /// The firing alerts of `rule` in `GET /alerts`.
    async fn firing(&self, rule: &str) -> Vec<Value> {
        let alerts = self.get("/alerts").await;
        alerts["firing"].as_array().into_iter().flatten().filter(|a| a["rule"] == rule).cloned().collect()
    }

    /// Polls `GET {path}` until `accept` takes the answer.
    async fn wait_for_answer(&self, what: &str, path: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let answer = self.get(path).await;
            if accept(&answer) {
                return answer;
            }
            assert!(Instant::now() < deadline, "gave up waiting for {what}; last answer: {answer:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Returns once voicemon has had its chance to send whatever was due by the time of the
    /// call, as its own metrics say: [`SETTLING_EVALUATIONS`] more evaluations stored (so
    /// such a message is in the outbox), then two reads of the outbox that found nothing
    /// due (the first may have begun before that last evaluation was stored), so it was
    /// sent or given up. What a receiver got after that, it got for good.
    async fn settled(&self) {
        let (client, server) = (&self.client, &self.server);
        let evaluations = common::metric(client, server, EVALUATIONS).await;
        common::wait_for_metric(client, server, EVALUATIONS, evaluations + SETTLING_EVALUATIONS).await;
        let idle_rounds = common::metric(client, server, IDLE_DISPATCH_ROUNDS).await;
        common::wait_for_metric(client, server, IDLE_DISPATCH_ROUNDS, idle_rounds + 2.0).await;
    }

    /// The kinds of the history entries of `rule`, oldest first.
    async fn history_kinds(&self, rule: &str) -> Vec<String> {
        let history = self.get(&format!("/alerts/history?rule={rule}")).await;
        let mut kinds: Vec<String> = history["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["kind"].as_str().map(str::to_owned))
            .collect();
        kinds.reverse();
        kinds
    }

    /// History entries of `rule` of one kind.
    async fn history_entries(&self, rule: &str, kind: &str) -> Vec<Value> {
        let history = self.get(&format!("/alerts/history?rule={rule}")).await;
        history["entries"].as_array().into_iter().flatten().filter(|e| e["kind"] == kind).cloned().collect()
    }
}

// ------------------------------------------------------------------ the command line

/// Runs the real `voicemon` with `args`, away from any VOICEMON_URL or key in the environment.
async fn voicemon(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("VOICEMON_URL")
            .env_remove("VOICEMON_API_KEY")
            .output()
            .expect("voicemon runs")
    })
    .await
    .expect("the command ran")
}

/// Runs `voicemon alerts …` against `setup`'s server and gives its stdout; fails the test
/// unless it exits 0.
async fn alerts_cli(setup: &Setup, args: &[&str]) -> String {
    let mut all = vec!["alerts", "--url", setup.server.base.as_str()];
    all.extend_from_slice(args);
    let output = voicemon(&all).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "voicemon {all:?} exits 0, got {}; stdout: {stdout}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The heading (`FIRING (1)`) and lines of one section of `alerts list`'s output.
fn listing_section<'a>(listing: &'a str, title: &str) -> (&'a str, Vec<&'a str>) {
    let mut lines = listing.lines().skip_while(|l| !l.starts_with(&format!("{title} (")));
    let heading = lines.next().unwrap_or_else(|| panic!("a {title} section in {listing:?}"));
    (heading, lines.take_while(|l| l.starts_with(' ')).collect())
}

// ------------------------------------------------------------------ events

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// An event of `kind` for `tenant`, stamped `offset_ms` from now, with `fields` on top.
fn event(kind: &str, tenant: &str, offset_ms: i64, fields: Value) -> Value {
    let id = format!("alerting-e2e-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let mut event =
        json!({"id": id, "type": kind, "timestamp": time_from_now(offset_ms), "tenant_id": tenant});
    let fields = fields.as_object().cloned().unwrap_or_default();
    event.as_object_mut().expect("an object").extend(fields);
    event
}

/// Twenty turns that took 1.5 s each, in the last minute: P95 ≈ 1500 ms > 800 ms.
fn slow_turns(tenant: &str) -> Vec<Value> {
    (0..20)
        .map(|i| {
            let fields = json!({"call_id": format!("{tenant}-call"), "turn_index": i, "e2e_ms": 1500});
            event("turn.completed", tenant, -2_000 - i * 500, fields)
        })
        .collect()
}

/// gpt-4o usage of `output_tokens` output tokens at $10 per million (no input).
fn gpt4o_usage(tenant: &str, call: &str, output_tokens: u64) -> Value {
    let fields = json!({"call_id": call, "provider": "openai", "model": "gpt-4o",
                        "input_tokens": 0, "output_tokens": output_tokens});
    event("llm.usage", tenant, -30_000, fields)
}

fn call_ended(tenant: &str, call: &str, duration_s: f64) -> Value {
    event(
        "call.ended",
        tenant,
        -1_000,
        json!({"call_id": call, "duration_s": duration_s, "status": "completed"}),
    )
}

fn breaker(tenant: &str, name: &str, state: &str, offset_ms: i64) -> Value {
    event("circuit_breaker.changed", tenant, offset_ms, json!({"breaker": name, "state": state}))
}

fn heartbeat(tenant: &str, worker: &str, memory_percent: u64) -> Value {
    let fields = json!({"worker_id": worker, "memory_used_bytes": memory_percent * 10_000_000,
                        "memory_limit_bytes": 1_000_000_000u64, "cpu_percent": 40.0, "active_calls": 2});
    event("worker.heartbeat", tenant, -500, fields)
}

/// Six requests to `provider`, four of them failed, every minute of the last four: down
/// since at least 225 s ago.
fn failing_provider(tenant: &str, provider: &str) -> Vec<Value> {
    [-225_000, -165_000, -105_000, -45_000, -5_000]
        .into_iter()
        .flat_map(|offset| {
            (0..6).map(move |i| {
                let fields = if i < 4 {
                    json!({"provider": provider, "component": "stt", "ok": false, "latency_ms": 900.0, "error": "http_503"})
                } else {
                    json!({"provider": provider, "component": "stt", "ok": true, "latency_ms": 120.0})
                };
                event("provider.request", tenant, offset + i * 100, fields)
            })
        })
        .collect()
}

// ------------------------------------------------------------------ tests

/// What one shipped rule's alert must look like in both receivers.
struct Expected {
    rule: &'static str,
    labels: &'static [(&'static str, &'static str)],
    metric: &'static str,
    severity: &'static str,
    summary_starts: &'static str,
    /// Where the value (from the `value` annotation) must lie.
    value: std::ops::RangeInclusive<f64>,
    link: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shipped_rule_breached_notifies_slack_and_alertmanager() {
    let slack = StandIn::accepting();
    let alertmanager = StandIn::accepting();
    let setup = Setup::start(&slack, &alertmanager);

    let mut events = slow_turns("t-latency");
    // $1.00 in one call (no end yet, so no cost per minute).
    events.push(gpt4o_usage("t-call", "call-dear", 100_000));
    // $0.15 over 30 s: under the per-call guardrail, $0.30 a minute.
    events.push(gpt4o_usage("t-minute", "call-quick", 15_000));
    events.push(call_ended("t-minute", "call-quick", 30.0));
    events.push(breaker("t-breaker", "billing-api", "open", -6 * 60_000));
    events.push(heartbeat("t-worker", "w-hot", 90));
    events.extend(failing_provider("t-provider", "deepgram"));
    setup.send(&events).await;

    let expected = [
        Expected {
            rule: "turn_latency_p95_high",
            metric: "latency",
            labels: &[("tenant_id", "t-latency")],
            severity: "critical",
            summary_starts: "P95 turn latency of t-latency is ",
            value: 1485.0..=1515.0,
            link: "https://voicemon.example/metrics/latency?tenant_id=t-latency&step=1m",
        },
        Expected {
            rule: "cost_per_call_high",
            metric: "cost_per_call",
            labels: &[("tenant_id", "t-call")],
            severity: "warning",
            summary_starts: "cost per call of t-call is $1.0 ",
            value: 1.0..=1.0,
            link: "https://voicemon.example/metrics/cost?tenant_id=t-call&group_by=provider",
        },
        Expected {
            rule: "cost_per_minute_high",
            metric: "cost_per_minute",
            labels: &[("tenant_id", "t-minute")],
            severity: "warning",
            summary_starts: "cost per minute of t-minute is $0.3000 ",
            value: 0.3..=0.3,
            link: "https://voicemon.example/metrics/cost?tenant_id=t-minute&group_by=provider",
        },
        Expected {
            rule: "breaker_open",
            metric: "breaker_open_seconds",
            labels: &[("tenant_id", "t-breaker"), ("breaker", "billing-api")],
            severity: "critical",
            summary_starts: "circuit breaker billing-api of t-breaker has been open for ",
            value: 360.0..=420.0,
            link: "https://voicemon.example/metrics/health",
        },
        Expected {
            rule: "worker_memory_high",
            metric: "worker_memory_percent",
            labels: &[("tenant_id", "t-worker"), ("worker_id", "w-hot")],
            severity: "warning",
            summary_starts: "worker w-hot of t-worker uses 90.0 % of its memory",
            value: 90.0..=90.0,
            link: "https://voicemon.example/metrics/health",
        },
        Expected {
            rule: "provider_down",
            metric: "provider_down_seconds",
            labels: &[("provider", "deepgram")],
            severity: "critical",
            summary_starts: "provider deepgram has been down for ",
            value: 225.0..=400.0,
            link: "https://voicemon.example/metrics/health",
        },
    ];

    for want in &expected {
        let rule = want.rule;
        let (_, alert) = wait_for(&format!("Alertmanager to receive {rule}"), || {
            alertmanager_alerts(&alertmanager, rule).pop()
        })
        .await;
        let mut labels: BTreeMap<&str, &str> = want.labels.iter().copied().collect();
        labels.extend([("alertname", rule), ("severity", want.severity), ("metric", want.metric)]);
        assert_eq!(alert["labels"], json!(labels), "{rule}: Alertmanager labels");
        let summary = alert["annotations"]["summary"].as_str().unwrap_or_default().to_owned();
        assert!(summary.starts_with(want.summary_starts), "{rule}: summary {summary:?}");
        let value: f64 =
            alert["annotations"]["value"].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        assert!(want.value.contains(&value), "{rule}: value {value} not in {:?}", want.value);
        assert!(summary.contains(alert["annotations"]["value"].as_str().unwrap_or("?")), "{rule}: {summary}");
        let now = now_ms();
        let starts = parse_time(alert["startsAt"].as_str().unwrap_or_default()).expect("startsAt is a time");
        let ends = parse_time(alert["endsAt"].as_str().unwrap_or_default()).expect("endsAt is a time");
        assert!(starts <= now && starts > now - 60_000, "{rule}: startsAt {} is recent", alert["startsAt"]);
        assert!(ends > now, "{rule}: a firing alert's endsAt {} is in the future", alert["endsAt"]);
        assert_eq!(alert["generatorURL"], want.link, "{rule}: generatorURL");

        let message = wait_for(&format!("a Slack FIRING message for {rule}"), || {
            slack_messages(&slack, "FIRING", rule).pop()
        })
        .await
        .body;
        let heading = format!("FIRING: {rule} ({}, 1)", want.severity);
        assert!(slack_headings(&message)[0].contains(&heading), "{rule}: {message:#}");
        assert!(message["text"].as_str().is_some_and(|t| t.contains(&heading)), "{rule}: fallback text");
        let sections = slack_sections(&message);
        assert!(
            sections.iter().any(|s| s.contains(&format!("*{summary}*"))),
            "{rule}: summary in {sections:?}"
        );
        for (name, value) in want.labels {
            let place = format!("{name}=`{value}`");
            assert!(sections.iter().any(|s| s.contains(&place)), "{rule}: {place} in {sections:?}");
        }
        let footer = slack_footer(&message);
        assert!(footer.contains(&format!("<{}|Open in voicemon>", want.link)), "{rule}: link in {footer:?}");
    }

    let alerts = setup.get("/alerts").await;
    let firing: Vec<&str> =
        alerts["firing"].as_array().into_iter().flatten().filter_map(|a| a["rule"].as_str()).collect();
    for want in &expected {
        assert_eq!(
            firing.iter().filter(|r| **r == want.rule).count(),
            1,
            "{}: one alert in {firing:?}",
            want.rule
        );
        assert_eq!(slack_messages(&slack, "FIRING", want.rule).len(), 1, "{}: one Slack message", want.rule);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_that_closes_resolves_in_slack_alertmanager_the_api_and_history() {
    let slack = StandIn::accepting();
    let alertmanager = StandIn::accepting();
    let setup = Setup::start(&slack, &alertmanager);
    setup.send(&[breaker("t-resolve", "billing-api", "open", -6 * 60_000)]).await;
    let fired =
        wait_for("the FIRING message", || slack_messages(&slack, "FIRING", "breaker_open").pop()).await;
    let (_, firing) =
        wait_for("Alertmanager to receive it", || alertmanager_alerts(&alertmanager, "breaker_open").pop())
            .await;

    let closed_from = now_ms();
    setup.send(&[breaker("t-resolve", "billing-api", "closed", 0)]).await;

    let resolved =
        wait_for("the RESOLVED message", || slack_messages(&slack, "RESOLVED", "breaker_open").pop()).await;
    assert!(resolved.at > fired.at);
    let headings = slack_headings(&resolved.body);
    assert!(headings.iter().any(|h| h.contains("RESOLVED: breaker_open (critical, 1)")), "{headings:?}");
    assert!(!headings.iter().any(|h| h.contains("FIRING")), "only the resolution: {headings:?}");
    let sections = slack_sections(&resolved.body);
    assert!(
        sections.iter().any(|s| s.contains("breaker=`billing-api`") && s.contains(" to ")),
        "the section says from when to when: {sections:?}"
    );

    let (_, ended) = wait_for("Alertmanager to receive the resolution", || {
        alertmanager_alerts(&alertmanager, "breaker_open").into_iter().find(|(_, a)| {
            a["endsAt"].as_str().and_then(|t| parse_time(t).ok()).is_some_and(|t| t <= now_ms())
        })
    })
    .await;
    let ends = parse_time(ended["endsAt"].as_str().unwrap_or_default()).expect("endsAt is a time");
    assert!(ends >= closed_from && ends <= now_ms(), "endsAt {} is when it resolved", ended["endsAt"]);
    assert_eq!(ended["startsAt"], firing["startsAt"], "the same alert, started when it fired");
    assert_eq!(ended["labels"], firing["labels"]);

    assert!(setup.firing("breaker_open").await.is_empty(), "GET /alerts no longer lists it");
    let kinds = setup.history_kinds("breaker_open").await;
    for kind in ["fired", "notified", "resolved"] {
        assert!(kinds.contains(&kind.to_owned()), "history has {kind}: {kinds:?}");
    }
    let fired_at = kinds.iter().position(|k| k == "fired");
    let resolved_at = kinds.iter().position(|k| k == "resolved");
    assert!(fired_at < resolved_at, "fired before resolved: {kinds:?}");
    let resolved_entries = setup.history_entries("breaker_open", "resolved").await;
    assert_eq!(resolved_entries.len(), 1, "{resolved_entries:?}");
    assert_eq!(resolved_entries[0]["at"], ended["endsAt"], "history and Alertmanager agree on when");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_then_500_then_200_delivers_exactly_one_message_after_retry_after() {
    // Retry-After: 2 rather than 1, so honouring it is told apart from the 1 s Slack
    // pacing and the 1 s base back-off, which would space the attempts by 1 s anyway.
    let slack = StandIn::answering(
        vec![Reply::status(429).header("retry-after", "2"), Reply::status(500)],
        Reply::status(200),
    );
    let alertmanager = StandIn::accepting();
    let setup = Setup::start(&slack, &alertmanager);
    setup.send(&slow_turns("t-retry")).await;

    wait_for("the third attempt", || slack.received().into_iter().find(|r| r.accepted())).await;
    setup.settled().await;
    let attempts = slack_requests_for(&slack, "turn_latency_p95_high");
    let statuses: Vec<u16> = attempts.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 500, 200], "three attempts, then nothing more");
    assert_eq!(slack.received().len(), 3, "no other request reached Slack");
    assert!(attempts.iter().all(|a| a.body == attempts[0].body), "every attempt carries the same message");
    let waited = attempts[1].at - attempts[0].at;
    assert!(waited >= Duration::from_millis(1_950), "Retry-After: 2 was honoured; retried after {waited:?}");
    assert!(attempts[2].at > attempts[1].at);

    let notified = setup.history_entries("turn_latency_p95_high", "notified").await;
    let to_slack: Vec<&Value> = notified.iter().filter(|e| e["detail"] == "to slack").collect();
    assert_eq!(to_slack.len(), 1, "one delivery to Slack: {notified:?}");
    assert!(setup.history_entries("turn_latency_p95_high", "notification_failed").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_webhook_answering_404_is_marked_broken_degrades_health_and_is_not_retried() {
    let slack = StandIn::answering(Vec::new(), Reply::status(404));
    let alertmanager = StandIn::accepting();
    let setup = Setup::start(&slack, &alertmanager);
    let before = setup.get("/metrics/health").await;
    assert_eq!(before["status"], "ok", "healthy before anything happens: {before:#}");

    setup.send(&slow_turns("t-broken")).await;
    wait_for("the attempt", || slack.received().into_iter().next()).await;
    let health = setup
        .wait_for_answer("the receiver to be marked broken", "/metrics/health", |h| {
            h["receivers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["name"] == "slack" && r["broken"] == true)
        })
        .await;
    assert_eq!(health["status"], "degraded", "{health:#}");
    let reasons = health["reasons"].to_string();
    assert!(reasons.contains("alert receiver slack is broken"), "{reasons}");
    let alertmanager_state =
        health["receivers"].as_array().into_iter().flatten().find(|r| r["name"] == "alertmanager").cloned();
    assert_eq!(alertmanager_state.map(|r| r["broken"].clone()), Some(json!(false)), "only Slack is broken");

    setup.settled().await;
    assert_eq!(slack.received().len(), 1, "a 404 is not retried");
    let failed = setup.history_entries("turn_latency_p95_high", "notification_failed").await;
    assert!(
        failed.iter().any(|e| e["detail"].as_str().is_some_and(|d| d.starts_with("to slack: 404"))),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_incident_neither_repeats_the_firing_message_nor_loses_the_resolved_one() {
    let slack = StandIn::accepting();
    let alertmanager = StandIn::accepting();
    let setup = Setup::start(&slack, &alertmanager);
    setup.send(&[heartbeat("t-restart", "w-1", 90)]).await;
    wait_for("the FIRING message", || slack_messages(&slack, "FIRING", "worker_memory_high").pop()).await;
    // The delivery is recorded before voicemon stops, else resending it would be right.
    setup
        .wait_for_answer("the delivery to be recorded", "/alerts/history?rule=worker_memory_high", |h| {
            h["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["kind"] == "notified" && e["detail"] == "to slack")
        })
        .await;
    let to_alertmanager_before = alertmanager_alerts(&alertmanager, "worker_memory_high").len();

    let setup = setup.restart().await;
    assert_eq!(setup.firing("worker_memory_high").await.len(), 1, "still firing after the restart");
    // The restarted engine evaluates: its first tick re-sends firing alerts to Alertmanager.
    wait_for("the restarted engine to re-send to Alertmanager", || {
        (alertmanager_alerts(&alertmanager, "worker_memory_high").len() > to_alertmanager_before)
            .then_some(())
    })
    .await;
    setup.settled().await;
    assert_eq!(slack_messages(&slack, "FIRING", "worker_memory_high").len(), 1, "no second FIRING message");

    setup.send(&[heartbeat("t-restart", "w-1", 10)]).await;
    wait_for("the RESOLVED message", || slack_messages(&slack, "RESOLVED", "worker_memory_high").pop()).await;
    assert!(setup.firing("worker_memory_high").await.is_empty());
    assert_eq!(slack_messages(&slack, "FIRING", "worker_memory_high").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_alert_fires_without_notifying_until_the_silence_is_expired() {
    let slack = StandIn::accepting();
    let alertmanager = StandIn::accepting();
    let setup = Setup::start(&slack, &alertmanager);
    let body = json!({"matchers": ["alertname=worker_memory_high"], "duration": "1h",
                      "comment": "known leak, fix deploying", "author": "on-call"});
    let response =
        setup.client.post(setup.server.url("/alerts/silences")).json(&body).send().await.expect("answers");
    assert_eq!(response.status().as_u16(), 201);
    let silence: Value = response.json().await.expect("the silence");
    let id = silence["id"].as_str().expect("a silence id").to_owned();
    let listed = setup.get("/alerts/silences").await;
    assert!(listed.as_array().is_some_and(|s| s.iter().any(|s| s["id"] == id.as_str())), "{listed}");

    setup.send(&[heartbeat("t-silence", "w-2", 90)]).await;
    let alerts = setup
        .wait_for_answer("the alert to fire", "/alerts", |a| {
            a["firing"].as_array().into_iter().flatten().any(|a| a["rule"] == "worker_memory_high")
        })
        .await;
    let alert = alerts["firing"].as_array().into_iter().flatten().find(|a| a["rule"] == "worker_memory_high");
    assert_eq!(alert.map(|a| a["silenced"].clone()), Some(json!(true)), "{alerts:#}");
    setup
        .wait_for_answer("history to record the silence", "/alerts/history?rule=worker_memory_high", |h| {
            h["entries"].as_array().into_iter().flatten().any(|e| e["kind"] == "silenced")
        })
        .await;
    setup.settled().await;
    assert!(
        slack_requests_for(&slack, "worker_memory_high").is_empty(),
        "Slack hears nothing while silenced"
    );
    assert!(alertmanager_alerts(&alertmanager, "worker_memory_high").is_empty(), "nor does Alertmanager");
    assert!(setup.history_entries("worker_memory_high", "notified").await.is_empty());

    let response = setup
        .client
        .delete(setup.server.url(&format!("/alerts/silences/{id}")))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 200);
    let expired: Value = response.json().await.expect("the expired silence");
    assert!(expired["ends_ms"].as_i64().is_some_and(|end| end <= now_ms()), "{expired}");
    assert_eq!(setup.get("/alerts/silences").await, json!([]), "no active silence is left");

    wait_for("the FIRING message once unsilenced", || {
        slack_messages(&slack, "FIRING", "worker_memory_high").pop()
    })
    .await;
    let alert = setup.firing("worker_memory_high").await;
    assert_eq!(alert.first().map(|a| a["silenced"].clone()), Some(json!(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_could_not_be_sent_is_delivered_after_a_restart() {
    let slack = StandIn::answering(Vec::new(), Reply::status(500));
    let alertmanager = StandIn::accepting();
    let setup = Setup::start(&slack, &alertmanager);
    setup.send(&[heartbeat("t-outbox", "w-3", 90)]).await;
    wait_for("a first, refused attempt", || slack_requests_for(&slack, "worker_memory_high").pop()).await;
    setup
        .wait_for_answer("the alert to fire", "/alerts", |a| {
            a["firing"].as_array().into_iter().flatten().any(|a| a["rule"] == "worker_memory_high")
        })
        .await;
    assert!(slack_messages(&slack, "FIRING", "worker_memory_high").is_empty(), "Slack accepted nothing yet");

    // Stopped at once: the message waits in the outbox for its next attempt, a few
    // seconds at most after the first 500s.
    let setup = setup.restart_after(|| slack.answer_from_now_on(Reply::status(200))).await;
    let delivered = wait_for("the delivery after the restart", || {
        slack_messages(&slack, "FIRING", "worker_memory_high").pop()
    })
    .await;
    setup
        .wait_for_answer("the delivery to be recorded", "/alerts/history?rule=worker_memory_high", |h| {
            h["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["kind"] == "notified" && e["detail"] == "to slack")
        })
        .await;
    setup.settled().await;

    let attempts = slack_requests_for(&slack, "worker_memory_high");
    let statuses: Vec<u16> = attempts.iter().map(|r| r.status).collect();
    assert!(statuses.len() >= 2 && statuses[0] == 500, "refused, then delivered: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "delivered exactly once: {statuses:?}");
    assert_eq!(statuses.last(), Some(&200), "nothing after the delivery: {statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 500), "refused before: {statuses:?}");
    assert_eq!(slack.received().len(), attempts.len(), "no other request reached Slack");
    assert!(
        attempts.iter().all(|a| a.body == delivered.body),
        "every attempt carries the one stored message: {:#}",
        delivered.body
    );
    let heading = slack_headings(&delivered.body);
    assert!(heading.iter().any(|h| h.contains("FIRING: worker_memory_high (warning, 1)")), "{heading:?}");

    let notified = setup.history_entries("worker_memory_high", "notified").await;
    let to_slack: Vec<&Value> = notified.iter().filter(|e| e["detail"] == "to slack").collect();
    assert_eq!(to_slack.len(), 1, "one delivery to Slack: {notified:?}");
    assert!(setup.history_entries("worker_memory_high", "notification_failed").await.is_empty());
    assert_eq!(setup.firing("worker_memory_high").await.len(), 1, "still firing after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_cli_lists_silences_and_shows_history() {
    let rule = "worker_memory_high";
    let slack = StandIn::accepting();
    let alertmanager = StandIn::accepting();
    let setup = Setup::start(&slack, &alertmanager);
    setup.send(&[heartbeat("t-cli", "w-4", 90)]).await;
    let alerts = setup
        .wait_for_answer("the alert to fire", "/alerts", |a| {
            a["firing"].as_array().into_iter().flatten().any(|a| a["rule"] == rule)
        })
        .await;
    let alert = alerts["firing"].as_array().into_iter().flatten().find(|a| a["rule"] == rule).cloned();
    let summary = alert.map(|a| a["annotations"]["summary"].clone()).unwrap_or_default();
    let summary = summary.as_str().expect("a summary").to_owned();
    assert!(summary.starts_with("worker w-4 of t-cli uses 90.0 % of its memory"), "{summary}");

    let listing = alerts_cli(&setup, &["list"]).await;
    let (heading, firing) = listing_section(&listing, "FIRING");
    assert_eq!(heading, "FIRING (1)", "{listing}");
    let line = firing.iter().find(|l| l.contains(rule)).unwrap_or_else(|| panic!("{rule} in {listing}"));
    assert!(line.contains(&summary), "the summary in {line:?}");
    assert!(!line.contains("[silenced]"), "not silenced yet: {line:?}");
    assert_eq!(listing_section(&listing, "SILENCES").0, "SILENCES (0)", "{listing}");

    let match_rule = format!("alertname={rule}");
    let from = now_ms();
    let printed = alerts_cli(
        &setup,
        &["silence", "--match", &match_rule, "--for", "1h", "--comment", "test", "--author", "ci"],
    )
    .await;
    let words: Vec<&str> = printed.split_whitespace().collect();
    assert!(words.len() == 4 && words[0] == "silence" && words[2] == "until", "{printed:?}");
    let id = words[1].to_owned();
    assert!(!id.is_empty() && id != "?", "a silence id in {printed:?}");
    let until = parse_time(words[3]).expect("until a time");
    assert!(
        until >= from + 3_600_000 - 1_000 && until <= now_ms() + 3_600_000 + 1_000,
        "an hour from now: {printed:?}"
    );

    let listing = alerts_cli(&setup, &["list"]).await;
    let (heading, silences) = listing_section(&listing, "SILENCES");
    assert_eq!(heading, "SILENCES (1)", "{listing}");
    let line = silences[0];
    assert!(line.contains(&id) && line.contains(&match_rule) && line.contains("by ci: test"), "{line:?}");
    let (_, firing) = listing_section(&listing, "FIRING");
    let line = firing.iter().find(|l| l.contains(rule)).unwrap_or_else(|| panic!("{rule} in {listing}"));
    assert!(line.ends_with("[silenced]"), "marked silenced: {line:?}");

    let printed = alerts_cli(&setup, &["unsilence", &id]).await;
    assert_eq!(printed.trim_end(), format!("silence {id} ended"));
    assert_eq!(setup.get("/alerts/silences").await, json!([]), "no active silence is left");
    let listing = alerts_cli(&setup, &["list"]).await;
    assert_eq!(listing_section(&listing, "SILENCES").0, "SILENCES (0)", "{listing}");
    let (_, firing) = listing_section(&listing, "FIRING");
    let line = firing.iter().find(|l| l.contains(rule)).unwrap_or_else(|| panic!("{rule} in {listing}"));
    assert!(!line.contains("[silenced]"), "no longer silenced: {line:?}");

    let history = alerts_cli(&setup, &["history", "--rule", rule]).await;
    let entries: Vec<Vec<&str>> = history.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(entries.iter().any(|e| e.get(1..3) == Some(&["fired", rule][..])), "a fired entry: {history}");
    assert!(entries.iter().all(|e| e.get(2) == Some(&rule)), "only {rule}: {history}");

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        listener.local_addr().expect("a bound address").port()
    };
    let nowhere = format!("http://127.0.0.1:{port}");
    let output = voicemon(&["alerts", "--url", &nowhere, "list"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "an unreachable server is a failure; stderr: {stderr}");
    assert!(stderr.contains(&format!("voicemon is unreachable at {nowhere}")), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing listed: {:?}", String::from_utf8_lossy(&output.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_an_https_slack_webhook_whose_ca_is_trusted_through_ssl_cert_file() {
    let slack = StandIn::accepting();
    let alertmanager = StandIn::accepting();
    assert!(slack.webhook_url().starts_with("https://"), "the stand-in speaks TLS");
    let setup = Setup::start(&slack, &alertmanager);
    setup.send(&slow_turns("t-https")).await;

    let rule = "turn_latency_p95_high";
    wait_for("the firing message over HTTPS", || slack_messages(&slack, "FIRING", rule).pop()).await;
    assert_eq!(slack.failed_handshakes(), 0, "every handshake succeeded");
    let history = format!("/alerts/history?rule={rule}");
    setup
        .wait_for_answer("the delivery in history", &history, |h| {
            let entries = h["entries"].as_array().into_iter().flatten();
            entries.clone().any(|e| e["kind"] == "notified" && e["detail"] == "to slack")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_slack_certificate_sends_nothing_and_says_why_in_the_log_and_the_history() {
    let slack = StandIn::accepting();
    let alertmanager = StandIn::accepting();
    let setup = Setup::start_with(&slack, &alertmanager, serve_untrusting);
    setup.send(&slow_turns("t-untrusted")).await;

    let rule = "turn_latency_p95_high";
    // Both receivers are untrusted and retry; wait for Slack's own entry, which may come
    // after Alertmanager's.
    let history = setup
        .wait_for_answer("Slack's retry entry in the history", &format!("/alerts/history?rule={rule}"), |h| {
            h["entries"].as_array().into_iter().flatten().any(|e| {
                e["kind"] == "notification_retrying"
                    && e["detail"].as_str().is_some_and(|d| d.starts_with("to slack: "))
            })
        })
        .await;
    let details: Vec<&str> = history["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "notification_retrying")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    let to_slack =
        details.iter().find(|d| d.starts_with("to slack: ")).expect("Slack's delivery is retrying");
    assert!(
        to_slack.contains("invalid peer certificate: UnknownIssuer"),
        "the certificate reason: {to_slack}"
    );
    assert!(!to_slack.contains("not-a-secret"), "the secret URL is not in the reason: {to_slack}");

    wait_for("the reason in the log", || {
        let log = setup.server.log();
        log.lines()
            .find(|l| l.contains("alert notification will be retried") && l.contains("UnknownIssuer"))
            .map(str::to_owned)
    })
    .await;
    assert!(slack.received().is_empty(), "nothing reached Slack: {:?}", slack.received());
    assert!(slack.failed_handshakes() > 0, "voicemon refused the stand-in's certificate");
    assert!(setup.history_entries(rule, "notified").await.is_empty(), "nothing was notified");
    assert!(!setup.server.log().contains("not-a-secret"), "the webhook URL never appears in the log");
}

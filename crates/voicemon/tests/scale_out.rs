//! Several `voicemon serve` instances on one PostgreSQL database, as a team that outgrew
//! one machine runs them: one HTTPS stand-in for a Slack incoming webhook behind both.
//! Alert evaluation runs on the instance holding the alerting lease, every instance's
//! dispatcher sends the outbox with claimed messages, and when the lease holder is
//! killed the other takes over from the stored state.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::stand_in::{Received, StandIn};
use common::tls::TestCa;
use common::{postgres_url, time_from_now, Server, TestSchema};

const RULE: &str = "worker_memory_high";
const EVALUATIONS: &str = "voicemon_alerting_evaluations_total{outcome=\"ok\"}";
const IDLE_DISPATCH_ROUNDS: &str = "voicemon_notify_dispatch_rounds_total{outcome=\"idle\"}";
/// The takeover bound the lease gives: its 15 s lifetime plus one 5 s renewal period,
/// with room for a loaded machine.
const TAKEOVER: Duration = Duration::from_secs(40);

/// A fast-evaluating `voicemon.toml` with the stand-in as its Slack receiver.
fn write_config(dir: &Path, slack: &StandIn) -> PathBuf {
    let text = format!(
        "[alerting]\nevaluation_interval = \"1s\"\ngroup_wait = \"1s\"\n\n\
         [[alerting.receiver]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n",
        slack.webhook_url()
    );
    let path = dir.join("voicemon.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// Instances sharing one schema, trusting the CA of the stand-in's certificate.
struct Fleet {
    dir: tempfile::TempDir,
    config: PathBuf,
    database_url: String,
    client: reqwest::Client,
    _schema: TestSchema,
}

impl Fleet {
    fn new(slack: &StandIn) -> Option<Fleet> {
        let admin = postgres_url("the scale-out tests")?;
        let schema = TestSchema::create(&admin);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = write_config(dir.path(), slack);
        Some(Fleet {
            database_url: schema.url(),
            dir,
            config,
            client: reqwest::Client::new(),
            _schema: schema,
        })
    }

    fn start(&self, name: &str) -> Server {
        let ca = TestCa::shared().ca_file.to_str().expect("a UTF-8 path").to_owned();
        let env = [("DATABASE_URL", self.database_url.as_str()), ("SSL_CERT_FILE", ca.as_str())];
        Server::start_with_env(&self.dir.path().join(name), Some(&self.config), &[], &env)
    }

    async fn send(&self, server: &Server, events: &[Value]) {
        let response =
            self.client.post(server.url("/v1/events")).json(events).send().await.expect("ingest answers");
        assert_eq!(response.status().as_u16(), 202, "{:?}", response.text().await);
    }

    /// Whether `server` says in `/metrics` that it holds `role`.
    async fn holds(&self, server: &Server, role: &str) -> bool {
        let text =
            self.client.get(server.url("/metrics")).send().await.expect("answers").text().await.unwrap();
        let wanted = format!("role=\"{role}\"");
        text.lines().any(|line| {
            line.starts_with("voicemon_instance_role{") && line.contains(&wanted) && line.ends_with(" 1")
        })
    }

    /// Waits until exactly one of `servers` holds `role`; returns its index.
    async fn holder(&self, servers: &[&Server], role: &str, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        loop {
            let mut holding = Vec::new();
            for (index, server) in servers.iter().enumerate() {
                if self.holds(server, role).await {
                    holding.push(index);
                }
            }
            if let [one] = holding[..] {
                return one;
            }
            assert!(Instant::now() < deadline, "no single holder of {role}: {holding:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Returns once everything due has had its chance to be sent: three more evaluations
    /// on the alerting instance, then two idle outbox reads on every instance.
    async fn settled(&self, leader: &Server, all: &[&Server]) {
        let evaluations = common::metric(&self.client, leader, EVALUATIONS).await;
        common::wait_for_metric(&self.client, leader, EVALUATIONS, evaluations + 3.0).await;
        for server in all {
            let idle = common::metric(&self.client, server, IDLE_DISPATCH_ROUNDS).await;
            common::wait_for_metric(&self.client, server, IDLE_DISPATCH_ROUNDS, idle + 2.0).await;
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn heartbeat(tenant: &str, memory_percent: u64) -> Value {
    json!({"id": format!("scale-out-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)), "type": "worker.heartbeat",
           "timestamp": time_from_now(-500), "tenant_id": tenant, "worker_id": "w-1",
           "memory_used_bytes": memory_percent * 10_000_000, "memory_limit_bytes": 1_000_000_000u64,
           "cpu_percent": 40.0, "active_calls": 2})
}

/// The accepted Slack messages whose heading is `title` (FIRING or RESOLVED) for [`RULE`].
fn messages(slack: &StandIn, title: &str) -> Vec<Received> {
    let wanted = format!("{title}: {RULE} (");
    slack
        .received()
        .into_iter()
        .filter(|r| r.accepted())
        .filter(|r| {
            r.body["blocks"].as_array().into_iter().flatten().any(|block| {
                block["type"] == "header"
                    && block["text"]["text"].as_str().is_some_and(|t| t.contains(&wanted))
            })
        })
        .collect()
}

async fn wait_for_message(slack: &StandIn, title: &str, patience: Duration) -> Instant {
    let deadline = Instant::now() + patience;
    loop {
        if !messages(slack, title).is_empty() {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "no {title} message for {RULE} within {patience:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_send_one_firing_and_one_resolved_message_per_alert() {
    let slack = StandIn::accepting();
    let Some(fleet) = Fleet::new(&slack) else { return };
    let (a, b) = (fleet.start("a"), fleet.start("b"));
    let leader = fleet.holder(&[&a, &b], "alerting", Duration::from_secs(30)).await;
    for role in ["health_sampling", "maintenance"] {
        fleet.holder(&[&a, &b], role, Duration::from_secs(30)).await;
    }
    let leader = [&a, &b][leader];

    // Each instance takes events; the instance that did not take them still sees them.
    fleet.send(&a, &[heartbeat("t-fleet", 95)]).await;
    wait_for_message(&slack, "FIRING", Duration::from_secs(30)).await;
    fleet.settled(leader, &[&a, &b]).await;
    assert_eq!(messages(&slack, "FIRING").len(), 1, "one FIRING message from two instances");

    fleet.send(&b, &[heartbeat("t-fleet", 10)]).await;
    wait_for_message(&slack, "RESOLVED", Duration::from_secs(30)).await;
    fleet.settled(leader, &[&a, &b]).await;
    assert_eq!(messages(&slack, "FIRING").len(), 1, "still one FIRING message");
    assert_eq!(messages(&slack, "RESOLVED").len(), 1, "one RESOLVED message from two instances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_alerting_instance_is_killed_the_other_takes_over_and_sends_what_is_due_once() {
    let slack = StandIn::accepting();
    let Some(fleet) = Fleet::new(&slack) else { return };
    let first = fleet.start("first");
    fleet.holder(&[&first], "alerting", Duration::from_secs(30)).await;
    let second = fleet.start("second");
    assert!(!fleet.holds(&second, "alerting").await, "the second instance stands by");

    fleet.send(&second, &[heartbeat("t-takeover", 95)]).await;
    wait_for_message(&slack, "FIRING", Duration::from_secs(30)).await;
    fleet.settled(&first, &[&first, &second]).await;

    let killed_at = Instant::now();
    first.kill();
    // The worker recovers while no instance evaluates: the RESOLVED message is due as soon
    // as the survivor holds the lease and has evaluated once.
    fleet.send(&second, &[heartbeat("t-takeover", 10)]).await;
    fleet.holder(&[&second], "alerting", TAKEOVER).await;
    let took_over = killed_at.elapsed();
    let resolved_at = wait_for_message(&slack, "RESOLVED", Duration::from_secs(30)).await;
    eprintln!(
        "takeover: the survivor held the alerting lease {:.1} s after the kill; RESOLVED sent {:.1} s after it",
        took_over.as_secs_f64(),
        (resolved_at - killed_at).as_secs_f64()
    );
    fleet.settled(&second, &[&second]).await;
    assert_eq!(messages(&slack, "FIRING").len(), 1, "the survivor does not repeat the FIRING message");
    assert_eq!(messages(&slack, "RESOLVED").len(), 1, "and sends the RESOLVED one once");
}

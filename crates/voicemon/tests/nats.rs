//! The event bus with a real NATS JetStream server (`VOICEMON_TEST_NATS_URL`): events
//! published to the stream are stored once, a poison message goes to the dead-letter
//! subject while the stream keeps flowing, and a consumer killed and restarted in the
//! middle of a run loses and doubles nothing. Each test has a stream, subjects and a
//! consumer of its own, deleted at the end.

use async_nats::jetstream;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::proxy::{split_address, Proxy};
use common::{now_ms, postgres_url, time_from_now, with_search_path, Server, TestSchema};

const PATIENCE: Duration = Duration::from_secs(60);

fn nats_url() -> Option<String> {
    match std::env::var("VOICEMON_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipping the NATS tests: set VOICEMON_TEST_NATS_URL=nats://127.0.0.1:4222 to run them"
            );
            None
        }
    }
}

/// A stream of this test's own, and voicemon configured to consume it.
struct Bus {
    url: String,
    name: String,
    jetstream: jetstream::Context,
    client: async_nats::Client,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Bus {
    async fn new(test: &str) -> Option<Bus> {
        let url = nats_url()?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("{test}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let client = async_nats::connect(&url).await.unwrap_or_else(|err| {
            panic!("VOICEMON_TEST_NATS_URL is set but NATS is unreachable at {url}: {err}")
        });
        let jetstream = jetstream::new(client.clone());
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("voicemon.toml");
        let text = format!(
            "[nats]\nstream = \"VM_{name}\"\nsubjects = [\"vmtest.{name}.events.>\"]\nconsumer = \"voicemon_{name}\"\n\
             dead_letter_subject = \"vmtest.{name}.dead\"\n"
        );
        std::fs::write(&config, text).expect("config written");
        Some(Bus { url, name, jetstream, client, dir, config })
    }

    fn start(&self) -> Server {
        self.start_with(&[])
    }

    /// [`Bus::start`] with more environment (a `DATABASE_URL`).
    fn start_with(&self, env: &[(&str, &str)]) -> Server {
        let mut all = vec![("NATS_URL", self.url.as_str())];
        all.extend_from_slice(env);
        Server::start_with_env(&self.data(), Some(&self.config), &[], &all)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn subject(&self, tenant: &str) -> String {
        format!("vmtest.{}.events.{tenant}", self.name)
    }

    /// Publishes `payload` and waits for JetStream to have stored it.
    async fn publish(&self, subject: String, payload: String) {
        let ack = self.jetstream.publish(subject, payload.into()).await.expect("published");
        ack.await.expect("JetStream stored the message");
    }

    /// Waits until the stream exists (voicemon creates it when it starts consuming).
    async fn stream_created(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.jetstream.get_stream(format!("VM_{}", self.name)).await.is_err() {
            assert!(Instant::now() < deadline, "voicemon did not create the stream");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until voicemon's consumer has nothing pending or unacknowledged; its state.
    async fn all_acknowledged(&self) -> jetstream::consumer::Info {
        let mut consumer = self
            .jetstream
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                format!("voicemon_{}", self.name),
                format!("VM_{}", self.name),
            )
            .await
            .expect("voicemon's durable consumer exists");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let info = consumer.info().await.expect("consumer info").clone();
            if info.num_ack_pending == 0 && info.num_pending == 0 {
                return info;
            }
            assert!(Instant::now() < deadline, "messages still unacknowledged: {info:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn delete(&self) {
        let _ = self.jetstream.delete_stream(format!("VM_{}", self.name)).await;
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A turn of `tenant` a few seconds ago, with an id of its own.
fn turn(tenant: &str) -> Value {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    json!({"id": format!("nats-{}-{n}", std::process::id()), "type": "turn.completed",
           "timestamp": time_from_now(-2_000), "tenant_id": tenant, "call_id": format!("call-{}", n % 7),
           "turn_index": n % 20, "e2e_ms": 400 + n % 500})
}

fn ndjson(events: &[Value]) -> String {
    events.iter().map(|event| event.to_string() + "\n").collect()
}

/// Turns of `tenant` counted by `GET /metrics/latency` over the last ten minutes.
async fn stored_turns(server: &Server, tenant: &str) -> u64 {
    let (from, to) = (now_ms() - 600_000, now_ms() + 60_000);
    let path = format!(
        "/metrics/latency?tenant_id={tenant}&component=turn_e2e&from={}&to={}",
        voicemon_core::window::format_time(from),
        voicemon_core::window::format_time(to)
    );
    let answer: Value = reqwest::get(server.url(&path)).await.expect("answers").json().await.expect("JSON");
    answer["overall"]["count"].as_u64().unwrap_or_else(|| panic!("a count in {answer}"))
}

async fn wait_for_turns(server: &Server, tenant: &str, expected: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stored = stored_turns(server, tenant).await;
        if stored == expected {
            return;
        }
        assert!(stored < expected, "more turns stored than published: {stored} > {expected}");
        assert!(Instant::now() < deadline, "{stored} of {expected} turns stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_to_jetstream_are_stored_once_and_acknowledged() {
    let Some(bus) = Bus::new("stored").await else { return };
    let server = bus.start();
    bus.stream_created().await;
    let mut published = Vec::new();
    for _ in 0..20 {
        let events: Vec<Value> = (0..5).map(|_| turn("t-bus")).collect();
        bus.publish(bus.subject("t-bus"), ndjson(&events)).await;
        published.extend(events);
    }
    for _ in 0..10 {
        let event = turn("t-bus");
        bus.publish(bus.subject("t-bus"), event.to_string()).await;
        published.push(event);
    }
    // A publisher's retry: the same events again are duplicates, stored once.
    bus.publish(bus.subject("t-bus"), ndjson(&published[..5])).await;
    wait_for_turns(&server, "t-bus", published.len() as u64).await;

    let info = bus.all_acknowledged().await;
    assert_eq!(info.delivered.stream_sequence, 31, "every message was delivered");
    let client = reqwest::Client::new();
    let stored = common::metric(&client, &server, "voicemon_bus_messages_total{outcome=\"stored\"}").await;
    assert_eq!(stored, 31.0, "every message acknowledged as stored");
    bus.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dead_letter_subject_and_the_stream_keeps_flowing() {
    let Some(bus) = Bus::new("poison").await else { return };
    let mut dead = bus.client.subscribe(format!("vmtest.{}.dead", bus.name)).await.expect("subscribed");
    let server = bus.start();
    bus.stream_created().await;
    bus.publish(bus.subject("t-poison"), "this is not an event".into()).await;
    let mut negative = turn("t-poison");
    negative["e2e_ms"] = json!(-5);
    let (good_one, good_two) = (turn("t-poison"), turn("t-poison"));
    bus.publish(bus.subject("t-poison"), ndjson(&[good_one, negative])).await;
    bus.publish(bus.subject("t-poison"), good_two.to_string()).await;

    let mut letters = Vec::new();
    while letters.len() < 2 {
        let letter = tokio::time::timeout(PATIENCE, dead.next()).await.expect("a dead letter in time");
        letters.push(letter.expect("the subscription is open"));
    }
    let header = |letter: &async_nats::Message, name: &str| {
        letter.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned()).unwrap_or_default()
    };
    assert_eq!(letters[0].payload.as_ref(), b"this is not an event", "the message itself is kept");
    assert!(!header(&letters[0], "Voicemon-Reason").is_empty(), "with its reason");
    assert_eq!(header(&letters[0], "Voicemon-Subject"), bus.subject("t-poison"));
    assert!(header(&letters[1], "Voicemon-Rejected").contains("\"index\":1"), "{:?}", letters[1].headers);
    assert!(header(&letters[1], "Voicemon-Reason").contains("e2e_ms"), "{:?}", letters[1].headers);
    // The valid event beside the bad one, and the message after both, are stored.
    wait_for_turns(&server, "t-poison", 2).await;
    let client = reqwest::Client::new();
    let dead_lettered =
        common::metric(&client, &server, "voicemon_bus_messages_total{outcome=\"dead_lettered\"}");
    assert_eq!(dead_lettered.await, 2.0);
    bus.delete().await;
}

/// Publishes `messages` NDJSON messages of `per_message` turns of `tenant`, one after the
/// other, counting what JetStream acknowledged.
async fn publish_turns(bus: &Bus, tenant: &str, messages: usize, per_message: usize) -> u64 {
    let mut published = 0;
    for _ in 0..messages {
        let events: Vec<Value> = (0..per_message).map(|_| turn(tenant)).collect();
        bus.publish(bus.subject(tenant), ndjson(&events)).await;
        published += per_message as u64;
    }
    published
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_and_restarted_mid_stream_stores_every_event_exactly_once() {
    let Some(bus) = Bus::new("restart").await else { return };
    let server = bus.start();
    bus.stream_created().await;
    let mut published = publish_turns(&bus, "t-restart", 300, 20).await;
    // Killed while it works through the stream: some messages are stored and acknowledged,
    // some stored and not yet acknowledged, some not yet taken.
    let deadline = Instant::now() + PATIENCE;
    while stored_turns(&server, "t-restart").await == 0 {
        assert!(Instant::now() < deadline, "nothing stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored_at_kill = stored_turns(&server, "t-restart").await;
    server.kill();
    eprintln!("killed with {stored_at_kill} of {published} turns stored");
    // Events keep coming while no consumer runs.
    published += publish_turns(&bus, "t-restart", 50, 20).await;
    let server = bus.start();
    published += publish_turns(&bus, "t-restart", 50, 20).await;
    wait_for_turns(&server, "t-restart", published).await;
    // Messages redelivered after the kill held duplicates: once every message is
    // acknowledged, each event is still counted once.
    bus.all_acknowledged().await;
    assert_eq!(stored_turns(&server, "t-restart").await, published, "each event once");
    bus.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_arrive_while_the_store_is_unreachable_are_refused_for_now_and_stored_once_it_is_back()
{
    let Some(bus) = Bus::new("outage").await else { return };
    let Some(admin_url) = postgres_url("the NATS store-outage test") else { return };
    let schema = TestSchema::create(&admin_url);
    let (target, url_via) = split_address(&admin_url);
    let proxy = Proxy::start(target).await;
    let database_url = with_search_path(&url_via(proxy.addr), &schema.name);
    let server = bus.start_with(&[("DATABASE_URL", &database_url)]);
    bus.stream_created().await;
    let mut published = publish_turns(&bus, "t-outage", 5, 20).await;
    wait_for_turns(&server, "t-outage", published).await;

    // PostgreSQL goes away: the messages that come now cannot be stored.
    proxy.cut();
    published += publish_turns(&bus, "t-outage", 10, 20).await;
    let client = reqwest::Client::new();
    let retried = "voicemon_bus_messages_total{outcome=\"retried\"}";
    common::wait_for_metric(&client, &server, retried, 1.0).await;
    proxy.restore();

    // Back: JetStream delivers them again after their back-off, and each is stored once.
    wait_for_turns(&server, "t-outage", published).await;
    bus.all_acknowledged().await;
    assert_eq!(stored_turns(&server, "t-outage").await, published, "each event once");
    let dead = common::metric(&client, &server, "voicemon_bus_messages_total{outcome=\"dead_lettered\"}");
    assert_eq!(dead.await, 0.0, "an unavailable store dead-letters nothing");
    bus.delete().await;
}

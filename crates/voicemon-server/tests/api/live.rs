//! The live view: `GET /metrics/stream` against the real server, with a real WebSocket
//! client; the page and its assets.

use crate::helpers::{create_key, event, spawn_app_in, spawn_app_with, turn, TestApp, TestKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voicemon_core::access::Role;
use voicemon_server::origin::AllowedOrigins;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any awaited message may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn stream_url(app: &TestApp) -> String {
    format!("{}/metrics/stream", app.address.replacen("http://", "ws://", 1))
}

/// Opens `/metrics/stream`, with `key` as a bearer header when given.
async fn connect(app: &TestApp, key: Option<&str>) -> Socket {
    try_connect(app, key).await.expect("the WebSocket opens")
}

async fn try_connect(app: &TestApp, key: Option<&str>) -> Result<Socket, tungstenite::Error> {
    let mut request = stream_url(app).into_client_request().expect("a request");
    if let Some(key) = key {
        let value = format!("Bearer {key}").parse().expect("a header value");
        request.headers_mut().insert("authorization", value);
    }
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

/// The next JSON message; pings and pongs are skipped, a close fails the test.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a message in time")
            .expect("the stream is open")
            .expect("a message");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Message::Close(frame) => panic!("the server closed the stream: {frame:?}"),
            _ => continue,
        }
    }
}

/// Skips messages until one of type `kind`.
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let message = next_json(socket).await;
        if message["type"] == kind {
            return message;
        }
        assert!(Instant::now() < deadline, "no {kind} message in time; last: {message}");
    }
}

/// The close frame the server ends with, skipping what comes before it.
async fn close_code<S>(socket: &mut S) -> (u16, String)
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next()).await.expect("a close frame in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | None => panic!("the stream ended without a close code"),
            Some(Err(err)) => panic!("the stream failed before a close frame: {err}"),
            Some(Ok(_)) => continue,
        }
    }
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.expect("the message is sent");
}

/// Subscribes and returns the server's `subscribed` answer to this request (skipping the
/// one of the default subscription a connection may have started with).
async fn subscribe(socket: &mut Socket, request: Value) -> Value {
    let mut message = json!({"type": "subscribe"});
    message.as_object_mut().expect("an object").extend(request.as_object().cloned().unwrap_or_default());
    send(socket, message).await;
    let interval = request.get("interval_s").cloned().unwrap_or(json!(5));
    loop {
        let subscribed = next_of(socket, "subscribed").await;
        let tenant_matches = match request.get("tenant_id") {
            Some(Value::String(tenant)) => subscribed["tenant_id"] == *tenant,
            _ => true,
        };
        if subscribed["interval_s"] == interval && tenant_matches {
            return subscribed;
        }
    }
}

/// Turns of 500 ms for `tenant` (in call `{tenant}-c`), in the last minute.
fn turns(tenant: &str, count: usize, e2e_ms: f64) -> Vec<Value> {
    (0..count)
        .map(|i| turn(&format!("{tenant}-{e2e_ms}-{i}"), tenant, &format!("{tenant}-c"), -5_000, e2e_ms))
        .collect()
}

/// Counter value of a `/metrics` line starting with `series`, or 0.
async fn metric(app: &TestApp, series: &str) -> f64 {
    metric_as(app, series, None).await
}

/// As [`metric`], with a key (a server with keys shows `/metrics` to admin keys).
async fn metric_as(app: &TestApp, series: &str, key: Option<&str>) -> f64 {
    let response = app.get("/metrics", key).await;
    assert_eq!(response.status(), 200, "GET /metrics");
    let text = response.text().await.expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

async fn wait_for_metric(app: &TestApp, series: &str, at_least: f64) -> f64 {
    wait_for_metric_as(app, series, at_least, None).await
}

async fn wait_for_metric_as(app: &TestApp, series: &str, at_least: f64, key: Option<&str>) -> f64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = metric_as(app, series, key).await;
        if value >= at_least {
            return value;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value}, below {at_least}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_metric_eq(app: &TestApp, series: &str, wanted: f64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = metric(app, series).await;
        if value == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value}, not {wanted}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ------------------------------------------------------------------ subscription

#[tokio::test]
async fn a_subscriber_gets_the_components_interval_and_window_it_asked_for() {
    let app = spawn_app_with(|_| {}).await;
    app.ingest_ok(&turns("acme", 20, 500.0)).await;
    let mut socket = connect(&app, None).await;
    let hello = next_json(&mut socket).await;
    assert_eq!(hello, json!({"type": "hello", "version": 1, "auth": "ok"}));
    let default = next_of(&mut socket, "subscribed").await;
    assert_eq!(default["interval_s"], 5, "{default}");
    assert_eq!(default["window_s"], 300, "{default}");
    assert_eq!(default["components"], json!(["turn_e2e", "stt", "eou", "llm_ttft", "tts_ttfb"]));
    assert_eq!(default["all_tenants"], true, "open servers see every tenant: {default}");
    assert_eq!(default["tenants"], json!(["acme"]), "{default}");

    let request = json!({"tenant_id": "acme", "components": ["llm_ttft", "turn_e2e"], "interval_s": 1, "window_s": 120});
    let subscribed = subscribe(&mut socket, request).await;
    assert_eq!(subscribed["tenant_id"], "acme");
    assert_eq!(subscribed["components"], json!(["turn_e2e", "llm_ttft"]));
    let snapshot = loop {
        let snapshot = next_of(&mut socket, "snapshot").await;
        if snapshot["tenant_id"] == "acme" && snapshot["interval_s"] == 1 {
            break snapshot;
        }
    };
    let components = snapshot["latency"]["components"].as_object().expect("components");
    assert_eq!(components.keys().collect::<Vec<_>>(), ["llm_ttft", "turn_e2e"], "{snapshot}");
    let e2e = &snapshot["latency"]["components"]["turn_e2e"];
    assert_eq!(e2e["count"], 20, "{snapshot}");
    assert!((e2e["p95"].as_f64().expect("a p95") - 500.0).abs() <= 5.0, "within 1 %: {e2e}");
    assert_eq!(e2e["minutes"].as_array().expect("minutes").len(), 3, "2 minutes + the current one: {e2e}");
    assert_eq!(snapshot["window"]["seconds"], 120);
    assert_eq!(snapshot["computed_at_ms"], crate::helpers::NOW_MS, "the injected clock dates the snapshot");
    for part in ["calls", "cost", "health", "alerts"] {
        assert!(snapshot[part].is_object(), "{part} in {snapshot}");
    }
}

#[tokio::test]
async fn a_snapshot_reports_calls_cost_and_health_as_the_rest_api_does() {
    let app = spawn_app_with(|_| {}).await;
    let events = vec![
        event("call.started", "s1", "acme", -90_000, json!({"call_id": "c1"})),
        event("call.started", "s2", "acme", -60_000, json!({"call_id": "c2"})),
        event(
            "call.ended",
            "e1",
            "acme",
            -30_000,
            json!({"call_id": "c1", "duration_s": 60.0, "status": "completed"}),
        ),
        event(
            "llm.usage",
            "u1",
            "acme",
            -80_000,
            json!({"call_id": "c1", "provider": "openai", "model": "gpt-4o", "input_tokens": 0, "output_tokens": 10_000}),
        ),
        event(
            "worker.heartbeat",
            "h1",
            "acme",
            -1_000,
            json!({"worker_id": "w1", "memory_used_bytes": 100, "memory_limit_bytes": 1000, "cpu_percent": 5.0, "active_calls": 1}),
        ),
    ];
    app.ingest_ok(&events).await;
    let mut socket = connect(&app, None).await;
    subscribe(&mut socket, json!({"tenant_id": "acme", "interval_s": 1})).await;
    let snapshot = loop {
        let snapshot = next_of(&mut socket, "snapshot").await;
        if snapshot["tenant_id"] == "acme" {
            break snapshot;
        }
    };
    let calls = &snapshot["calls"];
    assert_eq!((calls["in_progress"].as_u64(), calls["completed"].as_u64()), (Some(1), Some(1)), "{calls}");
    assert_eq!(calls["success_rate"], 1.0, "{calls}");
    let (_, rest) = app
        .get_json("/metrics/cost?tenant_id=acme&from=2026-11-27T11:55:00Z&to=2026-11-27T12:00:00.001Z", None)
        .await;
    assert_eq!(snapshot["cost"]["total"], rest["total"], "the same total as REST over the window");
    assert_eq!(snapshot["cost"]["total"]["usd"], "0.10", "10 000 gpt-4o output tokens at $10 per million");
    assert_eq!(snapshot["cost"]["per_minute"]["usd"], "0.10", "{}", snapshot["cost"]);
    assert_eq!(snapshot["health"]["workers"]["up"], 1, "{}", snapshot["health"]);
    assert_eq!(snapshot["health"]["database"]["reachable"], true);
}

#[tokio::test]
async fn snapshots_come_once_per_interval_with_consecutive_numbers() {
    let app = spawn_app_with(|_| {}).await;
    let mut socket = connect(&app, None).await;
    subscribe(&mut socket, json!({"interval_s": 1, "components": ["turn_e2e"]})).await;
    let first = next_of(&mut socket, "snapshot").await;
    let started = Instant::now();
    let mut seqs = vec![first["seq"].as_u64().expect("seq")];
    for _ in 0..3 {
        let snapshot = next_of(&mut socket, "snapshot").await;
        assert_eq!(snapshot["interval_s"], 1);
        seqs.push(snapshot["seq"].as_u64().expect("seq"));
    }
    let elapsed = started.elapsed();
    let expected: Vec<u64> = (seqs[0]..seqs[0] + 4).collect();
    assert_eq!(seqs, expected, "one snapshot per tick, none skipped, none repeated");
    // Three intervals of 1 s separate the first and the fourth: never sooner.
    assert!(
        elapsed >= Duration::from_millis(2_900),
        "4 snapshots in {elapsed:?} is faster than 1 per second"
    );
}

#[tokio::test]
async fn subscribers_of_one_scope_share_one_feed() {
    let app = spawn_app_with(|_| {}).await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let mut socket = connect(&app, None).await;
        subscribe(&mut socket, json!({"interval_s": 1, "tenant_id": "acme"})).await;
        sockets.push(socket);
    }
    let mut seqs = Vec::new();
    for socket in &mut sockets {
        let snapshot = next_of(socket, "snapshot").await;
        assert_eq!(snapshot["tenant_id"], "acme");
        seqs.push(snapshot["seq"].as_u64().expect("seq"));
    }
    // One feed for the scope, whatever the number of subscribers (the default all-tenant
    // feed each socket joined first retires at its next tick, once nobody watches it).
    wait_for_metric_eq(&app, "voicemon_live_feeds ", 1.0).await;
    assert_eq!(metric(&app, "voicemon_live_connections ").await, 5.0);
    assert!(seqs.iter().max().unwrap_or(&0) - seqs.iter().min().unwrap_or(&0) <= 1, "one counter: {seqs:?}");
}

#[tokio::test]
async fn bad_subscriptions_get_an_error_and_keep_the_current_one() {
    let app = spawn_app_with(|_| {}).await;
    let mut socket = connect(&app, None).await;
    next_of(&mut socket, "subscribed").await;
    for (request, needle) in [
        (json!({"type": "subscribe", "interval_s": 0}), "interval_s"),
        (json!({"type": "subscribe", "components": ["ttfb"]}), "ttfb"),
        (json!({"type": "subscribe", "window_s": 90}), "window_s"),
        (json!({"type": "watch"}), "understands"),
    ] {
        send(&mut socket, request).await;
        let error = next_of(&mut socket, "error").await;
        assert_eq!(error["code"], "bad_request", "{error}");
        assert!(error["message"].as_str().unwrap_or_default().contains(needle), "{needle} in {error}");
    }
    let snapshot = next_of(&mut socket, "snapshot").await;
    assert_eq!(snapshot["interval_s"], 5, "still the default subscription");
}

// ------------------------------------------------------------------ access

/// An app with keys: a read key for acme, an ingest key for acme, an admin key.
async fn app_with_keys() -> (TestApp, TestKey, TestKey, TestKey) {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let reader = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let ingest = create_key(data_dir.path(), Role::Ingest, Some("acme")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    (app, reader, ingest, admin)
}

#[tokio::test]
async fn a_tenant_key_sees_only_its_tenant_even_when_it_asks_for_another() {
    let (app, reader, _, admin) = app_with_keys().await;
    let (status, _) =
        app.ingest(&[turns("acme", 3, 300.0), turns("globex", 7, 900.0)].concat(), admin.secret()).await;
    assert_eq!(status, 202);
    let mut socket = connect(&app, reader.secret()).await;
    assert_eq!(next_json(&mut socket).await["auth"], "ok");
    let subscribed = next_of(&mut socket, "subscribed").await;
    assert_eq!(subscribed["tenant_id"], "acme", "a tenant key subscribes to its tenant");
    assert_eq!(subscribed["tenants"], json!(["acme"]), "and is offered only its tenant");
    assert_eq!(subscribed["all_tenants"], false);

    send(&mut socket, json!({"type": "subscribe", "tenant_id": "globex", "interval_s": 1})).await;
    let error = next_of(&mut socket, "error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    subscribe(&mut socket, json!({"tenant_id": null, "interval_s": 1})).await;
    for _ in 0..2 {
        let snapshot = next_of(&mut socket, "snapshot").await;
        assert_eq!(snapshot["tenant_id"], "acme", "{snapshot}");
        assert_eq!(snapshot["latency"]["components"]["turn_e2e"]["count"], 3, "only acme's turns");
    }

    let mut admin_socket = connect(&app, admin.secret()).await;
    let subscribed = next_of(&mut admin_socket, "subscribed").await;
    assert_eq!(subscribed["tenant_id"], Value::Null, "an admin key watches every tenant");
    assert_eq!(subscribed["tenants"], json!(["acme", "globex"]));
    let snapshot = next_of(&mut admin_socket, "snapshot").await;
    assert_eq!(snapshot["latency"]["components"]["turn_e2e"]["count"], 10);
}

#[tokio::test]
async fn without_a_header_the_key_comes_in_the_first_message() {
    let (app, reader, _, _) = app_with_keys().await;
    let mut socket = connect(&app, None).await;
    assert_eq!(next_json(&mut socket).await, json!({"type": "hello", "version": 1, "auth": "required"}));
    send(&mut socket, json!({"type": "subscribe", "api_key": reader.secret, "interval_s": 1})).await;
    let subscribed = next_of(&mut socket, "subscribed").await;
    assert_eq!(subscribed["tenant_id"], "acme");
    assert_eq!(next_of(&mut socket, "snapshot").await["tenant_id"], "acme");

    let mut wrong = connect(&app, None).await;
    send(&mut wrong, json!({"type": "auth", "api_key": "vm_not_a_key"})).await;
    assert_eq!(close_code(&mut wrong).await.0, 4401, "an unknown key closes with 4401");
}

#[tokio::test]
async fn keys_in_the_header_are_checked_before_the_upgrade() {
    let (app, _, ingest, _) = app_with_keys().await;
    let status = |result: Result<Socket, tungstenite::Error>| match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("an HTTP refusal, got {other}"),
        Ok(_) => panic!("the upgrade was refused"),
    };
    assert_eq!(status(try_connect(&app, Some("vm_unknown")).await), 401);
    assert_eq!(status(try_connect(&app, ingest.secret()).await), 403, "an ingest key cannot read");
}

#[tokio::test]
async fn a_connection_that_sends_no_key_is_closed_after_the_auth_timeout() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |config| config.live.auth_timeout = Duration::from_millis(300)).await;
    let mut socket = connect(&app, None).await;
    assert_eq!(next_json(&mut socket).await["auth"], "required");
    assert_eq!(close_code(&mut socket).await.0, 4401);
    let series = "voicemon_live_dropped_total{reason=\"auth_timeout\"}";
    wait_for_metric_as(&app, series, 1.0, admin.secret()).await;
}

// ------------------------------------------------------------------ alerts

#[tokio::test]
async fn an_alert_that_fires_is_pushed_at_once_not_at_the_next_interval() {
    let app = spawn_app_with(|config| config.alerting.evaluation_interval = Duration::from_millis(200)).await;
    let mut socket = connect(&app, None).await;
    subscribe(&mut socket, json!({"interval_s": 300, "components": ["turn_e2e"]})).await;
    let first = next_of(&mut socket, "snapshot").await;
    assert_eq!(first["alerts"]["firing"], json!([]));
    // P95 of 1 500 ms over 5 min: the shipped turn_latency_p95_high rule fires (for: 0).
    app.ingest_ok(&turns("acme", 20, 1500.0)).await;
    let message = next_json(&mut socket).await;
    assert_eq!(message["type"], "alert", "the change comes before the next snapshot (300 s away): {message}");
    let change = &message["changes"][0];
    assert_eq!(change["change"], "firing", "{message}");
    assert_eq!(change["rule"], "turn_latency_p95_high");
    assert_eq!(change["labels"]["tenant_id"], "acme");
    assert!(change["annotations"]["summary"].as_str().unwrap_or_default().contains("acme"), "{change}");
}

#[tokio::test]
async fn a_tenant_subscriber_is_not_told_of_another_tenants_alert() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let globex = create_key(data_dir.path(), Role::Read, Some("globex")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app =
        spawn_app_in(data_dir, |config| config.alerting.evaluation_interval = Duration::from_millis(200))
            .await;
    let mut watcher = connect(&app, globex.secret()).await;
    subscribe(&mut watcher, json!({"interval_s": 300})).await;
    next_of(&mut watcher, "snapshot").await;
    let mut admin_socket = connect(&app, admin.secret()).await;
    subscribe(&mut admin_socket, json!({"interval_s": 300})).await;
    next_of(&mut admin_socket, "snapshot").await;
    let (status, _) = app.ingest(&turns("acme", 20, 1500.0), admin.secret()).await;
    assert_eq!(status, 202);
    assert_eq!(next_json(&mut admin_socket).await["type"], "alert", "the admin hears of acme's alert");
    // globex's first message after that must not be acme's alert: make one arrive.
    let (status, _) = app.ingest(&turns("globex", 20, 1500.0), admin.secret()).await;
    assert_eq!(status, 202);
    let message = next_json(&mut watcher).await;
    assert_eq!(message["type"], "alert", "{message}");
    let tenants: Vec<&Value> =
        message["changes"].as_array().expect("changes").iter().map(|c| &c["labels"]["tenant_id"]).collect();
    assert_eq!(tenants, [&json!("globex")], "only globex's own alert: {message}");
}

// ------------------------------------------------------------------ slow clients, heartbeats, shutdown

async fn next_seq(seqs: &mut tokio::sync::mpsc::UnboundedReceiver<u64>) -> u64 {
    tokio::time::timeout(PATIENCE, seqs.recv()).await.expect("a snapshot in time").expect("the reader runs")
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_for_a_missed_pong_and_others_go_on() {
    // A second between pings: ample for a client that reads to answer, even on a busy machine.
    let app = spawn_app_with(|config| config.live.ping_every = Duration::from_secs(1)).await;
    let mut healthy = connect(&app, None).await;
    subscribe(&mut healthy, json!({"interval_s": 1})).await;
    // The healthy client reads all the time (which answers pings) and reports snapshots.
    let (seqs, mut healthy_seqs) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            let snapshot = next_of(&mut healthy, "snapshot").await;
            if seqs.send(snapshot["seq"].as_u64().expect("seq")).is_err() {
                return;
            }
        }
    });
    // Never read: it answers no ping.
    let silent = connect(&app, None).await;
    wait_for_metric(&app, "voicemon_live_dropped_total{reason=\"no_pong\"}", 1.0).await;
    while healthy_seqs.try_recv().is_ok() {}
    let before = next_seq(&mut healthy_seqs).await;
    let after = next_seq(&mut healthy_seqs).await;
    assert_eq!(after, before + 1, "the healthy client goes on receiving every snapshot");
    assert_eq!(metric(&app, "voicemon_live_connections ").await, 1.0, "the silent one is gone");
    assert_eq!(
        metric(&app, "voicemon_live_dropped_total{reason=\"no_pong\"}").await,
        1.0,
        "only the silent one"
    );
    reader.abort();
    drop(silent);
}

#[tokio::test]
async fn a_client_whose_socket_stays_full_is_dropped_not_buffered() {
    let app = spawn_app_with(|config| {
        config.live.ping_every = Duration::from_secs(600);
        config.live.write_timeout = Duration::from_millis(500);
    })
    .await;
    // A client that sends requests but never reads the answers.
    let (flood, _unread) = flooding_client(&app, 100_000).await;
    let dropped = wait_for_metric(&app, "voicemon_live_dropped_total{reason=\"write_timeout\"}", 1.0).await;
    assert_eq!(dropped, 1.0);
    assert_eq!(metric(&app, "voicemon_live_connections ").await, 0.0, "nothing kept for it");
    flood.abort();
}

type Reader = futures_util::stream::SplitStream<Socket>;
type Writer = futures_util::stream::SplitSink<Socket, Message>;

/// A connection with a small receive buffer that subscribes to the all-tenant feed at
/// 1 s, then sends `count` requests that are each answered by an error message. Nothing
/// reads the answers until the test reads the returned stream.
async fn flooding_client(app: &TestApp, count: usize) -> (tokio::task::JoinHandle<Writer>, Reader) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small receive buffer");
    let address = app.address.trim_start_matches("http://").parse().expect("an address");
    let stream = socket.connect(address).await.expect("connects");
    let (client, _) = tokio_tungstenite::client_async(stream_url(app), MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrades");
    let (mut writer, reader) = client.split();
    let flood = tokio::spawn(async move {
        let _ = writer.feed(Message::text(json!({"type": "subscribe", "interval_s": 1}).to_string())).await;
        // Each is answered with an error message listing the fields a subscription has.
        let bad = Message::text(json!({"type": "subscribe", "x": 0}).to_string());
        for _ in 0..count {
            if writer.feed(bad.clone()).await.is_err() {
                break;
            }
        }
        let _ = writer.flush().await;
        writer
    });
    (flood, reader)
}

#[tokio::test]
async fn a_client_that_falls_behind_skips_snapshots_and_is_dropped_when_it_stays_behind() {
    let app = spawn_app_with(|config| {
        config.live.ping_every = Duration::from_secs(600);
        config.live.write_timeout = Duration::from_secs(600);
        config.live.queue_frames = 1;
        config.live.max_lag_strikes = 1;
    })
    .await;
    let mut watcher = connect(&app, None).await;
    subscribe(&mut watcher, json!({"interval_s": 1})).await;
    let (seqs, mut watcher_seqs) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let snapshot = next_of(&mut watcher, "snapshot").await;
            if seqs.send(snapshot["seq"].as_u64().expect("seq")).is_err() {
                return;
            }
        }
    });
    // The slow client joins the same all-tenant feed, then stops reading: the server's
    // writes to it stall while the feed goes on ticking.
    let (flood, mut slow) = flooding_client(&app, 100_000).await;
    let start = next_seq(&mut watcher_seqs).await;
    while next_seq(&mut watcher_seqs).await < start + 5 {}
    // Now it reads again: its next snapshot is gone from the queue (skipped), and one skip
    // is all it may have here: it is disconnected as too slow.
    let (code, reason) = close_code(&mut slow).await;
    assert_eq!(code, 4408, "{reason}");
    assert!(metric(&app, "voicemon_live_skipped_messages_total").await >= 1.0);
    assert_eq!(metric(&app, "voicemon_live_dropped_total{reason=\"lagging\"}").await, 1.0);
    let before = next_seq(&mut watcher_seqs).await;
    assert_eq!(next_seq(&mut watcher_seqs).await, before + 1, "the other subscriber never skipped");
    flood.abort();
}

#[tokio::test]
async fn subscriptions_are_limited_per_connection() {
    let app = spawn_app_with(|_| {}).await;
    let mut socket = connect(&app, None).await;
    next_of(&mut socket, "subscribed").await;
    for interval in 1..10 {
        subscribe(&mut socket, json!({"interval_s": interval})).await;
    }
    send(&mut socket, json!({"type": "subscribe", "interval_s": 20})).await;
    let error = next_of(&mut socket, "error").await;
    assert_eq!(error["code"], "too_many_requests", "{error}");
}

#[tokio::test]
async fn shutdown_closes_live_connections_with_going_away() {
    let app = spawn_app_with(|_| {}).await;
    let mut socket = connect(&app, None).await;
    next_of(&mut socket, "subscribed").await;
    let closing = tokio::spawn(async move { close_code(&mut socket).await });
    tokio::time::timeout(PATIENCE, app.shutdown()).await.expect("shutdown does not wait for ever");
    let (code, reason) = closing.await.expect("the reader");
    assert_eq!(code, u16::from(CloseCode::Away), "{reason}");
    assert!(reason.contains("shutting down"), "{reason}");
}

// ------------------------------------------------------------------ page

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let app = spawn_app_with(|_| {}).await;
    let page = app.get("/", None).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or_default()
        .contains("default-src 'self'"));
    let html = page.text().await.expect("html");
    assert!(html.contains("/assets/live.js") && html.contains("uplot-1.6.32"), "{html}");

    let script = app.get("/assets/live.js", None).await;
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(script.headers()["cache-control"], "no-cache");
    let etag = script.headers()["etag"].to_str().expect("an etag").to_owned();
    let again =
        app.client.get(app.url("/assets/live.js")).header("if-none-match", &etag).send().await.expect("sent");
    assert_eq!(again.status(), 304, "an unchanged asset is not sent again");

    let chart = app.get("/assets/vendor/uplot-1.6.32/uPlot.iife.min.js", None).await;
    assert_eq!(chart.status(), 200);
    assert!(chart.headers()["cache-control"].to_str().unwrap_or_default().contains("immutable"));
    let licence = app.get("/assets/vendor/uplot-1.6.32/LICENSE", None).await.text().await.expect("text");
    assert!(licence.contains("MIT License"));
    let (status, _) = app.get_json("/assets/nope.js", None).await;
    assert_eq!(status, 404);
}

/// Opens `/metrics/stream` as a page at `origin` would; the HTTP status of a refusal.
async fn upgrade_status_from(app: &TestApp, origin: &str) -> u16 {
    let mut request = stream_url(app).into_client_request().expect("a request");
    request.headers_mut().insert("origin", origin.parse().expect("a header value"));
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("an answer to the upgrade, got {other}"),
    }
}

#[tokio::test]
async fn a_page_of_another_origin_cannot_open_the_stream_with_or_without_keys() {
    let open = spawn_app_with(|_| {}).await;
    assert_eq!(upgrade_status_from(&open, "https://evil.example").await, 403);
    assert_eq!(upgrade_status_from(&open, "null").await, 403);
    let (keyed, _, _, _) = app_with_keys().await;
    assert_eq!(upgrade_status_from(&keyed, "https://evil.example").await, 403);
}

#[tokio::test]
async fn the_page_of_voicemons_own_origin_and_allowed_origins_open_the_stream() {
    let app = spawn_app_with(|config| {
        config.allowed_origins = AllowedOrigins::parse(["https://grafana.example.com"]).expect("an origin");
    })
    .await;
    assert_eq!(upgrade_status_from(&app, &app.address).await, 101, "the page at / is the same origin");
    assert_eq!(upgrade_status_from(&app, "https://grafana.example.com").await, 101);
    assert_eq!(upgrade_status_from(&app, "https://grafana.example.com.evil.example").await, 403);
}

//! OTLP/HTTP into the real binary (`POST /v1/traces`, `POST /v1/metrics`).
//!
//! The framework test runs the real Python frameworks (Pipecat, LiveKit Agents: drivers in
//! `scripts/otlp/`) against voicemon, exporting with their own OTLP exporters, and checks
//! voicemon's answers against what each framework measured; it needs the virtualenv
//! `.ci/run` makes, named by `VOICEMON_TEST_FRAMEWORKS_PYTHON`. The fixture test replays
//! exports those drivers' exporters sent (captured in `tests/fixtures/otlp/`) and always
//! runs, as do the protocol tests, which build OTLP bodies themselves.

mod common;

use common::{Server, BIN};
use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value as Json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn key(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(["keys", "create", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .output()
        .expect("voicemon keys create");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// voicemon on a fresh data directory (`dir`/data) with an ingest and a read key of
/// tenant `acme` and an admin key of every tenant.
struct Acme {
    dir: tempfile::TempDir,
    server: Server,
    ingest: String,
    read: String,
    admin: String,
}

impl Acme {
    fn start() -> Acme {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let ingest = key(&data, &["--role", "ingest", "--tenant", "acme", "--name", "agents"]);
        let read = key(&data, &["--role", "read", "--tenant", "acme", "--name", "dashboards"]);
        let admin = key(&data, &["--role", "admin", "--name", "ops"]);
        let server = Server::start(&data, None, &[]);
        Acme { dir, server, ingest, read, admin }
    }
}

async fn get(client: &reqwest::Client, server: &Server, key: &str, path: &str) -> Json {
    let response = client.get(server.url(path)).bearer_auth(key).send().await.expect("voicemon answers");
    let status = response.status();
    let body: Json = response.json().await.expect("JSON");
    assert!(status.is_success(), "GET {path}: {status} {body}");
    body
}

/// `lines` of one call's itemised cost, of `component`.
fn lines<'a>(cost: &'a Json, component: &str) -> Vec<&'a Json> {
    cost["lines"].as_array().unwrap().iter().filter(|line| line["component"] == component).collect()
}

fn latency_count(answer: &Json) -> u64 {
    answer["overall"]["count"].as_u64().unwrap_or(0)
}

/// What a framework measured (its driver's `--summary`, or a fixture's `measured.json`)
/// against what voicemon answers for the call: every turn's end-to-end latency, tokens,
/// characters, STT audio, and the provider requests and their failures.
async fn answers_equal_what_was_measured(
    client: &reqwest::Client,
    server: &Server,
    key: &str,
    call_id: &str,
    measured: &Json,
) {
    let call = get(client, server, key, &format!("/calls/{call_id}")).await;
    let turns: Vec<f64> =
        call["turns"].as_array().unwrap().iter().map(|t| t["e2e_ms"].as_f64().unwrap()).collect();
    let expected: Vec<f64> =
        measured["turns"].as_array().unwrap().iter().map(|t| t["e2e_ms"].as_f64().unwrap()).collect();
    assert_eq!(turns.len(), expected.len(), "turns of {call_id}: {call}");
    for (stored, measured) in turns.iter().zip(&expected) {
        // SQLite keeps latencies in tenths of a millisecond.
        assert!(
            (stored - measured).abs() <= 0.05,
            "{call_id}: a turn of {measured} ms is stored as {stored} ms"
        );
    }
    let lines = call["cost"]["lines"].as_array().unwrap();
    let sum = |component: &str, quantity: &str| -> f64 {
        lines
            .iter()
            .filter(|line| line["component"] == component)
            .filter_map(|line| line["quantity"][quantity].as_f64())
            .sum()
    };
    assert_eq!(sum("llm", "input_tokens"), measured["llm"]["input_tokens"].as_f64().unwrap(), "{call}");
    assert_eq!(sum("llm", "output_tokens"), measured["llm"]["output_tokens"].as_f64().unwrap(), "{call}");
    assert_eq!(sum("tts", "characters"), measured["tts"]["characters"].as_f64().unwrap(), "{call}");
    if let Some(audio) = measured["stt"]["audio_seconds"].as_f64() {
        assert!((sum("stt", "audio_seconds") - audio).abs() < 1e-9, "{call}");
    }
    let requests = call["requests"].as_array().unwrap();
    let failed = requests.iter().filter(|r| r["ok"] == false).count() as u64;
    match measured.get("attempts") {
        // LiveKit: a provider request per attempt.
        Some(attempts) => {
            assert_eq!(requests.len() as u64, attempts["requests"].as_u64().unwrap(), "{call}");
            assert_eq!(failed, attempts["errors"].as_u64().unwrap(), "{call}");
        }
        // Pipecat: one per STT, LLM and TTS span.
        None => {
            let all =
                ["stt", "llm", "tts"].iter().map(|c| measured[c]["requests"].as_u64().unwrap()).sum::<u64>();
            assert_eq!(requests.len() as u64, all, "{call}");
            assert_eq!(failed, measured["llm"]["errors"].as_u64().unwrap(), "{call}");
        }
    }
}

// ------------------------------------------------------------------ captured exports

/// The fixtures: what the drivers' real exporters sent (`NN-traces.pb.gz`,
/// `NN-metrics.pb.gz`: protobuf, gzip, as captured by `scripts/otlp/capture.py`) and what
/// the framework measured (`measured.json`).
fn fixtures(framework: &str) -> (Vec<(String, Vec<u8>)>, Json) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otlp").join(framework);
    let mut bodies: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".pb.gz"))
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect();
    bodies.sort();
    let measured = serde_json::from_slice(&std::fs::read(dir.join("measured.json")).unwrap()).unwrap();
    (bodies, measured)
}

#[tokio::test(flavor = "multi_thread")]
async fn captured_pipecat_and_livekit_exports_give_what_the_frameworks_measured() {
    // `_dir` keeps the data directory for the whole test (`..` would delete it at once).
    let Acme { dir: _dir, server, ingest, read, .. } = Acme::start();
    let client = reqwest::Client::new();
    for (framework, call_id) in [("pipecat", "conv-fixture"), ("livekit", "RM_fixture")] {
        let (bodies, measured) = fixtures(framework);
        for (name, body) in bodies {
            let path = if name.contains("metrics") { "/v1/metrics" } else { "/v1/traces" };
            let response = client
                .post(server.url(path))
                .bearer_auth(&ingest)
                .header("content-type", "application/x-protobuf")
                .header("content-encoding", "gzip")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{framework} {name}");
        }
        answers_equal_what_was_measured(&client, &server, &read, call_id, &measured).await;
    }
}

// ------------------------------------------------------------------ the real frameworks

fn frameworks_python() -> Option<PathBuf> {
    match std::env::var("VOICEMON_TEST_FRAMEWORKS_PYTHON") {
        Ok(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            eprintln!(
                "skipping the Pipecat and LiveKit Agents OTLP test: set VOICEMON_TEST_FRAMEWORKS_PYTHON to a \
                 python with scripts/otlp/requirements.txt installed (.ci/run makes one)"
            );
            None
        }
    }
}

fn driver(python: &Path, script: &str, server: &Server, key: &str, args: &[&str]) -> std::process::Child {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/otlp");
    Command::new(python)
        .arg(scripts.join(script))
        .args(["--endpoint", &server.base, "--header", &format!("Authorization=Bearer {key}")])
        .args(args)
        .current_dir(&scripts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{} runs {script}: {err}", python.display()))
}

fn finish(child: std::process::Child, what: &str) {
    let output = child.wait_with_output().expect("the driver ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what} failed:\n{stderr}");
    // The exporters log every refused export; voicemon must have taken them all.
    assert!(!stderr.contains("Failed to export"), "{what}: an export was refused:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pipecat_and_livekit_traces_become_calls_turns_usage_and_provider_errors() {
    let Some(python) = frameworks_python() else { return };
    let Acme { dir, server, ingest, read, admin } = Acme::start();
    let client = reqwest::Client::new();

    // Both frameworks at once, each exporting with its own OTLP exporter; Pipecat with
    // gzip and an LLM failure in its second turn.
    let pipecat_measured = dir.path().join("pipecat.json");
    let livekit_measured = dir.path().join("livekit.json");
    let pipecat = driver(
        &python,
        "pipecat_call.py",
        &server,
        &ingest,
        &[
            "--conversation-id",
            "conv-pipecat",
            "--turns",
            "3",
            "--gzip",
            "--error-turn",
            "2",
            "--summary",
            pipecat_measured.to_str().unwrap(),
        ],
    );
    let livekit = driver(
        &python,
        "livekit_call.py",
        &server,
        &ingest,
        &["--room", "RM_livekit", "--turns", "2", "--summary", livekit_measured.to_str().unwrap()],
    );
    finish(pipecat, "pipecat_call.py");
    finish(livekit, "livekit_call.py");
    // Every turn's latency, the tokens, characters, audio and errors, as each framework
    // measured them.
    let measured = |path: &Path| serde_json::from_slice::<Json>(&std::fs::read(path).unwrap()).unwrap();
    answers_equal_what_was_measured(&client, &server, &read, "conv-pipecat", &measured(&pipecat_measured))
        .await;
    answers_equal_what_was_measured(&client, &server, &read, "RM_livekit", &measured(&livekit_measured))
        .await;

    // The call spans end last: both calls ended.
    let calls = get(&client, &server, &read, "/metrics/calls").await;
    assert_eq!((calls["total"].as_u64(), calls["completed"].as_u64()), (Some(2), Some(2)), "{calls}");

    // Pipecat: a turn per bot answer (the failed LLM left the second turn open until the
    // user spoke again), each with its STT, LLM and TTS latencies.
    let latency = |agent: &str, component: &str| {
        format!("/metrics/latency?agent_id=voicemon-{agent}-driver&component={component}")
    };
    for component in ["turn_e2e", "stt", "llm_ttft"] {
        let answer = get(&client, &server, &read, &latency("pipecat", component)).await;
        assert_eq!(latency_count(&answer), 2, "pipecat {component}: {answer}");
    }
    // A TTS request that starts after Pipecat closed its turn hangs under the conversation
    // instead (its usage still counts, below).
    let tts = get(&client, &server, &read, &latency("pipecat", "tts_ttfb")).await;
    assert!((1..=2).contains(&latency_count(&tts)), "pipecat tts_ttfb: {tts}");
    let e2e = get(&client, &server, &read, &latency("pipecat", "turn_e2e")).await;
    let p50 = e2e["overall"]["p50"].as_f64().unwrap();
    assert!((100.0..10_000.0).contains(&p50), "user → bot latency in ms: {p50}");

    // LiveKit: its two agent turns, with the end-of-turn delay it measures.
    for component in ["turn_e2e", "eou", "llm_ttft", "tts_ttfb"] {
        let answer = get(&client, &server, &read, &latency("livekit", component)).await;
        assert_eq!(latency_count(&answer), 2, "livekit {component}: {answer}");
    }

    // Usage lines, costed by the price book.
    let pipecat = get(&client, &server, &read, "/metrics/cost?call_id=conv-pipecat").await;
    let llm = lines(&pipecat, "llm");
    assert_eq!(llm.len(), 2, "one LLM request failed and has no usage: {pipecat}");
    for line in &llm {
        assert_eq!(
            (line["provider"].as_str(), line["model"].as_str()),
            (Some("openai"), Some("gpt-4o-mini-2024-07-18"))
        );
        assert!(line["quantity"]["input_tokens"].as_u64().unwrap() > 0, "{line}");
        assert!(!line["cost"].is_null(), "priced as gpt-4o-mini: {line}");
    }
    let stt = lines(&pipecat, "stt");
    assert_eq!(stt.len(), 3, "one STT request per user utterance: {pipecat}");
    assert!(stt.iter().all(|line| line["model"] == "whisper-1" && !line["cost"].is_null()), "{pipecat}");
    let tts = lines(&pipecat, "tts");
    assert_eq!(tts.len(), 2, "{pipecat}");
    assert!(tts.iter().all(|line| line["quantity"]["characters"].as_u64().unwrap() > 0), "{pipecat}");

    let livekit = get(&client, &server, &read, "/metrics/cost?call_id=RM_livekit").await;
    assert_eq!(livekit["unpriced_lines"], 0, "every line priced: {livekit}");
    assert_eq!(lines(&livekit, "llm").len(), 2, "{livekit}");
    assert!(lines(&livekit, "tts").iter().all(|line| line["model"] == "tts-1"), "{livekit}");
    // LiveKit counts STT audio only in its lk.agents.usage metrics (POST /v1/metrics).
    let audio: f64 =
        lines(&livekit, "stt").iter().map(|line| line["quantity"]["audio_seconds"].as_f64().unwrap()).sum();
    assert!(audio > 1.5, "about a second of audio per user turn: {livekit}");
    assert!(lines(&livekit, "stt").iter().all(|line| line["provider"] == "deepgram"), "{livekit}");

    // The failed LLM request, from its error span.
    let health = get(&client, &server, &read, "/metrics/health").await;
    let openai =
        health["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "openai").expect("openai");
    let errors = openai["errors_24h"].to_string();
    assert!(errors.contains("InternalServerError"), "{health}");

    assert_eq!(
        common::metric_with_key(
            &client,
            &server,
            Some(&admin),
            "voicemon_otlp_spans_total{outcome=\"rejected\"}"
        )
        .await,
        0.0
    );
    assert_eq!(
        common::metric_with_key(&client, &server, Some(&admin), "voicemon_otlp_held_spans").await,
        0.0
    );
}

// ------------------------------------------------------------------ the protocol

const TRACE: [u8; 16] =
    [0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c];

fn attribute(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
}

fn text(key: &str, value: &str) -> KeyValue {
    attribute(key, Value::StringValue(value.into()))
}

fn span(trace: [u8; 16], id: u8, parent: Option<u8>, name: &str, attributes: Vec<KeyValue>) -> Span {
    let start = (common::now_ms() as u64 - 5_000) * 1_000_000;
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000_000,
        attributes,
        ..Span::default()
    }
}

/// One Pipecat turn of conversation `conversation`: an LLM request under a turn.
fn pipecat_turn(trace: [u8; 16], conversation: &str) -> Vec<Span> {
    vec![
        span(
            trace,
            2,
            Some(1),
            "llm",
            vec![
                text("gen_ai.provider.name", "openai"),
                text("gen_ai.request.model", "gpt-4o-mini-2024-07-18"),
                attribute("gen_ai.usage.input_tokens", Value::IntValue(1000)),
                attribute("gen_ai.usage.output_tokens", Value::IntValue(100)),
                attribute("metrics.ttfb", Value::DoubleValue(0.4)),
            ],
        ),
        span(
            trace,
            1,
            Some(9),
            "turn",
            vec![
                text("conversation.id", conversation),
                attribute("turn.number", Value::IntValue(1)),
                attribute("turn.user_bot_latency_seconds", Value::DoubleValue(0.9)),
            ],
        ),
    ]
}

fn request(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: resource, ..Resource::default() }),
            scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn post(
    client: &reqwest::Client,
    server: &Server,
    key: Option<&str>,
    content_type: &str,
    gzipped: bool,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut post = client.post(server.url("/v1/traces")).header("content-type", content_type);
    if let Some(key) = key {
        post = post.bearer_auth(key);
    }
    let body = if gzipped {
        post = post.header("content-encoding", "gzip");
        gzip(&body)
    } else {
        body
    };
    post.body(body).send().await.expect("voicemon answers")
}

async fn export(
    client: &reqwest::Client,
    server: &Server,
    key: &str,
    request: &ExportTraceServiceRequest,
) -> ExportTraceServiceResponse {
    let response =
        post(client, server, Some(key), "application/x-protobuf", true, request.encode_to_vec()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    ExportTraceServiceResponse::decode(response.bytes().await.unwrap())
        .expect("an ExportTraceServiceResponse")
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_are_idempotent_tenant_bound_and_answered_as_otlp_asks() {
    let Acme { dir: _dir, server, ingest, read, admin } = Acme::start();
    let client = reqwest::Client::new();

    // Protobuf, gzip: the turn and its LLM request; then the exporter's retry.
    let body = request(vec![text("service.name", "bot")], pipecat_turn(TRACE, "conv-1"));
    assert_eq!(export(&client, &server, &ingest, &body).await.partial_success, None);
    assert_eq!(export(&client, &server, &ingest, &body).await.partial_success, None);
    let cost = get(&client, &server, &read, "/metrics/cost?call_id=conv-1").await;
    assert_eq!(lines(&cost, "llm").len(), 1, "stored once: {cost}");
    assert_eq!(cost["tenant_id"], "acme");
    let e2e = get(&client, &server, &read, "/metrics/latency?tenant_id=acme&agent_id=bot").await;
    assert_eq!(latency_count(&e2e), 1, "{e2e}");

    // OTLP/JSON (hex ids, int64 as strings), answered in JSON.
    let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "bot"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "parentSpanId": "00f067aa0ba902b7", "name": "llm",
            "startTimeUnixNano": ((common::now_ms() - 3_000) * 1_000_000).to_string(),
            "endTimeUnixNano": ((common::now_ms() - 2_000) * 1_000_000).to_string(),
            "attributes": [
                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "5"}}]}]}]}]});
    let response =
        post(&client, &server, Some(&ingest), "application/json", false, json.to_string().into_bytes()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Json = response.json().await.unwrap();
    assert!(answer.get("partialSuccess").is_none_or(Json::is_null), "{answer}");

    // A key of one tenant never writes another: the spans are refused, and said so.
    let other = request(vec![text("voicemon.tenant_id", "globex")], pipecat_turn([7; 16], "conv-globex"));
    let refused = export(&client, &server, &ingest, &other).await.partial_success.expect("a partial success");
    assert_eq!(refused.rejected_spans, 2);
    assert!(
        refused.error_message.contains("acme") && refused.error_message.contains("globex"),
        "{refused:?}"
    );
    // A key of every tenant must name one; then its spans are that tenant's.
    let unnamed = request(vec![], pipecat_turn([8; 16], "conv-unnamed"));
    let refused =
        export(&client, &server, &admin, &unnamed).await.partial_success.expect("a partial success");
    assert!(refused.error_message.contains("voicemon.tenant_id"), "{refused:?}");
    assert_eq!(export(&client, &server, &admin, &other).await.partial_success, None);
    let globex = get(&client, &server, &admin, "/metrics/cost?call_id=conv-globex").await;
    assert_eq!(globex["tenant_id"], "globex");

    // Errors as OTLP/HTTP answers them: a google.rpc.Status in the request's encoding.
    let response =
        post(&client, &server, Some(&ingest), "application/x-protobuf", false, b"\xff\xff\xff".to_vec())
            .await;
    assert_eq!(response.status(), 400);
    let status = response.bytes().await.unwrap();
    assert!(
        status.len() > 2 && status[0] == 0x08 && status[1] == 3,
        "Status {{code: INVALID_ARGUMENT}}: {status:?}"
    );
    let response = post(&client, &server, Some(&ingest), "text/plain", false, b"{}".to_vec()).await;
    assert_eq!(response.status(), 415);
    let response = post(&client, &server, None, "application/json", false, b"{}".to_vec()).await;
    assert_eq!(response.status(), 401);
    let status: Json = response.json().await.unwrap();
    assert_eq!(status["code"], 16, "UNAUTHENTICATED: {status}");
    let response = post(&client, &server, Some(&read), "application/json", false, b"{}".to_vec()).await;
    assert_eq!(response.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_waiting_for_their_turn_are_stored_at_shutdown() {
    let Acme { dir, server, ingest, read, admin } = Acme::start();
    let data = dir.path().join("data");
    let client = reqwest::Client::new();

    // The LLM request has arrived; its turn has not.
    let mut spans = pipecat_turn(TRACE, "conv-1");
    spans.truncate(1);
    export(&client, &server, &ingest, &request(vec![], spans)).await;
    assert_eq!(
        common::metric_with_key(&client, &server, Some(&admin), "voicemon_otlp_held_spans").await,
        1.0
    );
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success(), "{status}");

    // Stored as usage, under the trace id: no span named the conversation.
    let server = Server::start(&data, None, &[]);
    let trace: String = TRACE.iter().map(|b| format!("{b:02x}")).collect();
    let cost = get(&client, &server, &read, &format!("/metrics/cost?call_id={trace}")).await;
    assert_eq!(lines(&cost, "llm").len(), 1, "{cost}");
}

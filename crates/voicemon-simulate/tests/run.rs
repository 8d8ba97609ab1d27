//! `run` end to end against a stand-in voicemon (wiremock) on loopback: `GET /healthz`
//! answers 200, `POST /v1/events` answers like voicemon after validating every line with
//! the core's contract code, and the first POSTs may be scripted (503, 401…). What the
//! simulator sent is read back from the requests wiremock recorded.

use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;
use voicemon_core::clock::{Clock, SystemClock};
use voicemon_core::validate::parse_event;
use voicemon_simulate::{run, SimulateError, SimulateOptions};
use wiremock::matchers::{header as header_is, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

// ------------------------------------------------------------------ the stand-in voicemon

/// Answers `POST /v1/events` as voicemon does: 202 with what it accepted and the
/// rejections, each line judged by the real contract code.
struct IngestLikeVoicemon;

impl Respond for IngestLikeVoicemon {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now_ms = SystemClock.now_ms();
        let lines = ndjson_lines(request);
        let rejected: Vec<_> = lines
            .iter()
            .enumerate()
            .filter_map(|(index, line)| parse_event(line, now_ms).err().map(|err| (index, err)))
            .map(|(index, err)| {
                json!({ "index": index, "field": err.field, "reason": err.reason, "error": err.message })
            })
            .collect();
        let accepted = lines.len() - rejected.len();
        let answer = json!({
            "accepted": accepted, "duplicates": 0, "rejected_count": rejected.len(), "rejected": rejected,
        });
        ResponseTemplate::new(202).set_body_json(answer)
    }
}

/// What voicemon answers with `status` instead of taking a batch.
fn scripted_answer(status: u16) -> ResponseTemplate {
    let error = |code: &str, message: &str| json!({ "error": { "code": code, "message": message } });
    match status {
        401 => ResponseTemplate::new(401).set_body_json(error("unauthorized", "unknown api key")),
        503 => ResponseTemplate::new(503)
            .insert_header("Retry-After", "1")
            .set_body_json(error("unavailable", "storage is unavailable")),
        other => ResponseTemplate::new(other).set_body_json(json!({})),
    }
}

/// A stand-in voicemon whose first POSTs get the statuses of `script`, in order, and
/// every later one a 202.
struct StandIn {
    server: MockServer,
    script: Vec<u16>,
}

impl StandIn {
    async fn start(script: Vec<u16>) -> StandIn {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/healthz"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        for &status in &script {
            // Mocks of equal priority match in mounting order; each answers once.
            Mock::given(method("POST"))
                .and(path("/v1/events"))
                .respond_with(scripted_answer(status))
                .up_to_n_times(1)
                .with_priority(1)
                .mount(&server)
                .await;
        }
        // voicemon reads only JSON and NDJSON bodies: a batch of another type is not taken.
        Mock::given(method("POST"))
            .and(path("/v1/events"))
            .and(header_is("content-type", "application/x-ndjson"))
            .respond_with(IngestLikeVoicemon)
            .with_priority(2)
            .mount(&server)
            .await;
        StandIn { server, script }
    }

    fn url(&self) -> String {
        self.server.uri()
    }

    /// What the stand-in received so far.
    async fn seen(&self) -> Seen {
        let requests = self.server.received_requests().await.expect("wiremock records requests");
        let posts: Vec<&Request> = requests.iter().filter(|r| r.url.path() == "/v1/events").collect();
        let mut seen = Seen { posts: posts.len(), ..Seen::default() };
        for post in &posts {
            seen.content_types.extend(header(post, "content-type"));
            seen.authorizations.extend(header(post, "authorization"));
        }
        let now_ms = SystemClock.now_ms();
        for line in posts.iter().skip(self.script.len()).flat_map(|post| ndjson_lines(post)) {
            seen.lines += 1;
            seen.valid += usize::from(parse_event(&line, now_ms).is_ok());
            seen.call_started += usize::from(line.contains(r#""type":"call.started""#));
        }
        seen
    }
}

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    posts: usize,
    /// Lines of the POSTs answered 202, and how many of them validated.
    lines: usize,
    valid: usize,
    call_started: usize,
    content_types: HashSet<String>,
    authorizations: HashSet<String>,
}

fn ndjson_lines(request: &Request) -> Vec<String> {
    let text = String::from_utf8_lossy(&request.body);
    text.lines().filter(|line| !line.trim().is_empty()).map(str::to_owned).collect()
}

fn header(request: &Request, name: &str) -> Option<String> {
    let value = request.headers.get(name)?;
    value.to_str().ok().map(str::to_owned)
}

/// Three minutes of backfill, then one second live, sent to the stand-in at `url`.
fn options_for(url: &str) -> SimulateOptions {
    SimulateOptions {
        base_url: url.to_owned(),
        api_key: Some("vm_test_key".to_owned()),
        duration: Some(Duration::from_secs(1)),
        backfill: Some(Duration::from_secs(3 * 60)),
        seed: Some(42),
        batch_max_events: 200,
        ..SimulateOptions::default()
    }
}

// ------------------------------------------------------------------ a run

#[tokio::test]
async fn run_with_backfill_reports_exactly_what_the_server_received() {
    let stand_in = StandIn::start(Vec::new()).await;
    let (_stop, shutdown) = watch::channel(false);
    let mut reports = 0;
    let summary = run(options_for(&stand_in.url()), shutdown, |_| reports += 1).await.expect("run succeeds");
    let seen = stand_in.seen().await;
    assert!(seen.posts >= 10, "only {} posts for 3 minutes of backfill", seen.posts);
    assert_eq!(summary.events_sent, seen.lines as u64);
    assert_eq!(summary.accepted, seen.valid as u64);
    assert_eq!(summary.accepted, summary.events_sent, "first rejection: {:?}", summary.first_rejection);
    assert_eq!((summary.rejected, summary.failed_requests), (0, 0));
    assert_eq!(summary.calls_started, seen.call_started as u64);
    assert!(summary.calls_started > 100, "{summary}");
    assert_eq!(summary.calls_ended + summary.calls_active, summary.calls_started);
    assert!(reports >= 1);
    assert_eq!(seen.content_types, HashSet::from(["application/x-ndjson".to_owned()]));
    assert_eq!(seen.authorizations, HashSet::from(["Bearer vm_test_key".to_owned()]));
}

#[tokio::test]
async fn shutdown_stops_an_endless_run_and_flushes() {
    let stand_in = StandIn::start(Vec::new()).await;
    let (stop, shutdown) = watch::channel(false);
    let options = SimulateOptions {
        duration: None,
        backfill: Some(Duration::from_secs(30)),
        ..options_for(&stand_in.url())
    };
    let (reported, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let handle = tokio::spawn(run(options, shutdown, move |_| {
        let _ = reported.send(());
    }));
    // The live loop reports at each tick, the backfill at most once a second after a
    // batch: a report means the run is under way and has sent.
    tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .expect("the run reports progress")
        .expect("the run is still going");
    stop.send(true).expect("the run still listens");
    let summary = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("run stops soon after shutdown")
        .expect("run task does not panic")
        .expect("run succeeds");
    let seen = stand_in.seen().await;
    assert!(summary.events_sent > 0);
    assert_eq!(summary.events_sent, seen.lines as u64);
}

#[tokio::test]
async fn shutdown_during_backfill_sends_only_what_was_generated() {
    let stand_in = StandIn::start(Vec::new()).await;
    let (stop, shutdown) = watch::channel(false);
    let options = SimulateOptions {
        duration: None,
        backfill: Some(Duration::from_secs(24 * 3600)),
        batch_max_events: 50,
        ..options_for(&stand_in.url())
    };
    let handle = tokio::spawn(run(options, shutdown, |_| {}));
    // Stop once the backfill is sending: the stand-in has its first post.
    tokio::time::timeout(Duration::from_secs(10), async {
        while stand_in.seen().await.posts == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the backfill posts its first batch");
    stop.send(true).expect("the run still listens");
    let summary = tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("run stops soon after shutdown")
        .expect("run task does not panic")
        .expect("run succeeds");
    let seen = stand_in.seen().await;
    assert_eq!(summary.events_sent, seen.lines as u64);
    // A day of history is about five million events; only a sliver was generated.
    assert!(summary.events_sent < 500_000, "{summary}");
}

// ------------------------------------------------------------------ voicemon's answers

#[tokio::test]
async fn a_503_is_retried_after_retry_after_and_nothing_is_lost() {
    let stand_in = StandIn::start(vec![503]).await;
    let (_stop, shutdown) = watch::channel(false);
    let options = SimulateOptions {
        backfill: Some(Duration::from_secs(60)),
        duration: Some(Duration::ZERO),
        ..options_for(&stand_in.url())
    };
    let started = std::time::Instant::now();
    let summary = run(options, shutdown, |_| {}).await.expect("run succeeds");
    let seen = stand_in.seen().await;
    assert!(started.elapsed() >= Duration::from_secs(1), "retry-after was not honoured");
    assert_eq!(summary.failed_requests, 0);
    assert_eq!(summary.events_sent, seen.lines as u64);
    assert_eq!(summary.accepted, seen.lines as u64);
}

#[tokio::test]
async fn a_refused_api_key_stops_the_run_with_a_clear_error() {
    let stand_in = StandIn::start(vec![401]).await;
    let (_stop, shutdown) = watch::channel(false);
    let error = run(options_for(&stand_in.url()), shutdown, |_| {}).await.expect_err("401 stops the run");
    assert!(matches!(error, SimulateError::AuthRefused { status: 401, .. }), "{error}");
    assert_eq!(error.to_string(), "voicemon refused the api key (401): unauthorized: unknown api key");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_at_start() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    drop(listener);
    let (_stop, shutdown) = watch::channel(false);
    let error = run(options_for(&url), shutdown, |_| {}).await.expect_err("nothing listens");
    assert!(matches!(error, SimulateError::Unreachable { .. }), "{error}");
    assert!(error.to_string().starts_with("voicemon is unreachable at http://127.0.0.1:"));
}

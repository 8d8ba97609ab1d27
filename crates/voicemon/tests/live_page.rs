//! The built-in page in a real headless Chromium, against the real binary serving
//! simulated traffic (`voicemon serve --demo`): it loads without console errors, its
//! chart has data, its figures move with the WebSocket, and an alert the test raises
//! shows up. Screenshots are saved under `<target>/test-artefacts/`.
//!
//! Chromium is driven through chromedriver's W3C WebDriver HTTP API (a handful of
//! JSON calls, plus chromedriver's `se/log` for the browser console). The test runs when
//! `VOICEMON_TEST_CHROMEDRIVER` names chromedriver (`.ci/run` installs Debian's
//! `chromium` and `chromium-driver` and sets it); otherwise it says how and passes.

use base64::Engine;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{time_from_now, Server};

/// How long any awaited state of the page may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// A chromedriver process on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    async fn start(path: &str) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("chromedriver at {path} does not start: {err}"));
        let driver = Driver { child, base: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = client.get(format!("{}/status", driver.base)).send().await;
            if let Ok(response) = ready {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session (one browser).
struct Browser {
    client: reqwest::Client,
    session: String,
}

impl Browser {
    async fn open(driver: &Driver, profile: &Path) -> Browser {
        let chromium = std::env::var("VOICEMON_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push("--window-size=1280,1500".into());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let client = reqwest::Client::builder().timeout(PATIENCE).build().expect("a client");
        let answer =
            command(&client, reqwest::Method::POST, &format!("{}/session", driver.base), capabilities).await;
        let session = answer["sessionId"].as_str().expect("a session id").to_owned();
        Browser { client, session: format!("{}/session/{session}", driver.base) }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        command(&self.client, method, &format!("{}{path}", self.session), body).await
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", json!({"script": script, "args": []})).await
    }

    /// Polls `script` until it returns something `accept` takes.
    async fn wait_for(&self, what: &str, script: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.eval(script).await;
            if accept(&value) {
                return value;
            }
            assert!(Instant::now() < deadline, "gave up waiting for {what}; last value: {value}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn screenshot(&self, path: &Path) {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 text"))
            .expect("a base64 PNG");
        std::fs::write(path, png).expect("the screenshot is written");
        println!("screenshot: {}", path.display());
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", json!({"width": width, "height": height})).await;
    }

    /// Console entries of level SEVERE (errors) since the last call.
    async fn console_errors(&self) -> Vec<Value> {
        let entries = self.call(reqwest::Method::POST, "/se/log", json!({"type": "browser"})).await;
        entries.as_array().expect("log entries").iter().filter(|e| e["level"] == "SEVERE").cloned().collect()
    }

    async fn close(self) {
        let _ = self.client.delete(&self.session).send().await;
    }
}

/// One WebDriver command; returns its `value`, failing the test on a WebDriver error.
async fn command(client: &reqwest::Client, method: reqwest::Method, url: &str, body: Value) -> Value {
    let mut request = client.request(method, url);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|err| panic!("WebDriver {url}: {err}"));
    let status = response.status();
    let answer: Value = response.json().await.expect("WebDriver answers JSON");
    assert!(status.is_success(), "WebDriver {url} answered {status}: {answer}");
    answer["value"].clone()
}

/// `<target>/test-artefacts`, created.
fn artefacts() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory").join("test-artefacts");
    std::fs::create_dir_all(&dir).expect("the artefacts directory");
    dir
}

/// A worker of its own tenant at 95 % memory: trips the shipped `worker_memory_high`.
fn hot_worker_heartbeat() -> Value {
    json!({
        "id": format!("live-page-{}", common::now_ms()),
        "type": "worker.heartbeat",
        "timestamp": time_from_now(-500),
        "tenant_id": "browser-test",
        "worker_id": "w-browser-test",
        "memory_used_bytes": 950_000_000u64,
        "memory_limit_bytes": 1_000_000_000u64,
        "cpu_percent": 40.0,
        "active_calls": 1,
    })
}

#[tokio::test]
async fn the_live_page_shows_live_numbers_a_chart_and_a_raised_alert_without_console_errors() {
    let Ok(chromedriver) = std::env::var("VOICEMON_TEST_CHROMEDRIVER") else {
        println!(
            "skipped: set VOICEMON_TEST_CHROMEDRIVER=/usr/bin/chromedriver (Debian: apt-get install chromium \
             chromium-driver) to run the browser test; .ci/run does"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("voicemon.toml");
    std::fs::write(&config, "[alerting]\nevaluation_interval = \"1s\"\n").expect("config written");
    let server = Server::start(&dir.path().join("data"), Some(&config), &["--demo"]);
    // The page loads the last hour from the REST API: wait until the simulator's backfill
    // has put some of it in.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let latency: Value = client
            .get(server.url("/metrics/latency"))
            .send()
            .await
            .expect("voicemon answers")
            .json()
            .await
            .expect("JSON");
        if latency["overall"]["count"].as_u64() > Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "the demo traffic never reached the store: {latency}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let driver = Driver::start(&chromedriver).await;
    let browser = Browser::open(&driver, &dir.path().join("profile")).await;
    browser.go(&server.url("/?interval=1")).await;

    // The chart has per-minute points (history from REST, then the WebSocket).
    let chart = "return Number(document.getElementById('latency-chart').dataset.points)";
    browser.wait_for("points on the latency chart", chart, |points| points.as_f64() > Some(0.0)).await;
    let canvas = browser.eval("return document.querySelectorAll('#latency-chart canvas').length").await;
    assert!(canvas.as_u64() >= Some(1), "uPlot drew on a canvas");

    // A value changes after an update: the snapshot number and the time it was taken.
    let updated =
        "const t = document.getElementById('updated'); return [Number(t.dataset.seq), t.textContent]";
    let first = browser.wait_for("a first snapshot", updated, |v| v[0].as_u64() > Some(0)).await;
    let second = browser.wait_for("a later snapshot", updated, |v| v[0] != first[0]).await;
    assert_ne!(first[1], second[1], "the displayed update time moved");
    let calls = browser.eval("return document.getElementById('calls-in-progress').textContent").await;
    assert_ne!(calls, "—", "calls are shown");
    let health = browser.eval("return document.getElementById('health-status').textContent").await;
    assert!(["ok", "degraded", "critical"].contains(&health.as_str().unwrap_or_default()), "{health}");

    // An alert the test raises appears, pushed by the WebSocket.
    let response = client
        .post(server.url("/v1/events"))
        .json(&[hot_worker_heartbeat()])
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(response.status().as_u16(), 202);
    let alerts = "return document.getElementById('alerts').textContent";
    browser
        .wait_for("the raised alert on the page", alerts, |text| {
            text.as_str().is_some_and(|t| t.contains("worker_memory_high") && t.contains("w-browser-test"))
        })
        .await;
    browser.screenshot(&artefacts().join("live-page.png")).await;

    // From the alert to its tenant's calls since a little before it.
    browser
        .eval(
            "const item = [...document.querySelectorAll('#alerts li')].find(li => li.textContent.includes('w-browser-test')); \
             item.querySelector('a.alert-calls').click(); return null",
        )
        .await;
    let opened = "return [document.getElementById('explorer-card').hidden, location.search, \
                  document.getElementById('explorer-status').textContent]";
    let opened = browser
        .wait_for("the alert's calls", opened, |v| {
            v[0] == false && v[2].as_str().is_some_and(|t| t.contains("window"))
        })
        .await;
    assert!(opened[1].as_str().unwrap_or_default().contains("tenant=browser-test"), "{opened}");
    browser.eval("document.getElementById('explorer-close').click(); return null").await;

    // Readable on a phone: nothing wider than the screen.
    browser.resize(390, 844).await;
    let overflow = "return document.documentElement.scrollWidth - window.innerWidth";
    browser.wait_for("a layout that fits a phone", overflow, |excess| excess.as_i64() <= Some(0)).await;
    browser.screenshot(&artefacts().join("live-page-phone.png")).await;

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}

/// One call of `acme` that began `minutes_ago`, with a turn per `(e2e, llm_ttft)`.
fn explorer_call(call: &str, minutes_ago: i64, turns: &[(f64, f64)]) -> Vec<Value> {
    let start = -minutes_ago * 60_000;
    let mut events =
        vec![json!({"id": format!("{call}-s"), "type": "call.started", "timestamp": time_from_now(start),
        "tenant_id": "acme", "call_id": call, "agent_id": "support-bot"})];
    for (index, (e2e, llm)) in turns.iter().enumerate() {
        events.push(json!({"id": format!("{call}-t{index}"), "type": "turn.completed",
            "timestamp": time_from_now(start + 4_000 * (index as i64 + 1)), "tenant_id": "acme", "call_id": call,
            "agent_id": "support-bot", "turn_index": index, "e2e_ms": e2e, "stt_ms": 180.0, "eou_ms": 240.0,
            "llm_ttft_ms": llm, "tts_ttfb_ms": 160.0, "interrupted": index == 2}));
    }
    events.push(
        json!({"id": format!("{call}-u"), "type": "llm.usage", "timestamp": time_from_now(start + 2_000),
        "tenant_id": "acme", "call_id": call, "provider": "openai", "model": "gpt-4o-mini",
        "input_tokens": 2_400, "output_tokens": 180}),
    );
    events.push(
        json!({"id": format!("{call}-e"), "type": "call.ended", "timestamp": time_from_now(start + 50_000),
        "tenant_id": "acme", "call_id": call, "status": "completed", "duration_s": 50.0}),
    );
    events
}

#[tokio::test]
async fn a_dragged_range_of_the_chart_lists_its_slowest_calls_and_a_call_draws_its_turns() {
    let Ok(chromedriver) = std::env::var("VOICEMON_TEST_CHROMEDRIVER") else {
        println!("skipped: set VOICEMON_TEST_CHROMEDRIVER=/usr/bin/chromedriver to run the browser test; .ci/run does");
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(&dir.path().join("data"), None, &[]);
    let mut events = explorer_call("calm", 25, &[(620.0, 280.0), (700.0, 300.0)]);
    events.extend(explorer_call(
        "slow-llm",
        20,
        &[(690.0, 300.0), (2450.0, 1900.0), (1300.0, 850.0), (760.0, 320.0)],
    ));
    events.extend(explorer_call("steady", 15, &[(810.0, 400.0)]));
    events.push(json!({"id": "slow-llm-r", "type": "provider.request", "timestamp": time_from_now(-20 * 60_000 + 8_000),
        "tenant_id": "acme", "call_id": "slow-llm", "provider": "openai", "component": "llm", "ok": false,
        "latency_ms": 1900.0, "error": "rate_limited"}));
    events.push(json!({"id": "slow-llm-b", "type": "circuit_breaker.changed", "timestamp": time_from_now(-20 * 60_000 + 9_000),
        "tenant_id": "acme", "breaker": "openai-llm", "state": "open"}));
    let client = reqwest::Client::new();
    let response = client.post(server.url("/v1/events")).json(&events).send().await.expect("ingest answers");
    assert_eq!(response.status().as_u16(), 202, "{}", response.text().await.unwrap_or_default());

    let driver = Driver::start(&chromedriver).await;
    let browser = Browser::open(&driver, &dir.path().join("profile")).await;
    browser.go(&server.url("/?tenant=acme")).await;
    let chart = "return Number(document.getElementById('latency-chart').dataset.points)";
    browser.wait_for("points on the latency chart", chart, |points| points.as_f64() >= Some(3.0)).await;

    // Drag across the whole chart, as a person selects a range with the mouse.
    let rect = browser
        .eval(
            "const o = document.querySelector('#latency-chart .u-over'); o.scrollIntoView({block: 'center'}); \
             const r = o.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
        )
        .await;
    let number = |i: usize| rect[i].as_f64().expect("a number");
    let (left, top, width, height) = (number(0), number(1), number(2), number(3));
    let y = (top + height / 2.0).round() as i64;
    let pointer = |x: f64, kind: &str| json!({"type": kind, "duration": 100, "x": x.round() as i64, "y": y, "origin": "viewport"});
    browser
        .call(
            reqwest::Method::POST,
            "/actions",
            json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
                pointer(left + 2.0, "pointerMove"),
                {"type": "pointerDown", "button": 0},
                pointer(left + width * 0.5, "pointerMove"),
                pointer(left + width - 2.0, "pointerMove"),
                {"type": "pointerUp", "button": 0},
            ]}]}),
        )
        .await;
    let rows = "const c = document.getElementById('explorer-card'); \
                return c.hidden ? -1 : Number(c.dataset.rows || 0)";
    browser.wait_for("the slowest calls of the dragged range", rows, |n| n.as_i64() == Some(3)).await;
    let order = browser
        .eval("return [...document.querySelectorAll('#explorer-calls tbody tr')].map(r => r.dataset.call)")
        .await;
    assert_eq!(order, json!(["slow-llm", "steady", "calm"]), "worst turn first");
    let url = browser.eval("return location.search").await;
    let url = url.as_str().unwrap_or_default().to_owned();
    assert!(url.contains("tenant=acme") && url.contains("from=") && url.contains("to="), "{url}");
    let worst = browser.eval("return document.querySelector('#explorer-calls tbody tr').textContent").await;
    assert!(worst.as_str().unwrap_or_default().contains("llm_ttft"), "{worst}");
    browser.screenshot(&artefacts().join("call-explorer.png")).await;

    // Open the slow call: a bar per turn, each against the SLO line.
    browser
        .eval("document.querySelector('#explorer-calls a[data-call=\"slow-llm\"]').click(); return null")
        .await;
    let turns = "return Number(document.getElementById('call-turns').dataset.turns)";
    browser.wait_for("the call's turns", turns, |n| n.as_u64() == Some(4)).await;
    let drawn = browser
        .eval(
            "return [document.querySelectorAll('#call-turns .slo-line').length, \
                     document.querySelectorAll('#call-turns .turn-row[data-slow=true]').length, \
                     document.querySelectorAll('#call-turns .turn-track .seg-llm').length]",
        )
        .await;
    assert_eq!(drawn, json!([4, 2, 4]), "SLO lines, turns over 800 ms, LLM segments");
    let context = browser
        .eval("return [document.getElementById('call-errors').textContent, document.getElementById('call-context').textContent, \
               document.getElementById('call-lines').tBodies[0].rows.length]")
        .await;
    assert!(context[0].as_str().unwrap_or_default().contains("rate_limited"), "{context}");
    assert!(context[1].as_str().unwrap_or_default().contains("openai-llm"), "{context}");
    assert_eq!(context[2], 1, "one cost line");
    browser.screenshot(&artefacts().join("call-view.png")).await;

    // The link is shareable: the same URL in a fresh load shows the same call.
    let link = browser.eval("return location.href").await;
    let link = link.as_str().expect("the URL").to_owned();
    assert!(link.contains("call=slow-llm"), "{link}");
    browser.go("about:blank").await;
    browser.go(&link).await;
    browser.wait_for("the shared call", turns, |n| n.as_u64() == Some(4)).await;

    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}

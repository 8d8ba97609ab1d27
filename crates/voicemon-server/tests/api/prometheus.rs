//! `GET /metrics`: the OpenMetrics exposition of a real server after real events,
//! parsed by a strict OpenMetrics parser (`openmetrics-parser`, which passes the
//! OpenMetrics conformance cases), and compared with the REST answers.

use crate::helpers::{
    assert_error, at, create_key, event, spawn_app, spawn_app_in, spawn_app_with, status_and_json, turn,
    TestApp,
};
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use voicemon_core::access::Role;
use voicemon_server::telemetry::voice::PrometheusLimits;

// ---------------------------------------------------------------------------- helpers

/// One parsed scrape.
struct Scrape {
    exposition: MetricsExposition<OpenMetricsType, OpenMetricsValue>,
}

async fn scrape(app: &TestApp) -> Scrape {
    scrape_as(app, None).await
}

async fn scrape_as(app: &TestApp, key: Option<&str>) -> Scrape {
    let response = app.get("/metrics", key).await;
    assert_eq!(response.status().as_u16(), 200, "GET /metrics");
    let content_type = response.headers()["content-type"].to_str().expect("a text header").to_owned();
    assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"), "{content_type}");
    let text = response.text().await.expect("a body");
    let exposition = parse_openmetrics(&text)
        .unwrap_or_else(|err| panic!("the exposition does not parse: {err:?}\n{text}"));
    Scrape { exposition }
}

impl Scrape {
    /// Every sample of `family` with its labels. Panics when the family is missing.
    fn samples(&self, family: &str) -> Vec<(BTreeMap<String, String>, &OpenMetricsValue)> {
        let family = self.exposition.families.get(family).unwrap_or_else(|| {
            let names: BTreeSet<_> = self.exposition.families.keys().collect();
            panic!("no family {family} in {names:?}")
        });
        family
            .iter_samples()
            .map(|sample| {
                let labels = sample.get_labelset().expect("a sample of a family has labels");
                let labels = labels.iter().map(|(name, value)| (name.clone(), value.clone())).collect();
                (labels, &sample.value)
            })
            .collect()
    }

    /// The samples of `family` whose labels include every pair of `labels`.
    fn matching(&self, family: &str, labels: &[(&str, &str)]) -> Vec<&OpenMetricsValue> {
        self.samples(family)
            .into_iter()
            .filter(|(have, _)| {
                labels.iter().all(|(name, value)| have.get(*name).map(String::as_str) == Some(value))
            })
            .map(|(_, value)| value)
            .collect()
    }

    /// Observations of the histogram series matching `labels`, summed (0 when none).
    fn histogram_count(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        self.matching(family, labels)
            .into_iter()
            .map(|value| match value {
                OpenMetricsValue::Histogram(histogram) => histogram.count.expect("a histogram has a count"),
                other => panic!("{family} is not a histogram: {other:?}"),
            })
            .sum()
    }

    /// The one histogram series matching `labels`: `(le, cumulative count)` and its sum.
    fn histogram(&self, family: &str, labels: &[(&str, &str)]) -> (Vec<(f64, u64)>, f64) {
        let matching = self.matching(family, labels);
        assert_eq!(matching.len(), 1, "one {family} series for {labels:?}");
        match matching[0] {
            OpenMetricsValue::Histogram(histogram) => {
                let buckets = histogram
                    .buckets
                    .iter()
                    .map(|b| (b.upper_bound, b.count.as_i64().expect("an integer count") as u64))
                    .collect();
                (buckets, histogram.sum.expect("a histogram has a sum").as_f64())
            }
            other => panic!("{family} is not a histogram: {other:?}"),
        }
    }

    /// The counters matching `labels`, summed (0 when none).
    fn counter(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(family, labels)
            .into_iter()
            .map(|value| match value {
                OpenMetricsValue::Counter(counter) => counter.value.as_f64(),
                other => panic!("{family} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// The values `label` takes in `family`.
    fn label_values(&self, family: &str, label: &str) -> BTreeSet<String> {
        self.samples(family).into_iter().filter_map(|(labels, _)| labels.get(label).cloned()).collect()
    }
}

/// A turn with end-to-end, STT and LLM latencies.
fn measured_turn(id: &str, tenant: &str, offset_ms: i64, e2e_ms: f64) -> Value {
    event(
        "turn.completed",
        id,
        tenant,
        offset_ms,
        json!({"call_id": "c1", "turn_index": 0, "e2e_ms": e2e_ms, "stt_ms": 150.0, "llm_ttft_ms": 320.0}),
    )
}

fn usage(kind: &str, id: &str, tenant: &str, offset_ms: i64, fields: Value) -> Value {
    let mut fields = fields;
    fields["call_id"] = json!("c1");
    event(kind, id, tenant, offset_ms, fields)
}

/// Usage of one call of `tenant`: three priced lines and one no price covers.
fn usage_lines(tenant: &str) -> Vec<Value> {
    vec![
        event("call.started", &format!("{tenant}-s"), tenant, -600_000, json!({"call_id": "c1"})),
        usage(
            "stt.usage",
            &format!("{tenant}-u1"),
            tenant,
            -595_000,
            json!({"provider": "deepgram", "model": "nova-3", "audio_seconds": 46.2, "latency_ms": 180.0}),
        ),
        usage(
            "llm.usage",
            &format!("{tenant}-u2"),
            tenant,
            -590_000,
            json!({"provider": "openai", "model": "gpt-4o-2024-08-06", "input_tokens": 1_200,
                   "cached_input_tokens": 1_000, "output_tokens": 150, "ttft_ms": 420.0}),
        ),
        usage(
            "tts.usage",
            &format!("{tenant}-u3"),
            tenant,
            -585_000,
            json!({"provider": "cartesia", "model": "sonic-2", "characters": 321}),
        ),
        usage(
            "llm.usage",
            &format!("{tenant}-u4"),
            tenant,
            -580_000,
            json!({"provider": "openai", "model": "gpt-9-turbo", "input_tokens": 1_000, "output_tokens": 100}),
        ),
    ]
}

const LATENCY: &str = "voicemon_turn_latency_seconds";

// ---------------------------------------------------------------------------- latency

#[tokio::test]
async fn latency_histograms_count_the_stored_turns_per_tenant_and_component_as_the_api_does() {
    let app = spawn_app().await;
    let acme = [
        measured_turn("a1", "acme", -300_000, 500.0),
        measured_turn("a2", "acme", -200_000, 700.0),
        measured_turn("a3", "acme", -100_000, 900.0),
    ];
    app.ingest_ok(&acme).await;
    app.ingest_ok(&[
        turn("g1", "globex", "c2", -300_000, 1_200.0),
        event(
            "turn.completed",
            "g2",
            "globex",
            -200_000,
            json!({"call_id": "c2", "turn_index": 1,
              "e2e_ms": 650.0, "eou_ms": 210.0, "tts_ttfb_ms": 90.0, "interrupted": true}),
        ),
    ])
    .await;

    let scrape = scrape(&app).await;
    for (tenant, component, expected) in [
        ("acme", "turn_e2e", 3),
        ("acme", "stt", 3),
        ("acme", "eou", 0),
        ("acme", "llm_ttft", 3),
        ("acme", "tts_ttfb", 0),
        ("globex", "turn_e2e", 2),
        ("globex", "stt", 0),
        ("globex", "eou", 1),
        ("globex", "llm_ttft", 0),
        ("globex", "tts_ttfb", 1),
    ] {
        let counted = scrape.histogram_count(LATENCY, &[("tenant", tenant), ("component", component)]);
        assert_eq!(counted, expected, "{tenant} {component}");
        let api = app.latency_count(&format!("tenant_id={tenant}&component={component}"), None).await;
        assert_eq!(counted, api, "{tenant} {component}: /metrics and /metrics/latency agree");
    }
    // 0.5 s and 0.7 s are within the 0.8 s SLO bucket, 0.9 s is not.
    let (buckets, sum) = scrape.histogram(LATENCY, &[("tenant", "acme"), ("component", "turn_e2e")]);
    assert!(buckets.contains(&(0.8, 2)), "{buckets:?}");
    assert!(buckets.contains(&(1.0, 3)), "{buckets:?}");
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 3)), "{buckets:?}");
    assert!((sum - 2.1).abs() < 1e-9, "{sum}");
    assert_eq!(scrape.counter("voicemon_turn_interruptions", &[("tenant", "globex")]), 1.0);
    assert_eq!(scrape.counter("voicemon_turn_interruptions", &[("tenant", "acme")]), 0.0);
    app.shutdown().await;
}

#[tokio::test]
async fn duplicates_and_rejected_events_do_not_count() {
    let app = spawn_app().await;
    let first = [measured_turn("a1", "acme", -300_000, 500.0), measured_turn("a2", "acme", -200_000, 700.0)];
    app.ingest_ok(&first).await;
    // The same two again (a retry), one new turn, and one that cannot be true.
    let (status, report) = app
        .ingest(
            &[
                first[0].clone(),
                first[1].clone(),
                measured_turn("a3", "acme", -100_000, 900.0),
                turn("bad", "acme", "c1", -50_000, -5.0),
            ],
            None,
        )
        .await;
    assert_eq!(status, 202, "{report}");
    assert_eq!((report["accepted"].as_u64(), report["duplicates"].as_u64()), (Some(1), Some(2)), "{report}");
    assert_eq!(report["rejected"].as_array().map(Vec::len), Some(1), "{report}");
    // A request whose every event is rejected.
    let (status, _) = app.ingest(&[turn("bad2", "globex", "c2", -50_000, 700_000.0)], None).await;
    assert_eq!(status, 422);

    let scrape = scrape(&app).await;
    assert_eq!(scrape.histogram_count(LATENCY, &[("tenant", "acme"), ("component", "turn_e2e")]), 3);
    assert_eq!(scrape.histogram_count(LATENCY, &[("tenant", "acme"), ("component", "stt")]), 3);
    assert_eq!(
        scrape.label_values(LATENCY, "tenant"),
        BTreeSet::from(["acme".to_owned()]),
        "no globex series"
    );
    assert_eq!(app.latency_count("tenant_id=acme", None).await, 3);
    assert_eq!(scrape.counter("voicemon_ingest_events", &[("outcome", "accepted")]), 3.0);
    assert_eq!(scrape.counter("voicemon_ingest_events", &[("outcome", "duplicate")]), 2.0);
    assert_eq!(scrape.counter("voicemon_ingest_events", &[("outcome", "rejected")]), 2.0);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- bounds

#[tokio::test]
async fn tenants_beyond_the_cap_are_folded_into_other_and_admitted_tenants_keep_their_series() {
    let limits = PrometheusLimits { max_tenants: 2, ..PrometheusLimits::default() };
    let app = spawn_app_with(|config| config.prometheus = limits).await;
    let mut events = Vec::new();
    for (tenant, turns) in [("t1", 1), ("t2", 2), ("t3", 3), ("t4", 4)] {
        for n in 0..turns {
            events.push(turn(&format!("{tenant}-{n}"), tenant, "c", -60_000 - n * 1_000, 400.0));
        }
    }
    app.ingest_ok(&events).await;
    app.ingest_ok(&[turn("t1-late", "t1", "c", -30_000, 400.0), turn("t5-late", "t5", "c", -30_000, 400.0)])
        .await;

    let scrape = scrape(&app).await;
    let tenants = scrape.label_values(LATENCY, "tenant");
    assert_eq!(tenants, BTreeSet::from(["t1".to_owned(), "t2".to_owned(), "_other".to_owned()]));
    let count = |tenant| scrape.histogram_count(LATENCY, &[("tenant", tenant), ("component", "turn_e2e")]);
    assert_eq!((count("t1"), count("t2"), count("_other")), (2, 2, 8), "t3 + t4 + t5 = 8");
    assert_eq!(scrape.counter("voicemon_prometheus_label_folded", &[("label", "tenant")]), 8.0);
    // The REST API is not bounded: t3 is answered exactly.
    assert_eq!(app.latency_count("tenant_id=t3", None).await, 3);
    app.shutdown().await;
}

#[tokio::test]
async fn providers_and_breakers_beyond_the_cap_are_folded_into_other() {
    let limits = PrometheusLimits { max_providers: 2, ..PrometheusLimits::default() };
    let app = spawn_app_with(|config| config.prometheus = limits).await;
    let request = |id: &str, provider: &str| {
        event(
            "provider.request",
            id,
            "acme",
            -30_000,
            json!({"provider": provider, "component": "llm", "ok": true}),
        )
    };
    let breaker = |id: &str, name: &str| {
        event("circuit_breaker.changed", id, "acme", -30_000, json!({"breaker": name, "state": "open"}))
    };
    app.ingest_ok(&[
        request("r1", "openai"),
        request("r2", "anthropic"),
        request("r3", "groq"),
        request("r4", "mistral"),
        request("r5", "OpenAI"),
        breaker("b1", "openai"),
        breaker("b2", "deepgram"),
        breaker("b3", "cartesia"),
    ])
    .await;

    let scrape = scrape(&app).await;
    let requests = "voicemon_provider_requests";
    assert_eq!(
        scrape.label_values(requests, "provider"),
        BTreeSet::from(["openai".to_owned(), "anthropic".to_owned(), "_other".to_owned()])
    );
    assert_eq!(scrape.counter(requests, &[("provider", "openai")]), 2.0, "provider names are lower-cased");
    assert_eq!(scrape.counter(requests, &[("provider", "_other")]), 2.0);
    let breakers = "voicemon_circuit_breaker_changes";
    assert_eq!(
        scrape.label_values(breakers, "breaker"),
        BTreeSet::from(["openai".to_owned(), "deepgram".to_owned(), "_other".to_owned()]),
        "breakers have their own bound"
    );
    assert_eq!(scrape.counter("voicemon_prometheus_label_folded", &[("label", "provider")]), 2.0);
    assert_eq!(scrape.counter("voicemon_prometheus_label_folded", &[("label", "breaker")]), 1.0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_tenant_id_with_quotes_and_backslashes_is_escaped_and_parses_back_to_itself() {
    let app = spawn_app().await;
    let tenant = r#"acme "north" \ dental"#;
    app.ingest_ok(&[turn("q1", tenant, "c", -30_000, 400.0)]).await;
    let scrape = scrape(&app).await;
    assert_eq!(scrape.label_values(LATENCY, "tenant"), BTreeSet::from([tenant.to_owned()]));
    assert_eq!(scrape.histogram_count(LATENCY, &[("tenant", tenant), ("component", "turn_e2e")]), 1);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- cost

#[tokio::test]
async fn the_cost_counters_equal_the_cost_api_to_the_nano_dollar_and_count_unpriced_lines() {
    let app = spawn_app().await;
    app.ingest_ok(&usage_lines("acme")).await;
    app.ingest_ok(&usage_lines("globex")).await;
    let (status, retry) = app.ingest(&usage_lines("acme"), None).await;
    assert_eq!((status, retry["duplicates"].as_u64()), (202, Some(5)), "a retry is all duplicates: {retry}");

    let scrape = scrape(&app).await;
    let range = format!("from={}&to={}", at(-3_600_000), at(60_000));
    for tenant in ["acme", "globex"] {
        let (status, body) =
            app.get_json(&format!("/metrics/cost?tenant_id={tenant}&{range}&group_by=provider"), None).await;
        assert_eq!(status, 200, "{body}");
        let total_nanos = body["total"]["nano_usd"].as_i64().unwrap_or_else(|| panic!("a total in {body}"));
        assert!(total_nanos > 0, "{body}");
        let exposed = scrape.counter("voicemon_cost_usd", &[("tenant", tenant)]);
        assert_eq!((exposed * 1e9).round() as i64, total_nanos, "{tenant}: {exposed} USD vs {body}");
        for group in body["groups"].as_array().unwrap_or_else(|| panic!("groups in {body}")) {
            let provider = group["key"].as_str().expect("a provider");
            let nanos = group["cost"]["nano_usd"].as_i64().expect("nano_usd");
            let exposed = scrape.counter("voicemon_cost_usd", &[("tenant", tenant), ("provider", provider)]);
            assert_eq!((exposed * 1e9).round() as i64, nanos, "{tenant}/{provider}");
        }
        let unpriced = body["unpriced_lines"].as_u64().unwrap_or_else(|| panic!("unpriced_lines in {body}"));
        assert_eq!(unpriced, 1, "{body}");
        let exposed = scrape.counter("voicemon_usage_unpriced", &[("tenant", tenant)]);
        assert_eq!(exposed, unpriced as f64, "{tenant}");
        let labels = [("tenant", tenant), ("component", "llm"), ("provider", "openai")];
        assert_eq!(scrape.counter("voicemon_usage_unpriced", &labels), 1.0, "{tenant}: the gpt-9-turbo line");
    }
    let stt = [("provider", "deepgram"), ("component", "stt")];
    assert_eq!(scrape.histogram_count("voicemon_usage_latency_seconds", &stt), 2, "one per tenant");
    let llm = [("provider", "openai"), ("component", "llm_ttft")];
    assert_eq!(scrape.histogram_count("voicemon_usage_latency_seconds", &llm), 2);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- calls and providers

#[tokio::test]
async fn calls_providers_and_breakers_are_counted_by_their_labels() {
    let app = spawn_app().await;
    let started =
        |id: &str, call: &str| event("call.started", id, "acme", -120_000, json!({"call_id": call}));
    let ended = |id: &str, call: &str, status: &str, duration_s: f64| {
        let fields = json!({"call_id": call, "status": status, "duration_s": duration_s});
        event("call.ended", id, "acme", -60_000, fields)
    };
    let request = |id: &str, ok: bool, latency_ms: f64| {
        let fields = json!({"provider": "deepgram", "component": "stt", "ok": ok, "latency_ms": latency_ms});
        event("provider.request", id, "acme", -30_000, fields)
    };
    let breaker = |id: &str, state: &str| {
        event("circuit_breaker.changed", id, "acme", -30_000, json!({"breaker": "deepgram", "state": state}))
    };
    let heartbeat = event(
        "worker.heartbeat",
        "h1",
        "acme",
        -10_000,
        json!({"worker_id": "w1", "memory_used_bytes": 1, "memory_limit_bytes": 2, "cpu_percent": 3.0,
               "active_calls": 1}),
    );
    app.ingest_ok(&[
        started("s1", "c1"),
        started("s2", "c2"),
        started("s3", "c3"),
        ended("e1", "c1", "completed", 95.0),
        ended("e2", "c2", "failed", 20.0),
        request("r1", true, 120.0),
        request("r2", true, 900.0),
        request("r3", false, 5_000.0),
        breaker("b1", "open"),
        breaker("b2", "half_open"),
        breaker("b3", "closed"),
        heartbeat,
    ])
    .await;

    let scrape = scrape(&app).await;
    assert_eq!(scrape.counter("voicemon_calls_started", &[("tenant", "acme")]), 3.0);
    assert_eq!(scrape.counter("voicemon_calls_ended", &[("tenant", "acme"), ("status", "completed")]), 1.0);
    assert_eq!(scrape.counter("voicemon_calls_ended", &[("tenant", "acme"), ("status", "failed")]), 1.0);
    let (buckets, sum) = scrape.histogram("voicemon_call_duration_seconds", &[("tenant", "acme")]);
    assert!(buckets.contains(&(30.0, 1)) && buckets.contains(&(120.0, 2)), "{buckets:?}");
    assert_eq!(sum, 115.0);
    let (status, calls) = app.get_json("/metrics/calls?tenant_id=acme", None).await;
    assert_eq!((status, calls["total"].as_u64()), (200, Some(2)), "the API agrees: {calls}");

    let requests = "voicemon_provider_requests";
    let stt = [("provider", "deepgram"), ("component", "stt")];
    assert_eq!(scrape.counter(requests, &[stt[0], stt[1], ("outcome", "ok")]), 2.0);
    assert_eq!(scrape.counter(requests, &[stt[0], stt[1], ("outcome", "error")]), 1.0);
    let (buckets, _) = scrape.histogram("voicemon_provider_request_duration_seconds", &stt);
    assert!(
        buckets.contains(&(0.8, 1)) && buckets.contains(&(1.0, 2)) && buckets.contains(&(5.0, 3)),
        "{buckets:?}"
    );
    for state in ["open", "half_open", "closed"] {
        let labels = [("breaker", "deepgram"), ("state", state)];
        assert_eq!(scrape.counter("voicemon_circuit_breaker_changes", &labels), 1.0, "{state}");
    }
    // Self-metrics: one group commit of 12 events, the pool read at scrape time.
    assert_eq!(scrape.counter("voicemon_store_flushes", &[("outcome", "ok")]), 1.0);
    assert_eq!(scrape.histogram_count("voicemon_store_flush_events", &[]), 1);
    assert_eq!(scrape.label_values("voicemon_store_pool_connections", "state").len(), 2);
    assert_eq!(
        scrape.label_values("voicemon_build", "version"),
        BTreeSet::from([env!("CARGO_PKG_VERSION").to_owned()])
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- access

#[tokio::test]
async fn with_keys_metrics_takes_an_admin_key_without_a_tenant() {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let ingest = create_key(data_dir.path(), Role::Ingest, Some("acme")).await;
    let read = create_key(data_dir.path(), Role::Read, Some("acme")).await;
    let tenant_admin = create_key(data_dir.path(), Role::Admin, Some("acme")).await;
    let admin = create_key(data_dir.path(), Role::Admin, None).await;
    let app = spawn_app_in(data_dir, |_| {}).await;
    let (status, report) = app.ingest(&[turn("a1", "acme", "c1", -30_000, 500.0)], ingest.secret()).await;
    assert_eq!(status, 202, "{report}");

    let (status, body) = status_and_json(app.get("/metrics", None).await).await;
    assert_error(status, &body, 401, "unauthorized");
    for key in [&ingest, &read, &tenant_admin] {
        let (status, body) = status_and_json(app.get("/metrics", key.secret()).await).await;
        assert_error(status, &body, 403, "forbidden");
    }
    let scrape = scrape_as(&app, admin.secret()).await;
    assert_eq!(scrape.histogram_count(LATENCY, &[("tenant", "acme"), ("component", "turn_e2e")]), 1);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------- configuration

fn load(toml: &str) -> Result<voicemon_server::config::FileConfig, String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("voicemon.toml");
    std::fs::write(&path, toml).expect("the file is written");
    voicemon_server::config::FileConfig::load(&path).map_err(|err| err.to_string())
}

#[test]
fn the_prometheus_section_sets_the_caps_and_refuses_unbounded_or_unknown_ones() {
    let defaults = load("").expect("an empty file is valid");
    assert_eq!(defaults.prometheus.limits().ok(), Some(PrometheusLimits::default()));
    let set = load("[prometheus]\nmax_tenants = 3\nmax_providers = 0\n").expect("valid");
    assert_eq!(set.prometheus.limits().ok(), Some(PrometheusLimits { max_tenants: 3, max_providers: 0 }));
    let too_many = load("[prometheus]\nmax_tenants = 20000\n").expect_err("refused");
    assert!(too_many.contains("prometheus.max_tenants") && too_many.contains("10000"), "{too_many}");
    let unknown = load("[prometheus]\nmax_models = 3\n").expect_err("refused");
    assert!(unknown.contains("max_models"), "{unknown}");
}

//! Load generator for BENCHMARKS.md: ingest throughput of a running voicemon over HTTP
//! with NDJSON batches, then latency-query time over what it loaded.
//!
//! ```sh
//! cargo run --release --example loadgen -- http://127.0.0.1:3001 2000000 5000 4 30 10 [turns]
//! #                                          url                  events  batch conns days tenants
//! ```
//! Bodies are generated before the clock starts, so the figure is the server's.
//! Events: one `turn.completed` and one `llm.usage` per turn (only turns with `turns`),
//! timestamps spread evenly over the last `days` days, `tenants` tenants.

use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(args: &[String], index: usize, default: T) -> T {
    args.get(index).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// What the generated traffic looks like.
#[derive(Clone, Copy)]
struct Shape {
    total: usize,
    days: i64,
    tenants: usize,
    /// Every event a `turn.completed` (else every other one is `llm.usage`).
    turns_only: bool,
}

fn body(batch: usize, size: usize, shape: Shape, now_ms: i64) -> String {
    let Shape { total, days, tenants, turns_only } = shape;
    // Ids unique per run, so a second run against the same store is not all duplicates.
    let run = now_ms;
    let span_ms = days * 86_400_000;
    let mut out = String::with_capacity(size * 260);
    for i in 0..size {
        let n = batch * size + i;
        let ts = voicemon_core::window::format_time(now_ms - span_ms + (n as i64 * span_ms) / total as i64);
        // Calls of 8 events (4 turns), each call in one tenant.
        let call = n / 8;
        let tenant = call % tenants;
        // Deterministic spread of latencies: 300 ms .. ~2.3 s, skewed low.
        let e2e = 300.0 + ((n * 7919) % 1000) as f64 * ((n * 104_729) % 1000) as f64 / 500.0;
        if turns_only || n.is_multiple_of(2) {
            out.push_str(&format!(
                r#"{{"id":"lg-{run}-{n}","type":"turn.completed","timestamp":"{ts}","tenant_id":"t{tenant}","call_id":"c{run}-{call}","agent_id":"support-bot","turn_index":{},"e2e_ms":{e2e:.1},"stt_ms":{:.1},"eou_ms":{:.1},"llm_ttft_ms":{:.1},"tts_ttfb_ms":{:.1}}}"#,
                n % 8,
                e2e * 0.2,
                e2e * 0.15,
                e2e * 0.4,
                e2e * 0.2
            ));
        } else {
            out.push_str(&format!(
                r#"{{"id":"lg-{run}-{n}","type":"llm.usage","timestamp":"{ts}","tenant_id":"t{tenant}","call_id":"c{run}-{call}","provider":"openai","model":"gpt-4o-mini","input_tokens":{},"cached_input_tokens":512,"output_tokens":{},"ttft_ms":{:.1}}}"#,
                1024 + n % 3000,
                20 + n % 180,
                e2e * 0.4
            ));
        }
        out.push('\n');
    }
    out
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "http://127.0.0.1:3001".into());
    let events: usize = arg(&args, 2, 1_000_000);
    let batch_size: usize = arg(&args, 3, 5_000);
    let connections: usize = arg(&args, 4, 4);
    let days: i64 = arg(&args, 5, 30);
    let tenants: usize = arg(&args, 6, 10);
    let turns_only = args.get(7).is_some_and(|mix| mix == "turns");
    let shape = Shape { total: events, days, tenants, turns_only };
    let now_ms = voicemon_core::clock::Clock::now_ms(&voicemon_core::clock::SystemClock) - 60_000;
    let batches = events / batch_size;

    eprintln!("generating {batches} bodies of {batch_size} events…");
    let bodies: Vec<String> = (0..batches).map(|b| body(b, batch_size, shape, now_ms)).collect();
    let bytes: usize = bodies.iter().map(String::len).sum();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies));
    let client = voicemon_server::outbound::client_builder().build().expect("an HTTP client");

    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let queue = queue.clone();
        let client = client.clone();
        let endpoint = format!("{url}/v1/events");
        workers.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                let Some(body) = queue.lock().expect("queue").pop() else {
                    break;
                };
                let response = client
                    .post(&endpoint)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await
                    .expect("voicemon answers");
                assert_eq!(response.status().as_u16(), 202, "ingest failed");
                let report: serde_json::Value = response.json().await.expect("a report");
                accepted += report["accepted"].as_u64().unwrap_or(0);
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for worker in workers {
        accepted += worker.await.expect("worker");
    }
    let took = started.elapsed();
    println!(
        "ingest: {accepted} events ({:.1} MiB NDJSON) in {:.2} s = {:.0} events/s ({connections} connections, {batch_size} per request)",
        bytes as f64 / 1_048_576.0,
        took.as_secs_f64(),
        accepted as f64 / took.as_secs_f64()
    );

    let from = voicemon_core::window::format_time(now_ms - days * 86_400_000 - 60_000);
    for (label, query) in [
        ("one tenant, whole range, 1d steps", format!("tenant_id=t0&from={from}&step=1d")),
        ("one tenant, whole range, 1h steps", format!("tenant_id=t0&from={from}&step=1h")),
        ("all tenants, whole range, 1d steps", format!("from={from}&step=1d")),
    ] {
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..20 {
            let start = Instant::now();
            let answer: serde_json::Value = client
                .get(format!("{url}/metrics/latency?{query}"))
                .send()
                .await
                .expect("latency answers")
                .json()
                .await
                .expect("latency JSON");
            times.push(start.elapsed());
            count = answer["overall"]["count"].as_u64().unwrap_or(0);
        }
        times.sort();
        let median: Duration = times[times.len() / 2];
        println!(
            "latency query ({label}): {count} turns, median {:.1} ms over 20 runs",
            median.as_secs_f64() * 1000.0
        );
    }
}

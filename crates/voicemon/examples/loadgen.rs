//! Load generator for BENCHMARKS.md: ingest throughput of a running voicemon over HTTP with
//! NDJSON bodies (or of the seed's raw-row design on PostgreSQL), then latency-query time
//! over what it loaded. Bodies (and rows) are generated before the clock starts, so the
//! figure is the server's.
//!
//! ```sh
//! loadgen [--shape monotonic|live] [--spread minute|hour|30d] [--calls N] [--seed-design]
//!         [URL] [EVENTS] [BATCH] [CONNECTIONS] [DAYS] [TENANTS] [turns]
//! ```
//!
//! **`--shape monotonic`** (the default, as `scripts/pg-bench.sh` runs it): one
//! `turn.completed` and one `llm.usage` per turn (only turns with `turns`), calls of 8
//! consecutive events, timestamps increasing evenly over the last `DAYS` days. Defaults:
//! 1 000 000 events, bodies of 5 000, 4 connections, 30 days, 10 tenants.
//!
//! ```sh
//! loadgen http://127.0.0.1:3001 2000000 5000 4 30 10 [turns]
//! #       url                   events  batch conns days tenants
//! ```
//!
//! **`--shape live`**: a live fleet (issue 12). Defaults: 600 000 events, bodies of 1 000,
//! 8 connections, 50 tenants, `--calls 100000` call ids (`DAYS` and `turns` are ignored).
//! - The run goes round the calls: every round holds one event of each call, in a different
//!   order each round, so all calls are in progress at once, a call's events are spread
//!   across the whole run, and a body of 1 000 events touches 1 000 calls. Call ids are
//!   hex of a hash; each call belongs to one tenant and one provider stack.
//! - 60 % `turn.completed` with every component and `agent_id`; 10 % each `stt.usage`,
//!   `llm.usage`, `tts.usage` and `provider.request` (5 % of those failed, with an error).
//! - Timestamps uniformly random within `--spread` before the moment the bodies are
//!   generated (never in the future): `minute` (the last 60 s), `hour` (late and retried
//!   events), `30d`.
//! - Ids are unique per run (they carry the run's start), so a re-run against the same
//!   store stores everything again.
//! - Every response must be 202 with `accepted` equal to the events sent: rejects,
//!   duplicates and errors are counted and printed, and any of them makes the exit
//!   status 1. The last line of a clean run is `rate: <events/s> events/s, <turns/s> turns/s`.
//!
//! ```sh
//! loadgen --shape live --spread hour http://127.0.0.1:3001 [600000 1000 8 0 50]
//! #                                   url                    events batch conns days tenants
//! ```
//!
//! **`--seed-design`** (live shape only): URL is a PostgreSQL URL whose search path holds
//! the table of `scripts/seed-design.sql`. The same workload's turns are written as the
//! seed did: 4 raw rows a turn (stt, llm, tts, e2e) in one `metrics_latency` table, with
//! 100-row multi-`VALUES` INSERTs (`--rows-per-insert`), one autocommitted statement at a
//! time per connection. Then `percentile_cont` per tenant over the spread. The last line
//! is `rate: <rows/s> rows/s, <turns/s> turns/s`. `--seed-values bound` (the default)
//! prepares the INSERT once per connection and binds the values; `--seed-values literal`
//! writes them into the SQL text, as client-side interpolating drivers do.
//!
//! ```sh
//! loadgen --shape live --spread hour --seed-design \
//!   'postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dseed_bench' 600000
//! ```
//! **`--storage-floor`** (live shape only): URL is a PostgreSQL URL whose search path is an
//! empty schema. The least any durable, idempotent store of these events writes, with no
//! HTTP, parsing, validation, calls, costs or derived data: each event's idempotency key
//! (`event_ids`, primary key `(ts, key)`) and one raw row (a `turns` row for a turn, a
//! `facts` row for the rest; no secondary index), by binary `COPY`, one body of 1 000
//! events a transaction from 8 connections. The last line is
//! `rate: <events/s> events/s, <turns/s> turns/s`.
//!
//! `scripts/ingest-bench.sh` runs the seed design, the storage floor and voicemon on SQLite
//! and PostgreSQL in one go.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use tokio_postgres::types::ToSql;

/// How many times each latency query runs; the median is reported.
const QUERY_RUNS: usize = 20;

#[derive(Parser)]
#[command(about = "voicemon ingest load generator (see the doc comment of examples/loadgen.rs)")]
struct Args {
    /// voicemon's base URL, or with --seed-design a PostgreSQL URL.
    #[arg(default_value = "http://127.0.0.1:3001")]
    url: String,
    /// Events to generate [default: 1000000 monotonic, 600000 live].
    events: Option<usize>,
    /// Events per request body [default: 5000 monotonic, 1000 live].
    batch: Option<usize>,
    /// Concurrent connections [default: 4 monotonic, 8 live].
    connections: Option<usize>,
    /// Monotonic shape: days the timestamps span [default: 30]. Ignored by the live shape.
    days: Option<i64>,
    /// Tenants [default: 10 monotonic, 50 live].
    tenants: Option<usize>,
    /// Monotonic shape: `turns` sends only `turn.completed`.
    mix: Option<String>,
    /// The shape of the traffic.
    #[arg(long, value_enum, default_value_t = ShapeKind::Monotonic)]
    shape: ShapeKind,
    /// Live shape: how far back timestamps go.
    #[arg(long, value_enum, default_value_t = Spread::Minute)]
    spread: Spread,
    /// Live shape: distinct call ids, interleaved.
    #[arg(long, default_value_t = 100_000)]
    calls: usize,
    /// Live shape: write the turns as the seed's raw rows into PostgreSQL at URL instead.
    #[arg(long)]
    seed_design: bool,
    /// Live shape: write each event as its key and one raw row into PostgreSQL at URL, the
    /// least a durable, idempotent store writes (binary COPY, a body a transaction).
    #[arg(long, conflicts_with = "seed_design")]
    storage_floor: bool,
    /// Seed design: rows per multi-VALUES INSERT.
    #[arg(long, default_value_t = 100)]
    rows_per_insert: usize,
    /// Seed design: how the INSERTs carry their values.
    #[arg(long, value_enum, default_value_t = SeedValues::Bound)]
    seed_values: SeedValues,
    /// Live shape: publish the bodies to NATS JetStream (URL is then a NATS URL) on this
    /// subject, into --nats-stream (created when missing), instead of posting them.
    #[arg(long)]
    nats_subject: Option<String>,
    /// The JetStream stream of --nats-subject and --nats-drain.
    #[arg(long, default_value = "VOICEMON_EVENTS")]
    nats_stream: String,
    /// Generate nothing: wait until this durable consumer of --nats-stream has acknowledged
    /// every message, and report EVENTS / the time from its first delivery to the last ack.
    #[arg(long)]
    nats_drain: Option<String>,
    /// With --nats-drain: delete the stream once drained.
    #[arg(long)]
    nats_delete: bool,
}

/// How the seed design's INSERTs carry their values.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SeedValues {
    /// A statement prepared once per connection, values bound as binary parameters.
    Bound,
    /// Values written into the SQL text and sent with the simple query protocol, as
    /// drivers that interpolate on the client do (psycopg2's `execute_values`, psql scripts).
    Literal,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ShapeKind {
    Monotonic,
    Live,
}

#[derive(Clone, Copy, ValueEnum)]
enum Spread {
    Minute,
    Hour,
    #[value(name = "30d")]
    ThirtyDays,
}

impl Spread {
    fn millis(self) -> i64 {
        match self {
            Spread::Minute => 60_000,
            Spread::Hour => 3_600_000,
            Spread::ThirtyDays => 30 * 86_400_000,
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let now_ms = voicemon_core::clock::Clock::now_ms(&voicemon_core::clock::SystemClock);
    let ok = match args.shape {
        ShapeKind::Monotonic => {
            assert!(
                !args.seed_design && !args.storage_floor,
                "--seed-design and --storage-floor need --shape live"
            );
            monotonic::run(&args, now_ms - 60_000).await
        }
        ShapeKind::Live => {
            let live = live::Workload::from_args(&args, now_ms);
            if let Some(consumer) = &args.nats_drain {
                nats::drain(&args, consumer, live.events as u64).await
            } else if let Some(subject) = &args.nats_subject {
                nats::publish(&args, &live, subject).await
            } else if args.seed_design {
                seed::run(&args, &live).await
            } else if args.storage_floor {
                floor::run(&args, &live).await
            } else {
                live.run_http(&args).await
            }
        }
    };
    if !ok {
        std::process::exit(1);
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed hash of an integer.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic number in [0, 1) from a hash.
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

/// What the responses of an HTTP run said.
#[derive(Default)]
struct Tally {
    requests: u64,
    sent: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    /// Responses other than 202, or 202s whose report did not parse.
    errors: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.errors += other.errors;
    }

    fn clean(&self) -> bool {
        self.errors == 0 && self.rejected == 0 && self.duplicates == 0 && self.accepted == self.sent
    }
}

/// One NDJSON body and how many events (and `turn.completed` among them) it holds.
struct Body {
    text: String,
    events: u64,
    turns: u64,
}

/// Posts every body to `/v1/events` from `connections` concurrent tasks, in order; returns
/// what the answers said and how long it took. Failures are printed (the first few in full).
async fn send_bodies(url: &str, bodies: Vec<Body>, connections: usize) -> (Tally, Duration) {
    let client = voicemon_server::outbound::client_builder().build().expect("an HTTP client");
    let queue = Arc::new(Mutex::new(bodies.into_iter()));
    let endpoint = format!("{url}/v1/events");
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (queue, client, endpoint) = (queue.clone(), client.clone(), endpoint.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let Some(body) = queue.lock().expect("queue").next() else { break };
                    post(&client, &endpoint, body, &mut tally).await;
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.add(&worker.await.expect("worker"));
    }
    (tally, started.elapsed())
}

async fn post(client: &reqwest::Client, endpoint: &str, body: Body, tally: &mut Tally) {
    const SHOWN: u64 = 3;
    tally.requests += 1;
    tally.sent += body.events;
    let response = client
        .post(endpoint)
        .header("content-type", "application/x-ndjson")
        .body(body.text)
        .send()
        .await
        .expect("voicemon answers");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let report: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    match report {
        Some(report) if status.as_u16() == 202 => {
            tally.accepted += report["accepted"].as_u64().unwrap_or(0);
            tally.duplicates += report["duplicates"].as_u64().unwrap_or(0);
            let rejected = report["rejected"].as_array().map_or(0, Vec::len) as u64;
            if rejected > 0 && tally.rejected < SHOWN {
                eprintln!("rejected events: {}", report["rejected"]);
            }
            tally.rejected += rejected;
        }
        _ => {
            if tally.errors < SHOWN {
                eprintln!("ERROR: {status} from voicemon: {}", text.chars().take(500).collect::<String>());
            }
            tally.errors += 1;
        }
    }
}

/// Prints the tally; false (and a loud line) unless every event was accepted.
fn report_tally(tally: &Tally) -> bool {
    println!(
        "responses: {} requests, {} events sent, {} accepted, {} duplicates, {} rejected, {} errors (not 202)",
        tally.requests, tally.sent, tally.accepted, tally.duplicates, tally.rejected, tally.errors
    );
    if !tally.clean() {
        eprintln!("FAILED: not every event was accepted with a 202 (see above)");
    }
    tally.clean()
}

/// Median time of `QUERY_RUNS` GETs of `/metrics/latency?{query}`, with the last answer.
async fn time_latency_query(url: &str, query: &str) -> (f64, serde_json::Value) {
    let client = voicemon_server::outbound::client_builder().build().expect("an HTTP client");
    let mut times = Vec::new();
    let mut answer = serde_json::Value::Null;
    for _ in 0..QUERY_RUNS {
        let start = Instant::now();
        answer = client
            .get(format!("{url}/metrics/latency?{query}"))
            .send()
            .await
            .expect("latency answers")
            .json()
            .await
            .expect("latency JSON");
        times.push(start.elapsed());
    }
    (median_ms(times), answer)
}

/// The original shape: increasing timestamps and call ids, calls of 8 consecutive events.
mod monotonic {
    use super::*;

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
            let ts =
                voicemon_core::window::format_time(now_ms - span_ms + (n as i64 * span_ms) / total as i64);
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

    pub async fn run(args: &Args, now_ms: i64) -> bool {
        let url = &args.url;
        let events = args.events.unwrap_or(1_000_000);
        let batch_size = args.batch.unwrap_or(5_000);
        let connections = args.connections.unwrap_or(4);
        let days = args.days.unwrap_or(30);
        let tenants = args.tenants.unwrap_or(10);
        let turns_only = args.mix.as_deref() == Some("turns");
        let shape = Shape { total: events, days, tenants, turns_only };
        let batches = events / batch_size;

        eprintln!("generating {batches} bodies of {batch_size} events…");
        let bodies: Vec<Body> = (0..batches)
            .map(|b| Body {
                text: body(b, batch_size, shape, now_ms),
                events: batch_size as u64,
                turns: if turns_only { batch_size } else { batch_size.div_ceil(2) } as u64,
            })
            .collect();
        let bytes: usize = bodies.iter().map(|b| b.text.len()).sum();
        let (tally, took) = send_bodies(url, bodies, connections).await;
        println!(
            "ingest: {} events ({:.1} MiB NDJSON) in {:.2} s = {:.0} events/s ({connections} connections, {batch_size} per request)",
            tally.accepted,
            bytes as f64 / 1_048_576.0,
            took.as_secs_f64(),
            rate(tally.accepted, took)
        );
        let ok = report_tally(&tally);

        let from = voicemon_core::window::format_time(now_ms - days * 86_400_000 - 60_000);
        for (label, query) in [
            ("one tenant, whole range, 1d steps", format!("tenant_id=t0&from={from}&step=1d")),
            ("one tenant, whole range, 1h steps", format!("tenant_id=t0&from={from}&step=1h")),
            ("all tenants, whole range, 1d steps", format!("from={from}&step=1d")),
        ] {
            let (median, answer) = time_latency_query(url, &query).await;
            println!(
                "latency query ({label}): {} turns, median {median:.1} ms over {QUERY_RUNS} runs",
                answer["overall"]["count"].as_u64().unwrap_or(0)
            );
        }
        ok
    }
}

/// The live shape: interleaved calls across tenants, a mix of event types, a timestamp spread.
mod live {
    use super::*;

    /// The providers one call uses, with their models.
    pub struct Stack {
        pub stt: (&'static str, &'static str),
        pub llm: (&'static str, &'static str),
        pub tts: (&'static str, &'static str),
    }

    /// Most calls on the first stack, as fleets standardise; all are in the price book.
    const STACKS: [Stack; 4] = [
        Stack { stt: ("deepgram", "nova-3"), llm: ("openai", "gpt-4o-mini"), tts: ("cartesia", "sonic-2") },
        Stack { stt: ("deepgram", "nova-3"), llm: ("openai", "gpt-4o-mini"), tts: ("cartesia", "sonic-2") },
        Stack {
            stt: ("deepgram", "nova-2"),
            llm: ("openai", "gpt-4o"),
            tts: ("elevenlabs", "eleven_flash_v2_5"),
        },
        Stack { stt: ("assemblyai", "universal"), llm: ("openai", "gpt-4o"), tts: ("cartesia", "sonic-2") },
    ];
    const AGENTS: [&str; 3] = ["receptionist-v3", "support-bot", "booking-agent"];
    const ERRORS: [&str; 3] = ["timeout", "http_429", "connection_reset"];

    pub struct Workload {
        pub events: usize,
        pub tenants: usize,
        pub calls: usize,
        pub spread: Spread,
        /// Timestamps are at most this (the moment of generation), never in the future.
        pub now_ms: i64,
        /// Makes ids unique per run.
        run: u64,
        /// Multiplier of the round permutation: coprime with `calls`.
        stride: usize,
    }

    /// One call: its tenant, id and providers.
    pub struct Call {
        pub tenant: String,
        pub id: String,
        pub agent: &'static str,
        pub stack: &'static Stack,
    }

    pub struct Turn {
        pub index: u64,
        pub e2e: f64,
        pub stt: f64,
        pub eou: f64,
        pub llm: f64,
        pub tts: f64,
    }

    pub enum Detail {
        Turn(Turn),
        SttUsage { audio_s: f64, latency: f64 },
        LlmUsage { input: u64, cached: u64, output: u64, ttft: f64 },
        TtsUsage { characters: u64, audio_s: f64, ttfb: f64 },
        Request { component: &'static str, error: Option<&'static str>, latency: f64 },
    }

    pub struct Event {
        pub n: usize,
        pub ts_ms: i64,
        pub call: Call,
        pub detail: Detail,
    }

    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }

    impl Workload {
        pub fn from_args(args: &Args, now_ms: i64) -> Self {
            let calls = args.calls.max(1);
            let stride = (calls * 5 / 8..).find(|s| *s > 0 && gcd(*s, calls) == 1).expect("a stride");
            Workload {
                events: args.events.unwrap_or(600_000),
                tenants: args.tenants.unwrap_or(50),
                calls,
                spread: args.spread,
                now_ms,
                run: now_ms as u64,
                stride,
            }
        }

        pub fn tenant_name(tenant: usize) -> String {
            format!("t{tenant:02}")
        }

        /// The call of event `n`: round `n / calls` visits every call once, in its own order.
        pub fn call_of(&self, n: usize) -> usize {
            let (round, slot) = (n / self.calls, n % self.calls);
            (slot * self.stride + round * 7919) % self.calls
        }

        fn call(&self, index: usize) -> Call {
            let hash = mix(index as u64 ^ 0x5eed);
            Call {
                tenant: Self::tenant_name((hash % self.tenants as u64) as usize),
                id: format!("call_{:016x}", mix(self.run ^ mix(index as u64))),
                agent: AGENTS[(hash >> 20) as usize % AGENTS.len()],
                stack: &STACKS[(hash >> 40) as usize % STACKS.len()],
            }
        }

        pub fn event(&self, n: usize) -> Event {
            let h = mix(self.run.wrapping_mul(31) ^ n as u64);
            let ts_ms = self.now_ms - (unit(mix(h)) * self.spread.millis() as f64) as i64;
            // e2e 350 ms .. ~2.9 s, skewed low; the parts in proportion.
            let e2e = 350.0 + 2_500.0 * unit(mix(h ^ 1)) * unit(mix(h ^ 2));
            let detail = match h % 100 {
                0..60 => Detail::Turn(Turn {
                    index: (n / self.calls) as u64,
                    e2e,
                    stt: e2e * 0.22,
                    eou: e2e * 0.3,
                    llm: e2e * 0.38,
                    tts: e2e * 0.17,
                }),
                60..70 => Detail::SttUsage { audio_s: 0.5 + 8.0 * unit(mix(h ^ 3)), latency: e2e * 0.22 },
                70..80 => {
                    let input = 800 + (h >> 8) % 3_000;
                    Detail::LlmUsage {
                        input,
                        cached: input / 2,
                        output: 10 + (h >> 24) % 200,
                        ttft: e2e * 0.38,
                    }
                }
                80..90 => Detail::TtsUsage {
                    characters: 20 + (h >> 8) % 300,
                    audio_s: 1.0 + 10.0 * unit(mix(h ^ 4)),
                    ttfb: e2e * 0.17,
                },
                _ => Detail::Request {
                    component: ["stt", "llm", "tts"][(h >> 8) as usize % 3],
                    error: (h >> 16).is_multiple_of(20).then(|| ERRORS[(h >> 24) as usize % ERRORS.len()]),
                    latency: e2e * 0.3,
                },
            };
            Event { n, ts_ms, call: self.call(self.call_of(n)), detail }
        }

        /// Events `from..to` as NDJSON.
        fn body(&self, from: usize, to: usize) -> Body {
            let mut text = String::with_capacity((to - from) * 330);
            let mut turns = 0;
            for n in from..to {
                let event = self.event(n);
                turns += u64::from(matches!(event.detail, Detail::Turn(_)));
                event.write_json(self.run, &mut text);
                text.push('\n');
            }
            Body { text, events: (to - from) as u64, turns }
        }

        pub fn describe(&self) -> String {
            format!(
                "{} events, {} tenants, {} interleaved calls, timestamps over the last {}",
                self.events,
                self.tenants,
                self.calls,
                self.spread_label()
            )
        }

        pub fn spread_label(&self) -> &'static str {
            match self.spread {
                Spread::Minute => "minute",
                Spread::Hour => "hour",
                Spread::ThirtyDays => "30 days",
            }
        }

        /// Queries start a minute before the oldest timestamp.
        pub fn window_start_ms(&self) -> i64 {
            self.now_ms - self.spread.millis() - 60_000
        }

        /// The NDJSON bodies of the run, `batch` events each.
        pub fn bodies(&self, batch: usize) -> Vec<Body> {
            eprintln!("generating {}…", self.describe());
            (0..self.events)
                .step_by(batch)
                .map(|from| self.body(from, (from + batch).min(self.events)))
                .collect()
        }

        pub async fn run_http(&self, args: &Args) -> bool {
            let batch = args.batch.unwrap_or(1_000);
            let connections = args.connections.unwrap_or(8);
            let bodies = self.bodies(batch);
            let bytes: usize = bodies.iter().map(|b| b.text.len()).sum();
            let turns: u64 = bodies.iter().map(|b| b.turns).sum();
            let (tally, took) = send_bodies(&args.url, bodies, connections).await;
            println!(
                "ingest: {} events ({turns} turns, {:.1} MiB NDJSON) in {:.2} s = {:.0} events/s, {:.0} turns/s ({connections} connections, {batch} per request)",
                tally.accepted,
                bytes as f64 / 1_048_576.0,
                took.as_secs_f64(),
                rate(tally.accepted, took),
                rate(turns, took)
            );
            let ok = report_tally(&tally);

            let from = voicemon_core::window::format_time(self.window_start_ms());
            let tenant = Self::tenant_name(0);
            for (label, query) in [
                (format!("tenant {tenant}"), format!("tenant_id={tenant}&from={from}")),
                ("all tenants".to_string(), format!("from={from}")),
            ] {
                let (median, answer) = time_latency_query(&args.url, &query).await;
                let overall = &answer["overall"];
                println!(
                    "latency query ({label}, last {}, REST): {} turns, P50/P95/P99 {}/{}/{} ms, median {median:.1} ms over {QUERY_RUNS} runs",
                    self.spread_label(),
                    overall["count"],
                    overall["p50"],
                    overall["p95"],
                    overall["p99"],
                );
            }
            if ok {
                println!(
                    "rate: {:.0} events/s, {:.0} turns/s",
                    rate(tally.accepted, took),
                    rate(turns, took)
                );
            }
            ok
        }
    }

    impl Event {
        /// The event as one line of the v1 contract (docs/events.md).
        fn write_json(&self, run: u64, out: &mut String) {
            let Call { tenant, id: call_id, agent, stack } = &self.call;
            let ts = voicemon_core::window::format_time(self.ts_ms);
            let kind = match self.detail {
                Detail::Turn(_) => "turn.completed",
                Detail::SttUsage { .. } => "stt.usage",
                Detail::LlmUsage { .. } => "llm.usage",
                Detail::TtsUsage { .. } => "tts.usage",
                Detail::Request { .. } => "provider.request",
            };
            let _ = write!(
                out,
                r#"{{"id":"lg-{run:x}-{}","type":"{kind}","timestamp":"{ts}","tenant_id":"{tenant}","call_id":"{call_id}","agent_id":"{agent}","#,
                self.n
            );
            let _ = match &self.detail {
                Detail::Turn(t) => write!(
                    out,
                    r#""turn_index":{},"e2e_ms":{:.1},"stt_ms":{:.1},"eou_ms":{:.1},"llm_ttft_ms":{:.1},"tts_ttfb_ms":{:.1}}}"#,
                    t.index, t.e2e, t.stt, t.eou, t.llm, t.tts
                ),
                Detail::SttUsage { audio_s, latency } => write!(
                    out,
                    r#""provider":"{}","model":"{}","audio_seconds":{audio_s:.2},"latency_ms":{latency:.1}}}"#,
                    stack.stt.0, stack.stt.1
                ),
                Detail::LlmUsage { input, cached, output, ttft } => write!(
                    out,
                    r#""provider":"{}","model":"{}","input_tokens":{input},"cached_input_tokens":{cached},"output_tokens":{output},"ttft_ms":{ttft:.1}}}"#,
                    stack.llm.0, stack.llm.1
                ),
                Detail::TtsUsage { characters, audio_s, ttfb } => write!(
                    out,
                    r#""provider":"{}","model":"{}","characters":{characters},"audio_seconds":{audio_s:.2},"ttfb_ms":{ttfb:.1}}}"#,
                    stack.tts.0, stack.tts.1
                ),
                Detail::Request { component, error, latency } => {
                    let provider = match *component {
                        "stt" => stack.stt.0,
                        "llm" => stack.llm.0,
                        _ => stack.tts.0,
                    };
                    let outcome = match error {
                        None => r#""ok":true"#.to_string(),
                        Some(error) => format!(r#""ok":false,"error":"{error}""#),
                    };
                    write!(
                        out,
                        r#""provider":"{provider}","component":"{component}",{outcome},"latency_ms":{latency:.1}}}"#
                    )
                }
            };
        }
    }
}

/// The event bus: the live shape's bodies published to NATS JetStream, and the time a
/// voicemon consumer takes to store them (scripts/nats-bench.sh).
mod nats {
    use super::*;
    use async_nats::jetstream;

    async fn context(url: &str) -> jetstream::Context {
        let client = async_nats::connect(url).await.unwrap_or_else(|err| panic!("NATS at {url}: {err}"));
        jetstream::new(client)
    }

    /// Publishes every body as one message, `connections` publishes awaiting their acks at once.
    pub async fn publish(args: &Args, workload: &live::Workload, subject: &str) -> bool {
        let context = context(&args.url).await;
        let prefix = subject.rsplit_once('.').map_or(subject, |(prefix, _)| prefix);
        let config = jetstream::stream::Config {
            name: args.nats_stream.clone(),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        };
        context.get_or_create_stream(config).await.expect("the stream exists");
        let bodies = workload.bodies(args.batch.unwrap_or(1_000));
        let events: u64 = bodies.iter().map(|body| body.events).sum();
        let in_flight = args.connections.unwrap_or(64);
        let started = Instant::now();
        let mut pending = std::collections::VecDeque::new();
        for body in bodies {
            let ack = context.publish(subject.to_owned(), body.text.into()).await.expect("published");
            pending.push_back(ack);
            if pending.len() >= in_flight {
                pending.pop_front().expect("one").await.expect("JetStream stored it");
            }
        }
        for ack in pending {
            ack.await.expect("JetStream stored it");
        }
        let took = started.elapsed();
        println!(
            "published: {events} events in {:.2} s = {:.0} events/s",
            took.as_secs_f64(),
            rate(events, took)
        );
        true
    }

    /// Waits for `consumer` to acknowledge the whole stream; the rate from its first delivery.
    pub async fn drain(args: &Args, consumer: &str, events: u64) -> bool {
        let context = context(&args.url).await;
        let mut stream = context.get_stream(&args.nats_stream).await.expect("the stream exists");
        let last = stream.info().await.expect("stream info").state.last_sequence;
        let mut first_delivery: Option<Instant> = None;
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            if let Ok(mut handle) = stream.get_consumer::<jetstream::consumer::pull::Config>(consumer).await {
                let info = handle.info().await.expect("consumer info").clone();
                if info.delivered.stream_sequence > 0 && first_delivery.is_none() {
                    first_delivery = Some(Instant::now());
                }
                if info.ack_floor.stream_sequence >= last && info.num_ack_pending == 0 {
                    let took = first_delivery.map_or(Duration::ZERO, |at| at.elapsed());
                    println!(
                        "drained: {events} events ({last} messages) in {:.2} s = {:.0} events/s",
                        took.as_secs_f64(),
                        rate(events, took)
                    );
                    println!("rate: {:.0} events/s, 0 turns/s", rate(events, took));
                    if args.nats_delete {
                        context.delete_stream(&args.nats_stream).await.expect("the stream is deleted");
                    }
                    return true;
                }
            }
            if Instant::now() > deadline {
                eprintln!("the consumer did not drain the stream within an hour");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The seed's design: raw latency rows in one PostgreSQL table, `percentile_cont` to read.
mod seed {
    use super::live::{Detail, Workload};
    use super::*;
    use tokio_postgres::{Client, SimpleQueryMessage, Statement};

    const COLUMNS: &str =
        "ts, tenant_id, agent_id, call_id, turn_index, component, provider, model, latency_ms";
    const PARAMS_PER_ROW: usize = 9;

    /// One row of `metrics_latency` (scripts/seed-design.sql).
    struct Row {
        ts: DateTime<Utc>,
        tenant: String,
        agent: &'static str,
        call_id: String,
        turn_index: i32,
        component: &'static str,
        provider: Option<&'static str>,
        model: Option<&'static str>,
        latency_ms: f64,
    }

    /// The 4 rows the seed wrote for each turn (stt, llm, tts with their provider, and e2e),
    /// in chunks of `per_insert`.
    fn rows_of_turns(workload: &Workload, per_insert: usize) -> Vec<Vec<Row>> {
        let mut chunks: Vec<Vec<Row>> = Vec::new();
        for n in 0..workload.events {
            let event = workload.event(n);
            let Detail::Turn(turn) = &event.detail else { continue };
            let ts = DateTime::from_timestamp_millis(event.ts_ms).expect("a valid time");
            let stack = event.call.stack;
            for (component, provider, latency_ms) in [
                ("stt", Some(stack.stt), turn.stt),
                ("llm", Some(stack.llm), turn.llm),
                ("tts", Some(stack.tts), turn.tts),
                ("e2e", None, turn.e2e),
            ] {
                if chunks.last().is_none_or(|chunk| chunk.len() == per_insert) {
                    chunks.push(Vec::with_capacity(per_insert));
                }
                chunks.last_mut().expect("a chunk").push(Row {
                    ts,
                    tenant: event.call.tenant.clone(),
                    agent: event.call.agent,
                    call_id: event.call.id.clone(),
                    turn_index: turn.index as i32,
                    component,
                    provider: provider.map(|p| p.0),
                    model: provider.map(|p| p.1),
                    latency_ms: (latency_ms * 10.0).round() / 10.0,
                });
            }
        }
        chunks
    }

    /// One INSERT, ready to send.
    enum Insert {
        Bound(Vec<Row>),
        Literal(String),
    }

    /// `INSERT … VALUES ($1, …), (…)` for `rows` rows.
    fn insert_sql(rows: usize) -> String {
        let values: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> =
                    (1..=PARAMS_PER_ROW).map(|c| format!("${}", r * PARAMS_PER_ROW + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!("INSERT INTO metrics_latency ({COLUMNS}) VALUES {}", values.join(", "))
    }

    /// `INSERT … VALUES ('…', …), (…)` with the rows' values in the text.
    fn literal_sql(rows: &[Row]) -> String {
        fn quote(text: &str) -> String {
            format!("'{}'", text.replace('\'', "''"))
        }
        let nullable = |text: Option<&str>| text.map_or_else(|| "NULL".to_string(), quote);
        let values: Vec<String> = rows
            .iter()
            .map(|row| {
                format!(
                    "({}, {}, {}, {}, {}, {}, {}, {}, {})",
                    quote(&row.ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                    quote(&row.tenant),
                    quote(row.agent),
                    quote(&row.call_id),
                    row.turn_index,
                    quote(row.component),
                    nullable(row.provider),
                    nullable(row.model),
                    row.latency_ms
                )
            })
            .collect();
        format!("INSERT INTO metrics_latency ({COLUMNS}) VALUES {}", values.join(", "))
    }

    async fn connect(url: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("PostgreSQL connects");
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("PostgreSQL connection: {err}");
            }
        });
        client
    }

    /// Connections, each with the full-size INSERT prepared.
    async fn connect_all(url: &str, connections: usize, per_insert: usize) -> Vec<(Client, Statement)> {
        let mut clients = Vec::new();
        for _ in 0..connections {
            let client = connect(url).await;
            let statement = client.prepare(&insert_sql(per_insert)).await.expect("the INSERT prepares");
            clients.push((client, statement));
        }
        clients
    }

    /// Sends every INSERT, one autocommitted statement at a time on each connection.
    async fn insert_all(clients: Vec<(Client, Statement)>, inserts: Vec<Insert>) -> u64 {
        let queue = Arc::new(Mutex::new(inserts.into_iter()));
        let workers: Vec<_> = clients
            .into_iter()
            .map(|(client, statement)| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut inserted = 0;
                    loop {
                        let Some(insert) = queue.lock().expect("queue").next() else { break };
                        inserted += execute(&client, &statement, insert).await;
                    }
                    inserted
                })
            })
            .collect();
        let mut inserted = 0;
        for worker in workers {
            inserted += worker.await.expect("worker");
        }
        inserted
    }

    /// Runs one INSERT; the rows it inserted.
    async fn execute(client: &Client, statement: &Statement, insert: Insert) -> u64 {
        match insert {
            Insert::Bound(chunk) => {
                let params: Vec<&(dyn ToSql + Sync)> = chunk.iter().flat_map(params_of).collect();
                let result = if chunk.len() * PARAMS_PER_ROW == statement.params().len() {
                    client.execute(statement, &params).await
                } else {
                    client.execute(insert_sql(chunk.len()).as_str(), &params).await
                };
                result.expect("the INSERT succeeds")
            }
            Insert::Literal(sql) => {
                let messages = client.simple_query(&sql).await.expect("the INSERT succeeds");
                messages
                    .iter()
                    .map(|message| match message {
                        SimpleQueryMessage::CommandComplete(rows) => *rows,
                        _ => 0,
                    })
                    .sum()
            }
        }
    }

    fn params_of(row: &Row) -> [&(dyn ToSql + Sync); PARAMS_PER_ROW] {
        [
            &row.ts,
            &row.tenant,
            &row.agent,
            &row.call_id,
            &row.turn_index,
            &row.component,
            &row.provider,
            &row.model,
            &row.latency_ms,
        ]
    }

    pub async fn run(args: &Args, workload: &Workload) -> bool {
        let connections = args.connections.unwrap_or(8);
        let per_insert = args.rows_per_insert.max(1);
        eprintln!("generating the seed design's rows of {}…", workload.describe());
        let chunks = rows_of_turns(workload, per_insert);
        let total = chunks.iter().map(Vec::len).sum::<usize>() as u64;
        let turns = total / 4;
        let (inserts, values): (Vec<Insert>, _) = match args.seed_values {
            SeedValues::Bound => (chunks.into_iter().map(Insert::Bound).collect(), "bound parameters"),
            SeedValues::Literal => {
                (chunks.iter().map(|chunk| Insert::Literal(literal_sql(chunk))).collect(), "literal SQL")
            }
        };
        let clients = connect_all(&args.url, connections, per_insert).await;

        let started = Instant::now();
        let inserted = insert_all(clients, inserts).await;
        let took = started.elapsed();
        println!(
            "seed design: {inserted} rows ({turns} turns × 4) in {:.2} s = {:.0} rows/s, {:.0} turns/s ({connections} connections, {per_insert} rows per INSERT, {values})",
            took.as_secs_f64(),
            rate(inserted, took),
            rate(turns, took)
        );
        let ok = inserted == total;
        if !ok {
            eprintln!("FAILED: {inserted} rows inserted of {total}");
        }
        query(args, workload).await;
        if ok {
            println!("rate: {:.0} rows/s, {:.0} turns/s", rate(inserted, took), rate(turns, took));
        }
        ok
    }

    /// The seed's latency query: `percentile_cont` over the raw e2e rows, per tenant.
    async fn query(args: &Args, workload: &Workload) {
        let client = connect(&args.url).await;
        client.batch_execute("ANALYZE metrics_latency").await.expect("ANALYZE");
        let from = DateTime::from_timestamp_millis(workload.window_start_ms()).expect("a valid time");
        let tenant = Workload::tenant_name(0);
        let percentiles = "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)";
        let one = format!(
            "SELECT {percentiles}, count(*) FROM metrics_latency
             WHERE tenant_id = $1 AND component = 'e2e' AND ts >= $2 AND ts <= now()"
        );
        let all = format!(
            "SELECT tenant_id, {percentiles}, count(*) FROM metrics_latency
             WHERE component = 'e2e' AND ts >= $1 AND ts <= now() GROUP BY tenant_id"
        );
        let mut times = Vec::new();
        let mut answer = (Vec::new(), 0i64);
        for _ in 0..QUERY_RUNS {
            let start = Instant::now();
            let row = client.query_one(&one, &[&tenant, &from]).await.expect("the latency query");
            times.push(start.elapsed());
            answer = (row.get::<_, Vec<f64>>(0), row.get(1));
        }
        let p: Vec<String> = answer.0.iter().map(|v| format!("{v:.1}")).collect();
        println!(
            "latency query (tenant {tenant}, last {}, percentile_cont): {} turns, P50/P95/P99 {} ms, median {:.1} ms over {QUERY_RUNS} runs",
            workload.spread_label(),
            answer.1,
            p.join("/"),
            median_ms(times)
        );
        let mut times = Vec::new();
        let mut groups = 0;
        for _ in 0..QUERY_RUNS {
            let start = Instant::now();
            groups = client.query(&all, &[&from]).await.expect("the latency query").len();
            times.push(start.elapsed());
        }
        println!(
            "latency query (all tenants, per tenant, last {}, percentile_cont): {groups} tenants, median {:.1} ms over {QUERY_RUNS} runs",
            workload.spread_label(),
            median_ms(times)
        );
    }
}

/// The storage floor: what any durable, idempotent store of every event writes at least.
mod floor {
    use super::live::{Detail, Workload};
    use super::*;
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    use tokio_postgres::Client;

    const SCHEMA: &str = "
        CREATE TABLE event_ids (ts timestamptz NOT NULL, key bigint NOT NULL, PRIMARY KEY (ts, key));
        CREATE TABLE turns (call bigint NOT NULL, tenant_id text NOT NULL, ts timestamptz NOT NULL,
          turn_index integer NOT NULL, e2e_ms real NOT NULL, stt_ms real, eou_ms real, llm_ttft_ms real,
          tts_ttfb_ms real, agent_id text);
        CREATE TABLE facts (call bigint NOT NULL, tenant_id text NOT NULL, ts timestamptz NOT NULL,
          kind text NOT NULL, quantity double precision NOT NULL, latency_ms real NOT NULL)";

    /// A `turns` row: call, tenant, time, turn index, e2e/stt/eou/llm/tts ms, agent.
    type TurnRow = (i64, String, DateTime<Utc>, i32, [f32; 5], &'static str);
    /// A `facts` row: call, tenant, time, kind, quantity, latency ms.
    type FactRow = (i64, String, DateTime<Utc>, &'static str, f64, f32);

    /// One body's rows: every event's key, the turns' rows and the other events' rows.
    #[derive(Default)]
    struct Batch {
        keys: Vec<(DateTime<Utc>, i64)>,
        turns: Vec<TurnRow>,
        facts: Vec<FactRow>,
    }

    fn batches(workload: &Workload, per_batch: usize) -> Vec<Batch> {
        (0..workload.events)
            .step_by(per_batch)
            .map(|from| {
                let mut batch = Batch::default();
                for n in from..(from + per_batch).min(workload.events) {
                    let event = workload.event(n);
                    let ts = DateTime::from_timestamp_millis(event.ts_ms).expect("a valid time");
                    // The call's number as voicemon's `calls.id` would give it; the key a
                    // hash of the event's id, as voicemon's idempotency key is.
                    let call = workload.call_of(n) as i64;
                    batch.keys.push((ts, (mix(event.n as u64 ^ 0x1d) >> 1) as i64));
                    let tenant = event.call.tenant;
                    let (kind, quantity, latency) = match event.detail {
                        Detail::Turn(turn) => {
                            let ms = [turn.e2e, turn.stt, turn.eou, turn.llm, turn.tts].map(|v| v as f32);
                            batch.turns.push((call, tenant, ts, turn.index as i32, ms, event.call.agent));
                            continue;
                        }
                        Detail::SttUsage { audio_s, latency } => ("stt", audio_s, latency),
                        Detail::LlmUsage { input, ttft, .. } => ("llm", input as f64, ttft),
                        Detail::TtsUsage { characters, ttfb, .. } => ("tts", characters as f64, ttfb),
                        Detail::Request { component, latency, .. } => (component, 1.0, latency),
                    };
                    batch.facts.push((call, tenant, ts, kind, quantity, latency as f32));
                }
                batch
            })
            .collect()
    }

    /// One body in one transaction: a COPY per table.
    async fn write(client: &mut Client, batch: &Batch) -> Result<(), tokio_postgres::Error> {
        let tx = client.transaction().await?;
        let sink = tx.copy_in("COPY event_ids (ts, key) FROM STDIN (FORMAT binary)").await?;
        let mut keys = std::pin::pin!(BinaryCopyInWriter::new(sink, &[Type::TIMESTAMPTZ, Type::INT8]));
        for (ts, key) in &batch.keys {
            keys.as_mut().write(&[ts, key]).await?;
        }
        keys.finish().await?;
        let sink = tx
            .copy_in(
                "COPY turns (call, tenant_id, ts, turn_index, e2e_ms, stt_ms, eou_ms, llm_ttft_ms,
                 tts_ttfb_ms, agent_id) FROM STDIN (FORMAT binary)",
            )
            .await?;
        let types = [
            Type::INT8,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::INT4,
            Type::FLOAT4,
            Type::FLOAT4,
            Type::FLOAT4,
            Type::FLOAT4,
            Type::FLOAT4,
            Type::TEXT,
        ];
        let mut turns = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for (call, tenant, ts, index, ms, agent) in &batch.turns {
            turns
                .as_mut()
                .write(&[call, tenant, ts, index, &ms[0], &ms[1], &ms[2], &ms[3], &ms[4], agent])
                .await?;
        }
        turns.finish().await?;
        let sink = tx
            .copy_in(
                "COPY facts (call, tenant_id, ts, kind, quantity, latency_ms) FROM STDIN (FORMAT binary)",
            )
            .await?;
        let types = [Type::INT8, Type::TEXT, Type::TIMESTAMPTZ, Type::TEXT, Type::FLOAT8, Type::FLOAT4];
        let mut facts = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for (call, tenant, ts, kind, quantity, latency) in &batch.facts {
            facts.as_mut().write(&[call, tenant, ts, kind, quantity, latency]).await?;
        }
        facts.finish().await?;
        tx.commit().await
    }

    pub async fn run(args: &Args, workload: &Workload) -> bool {
        let connections = args.connections.unwrap_or(8);
        let per_batch = args.batch.unwrap_or(1_000);
        eprintln!("generating the storage floor's rows of {}…", workload.describe());
        let batches = batches(workload, per_batch);
        let turns = batches.iter().map(|b| b.turns.len() as u64).sum::<u64>();
        let mut clients = Vec::new();
        for _ in 0..connections {
            let (client, connection) =
                tokio_postgres::connect(&args.url, tokio_postgres::NoTls).await.expect("PostgreSQL connects");
            tokio::spawn(connection);
            clients.push(client);
        }
        clients[0].batch_execute(SCHEMA).await.expect("the floor's tables are made");

        let queue = Arc::new(Mutex::new(batches.into_iter()));
        let started = Instant::now();
        let workers: Vec<_> = clients
            .into_iter()
            .map(|mut client| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut written = 0u64;
                    loop {
                        let Some(batch) = queue.lock().expect("queue").next() else { break };
                        write(&mut client, &batch).await.expect("the batch is written");
                        written += batch.keys.len() as u64;
                    }
                    written
                })
            })
            .collect();
        let mut written = 0;
        for worker in workers {
            written += worker.await.expect("worker");
        }
        let took = started.elapsed();
        println!(
            "storage floor: {written} events (a key and a raw row each; {turns} turns) in {:.2} s = {:.0} events/s, {:.0} rows/s ({connections} connections, {per_batch} events a transaction, binary COPY)",
            took.as_secs_f64(),
            rate(written, took),
            rate(written * 2, took)
        );
        let ok = written == workload.events as u64;
        if ok {
            println!("rate: {:.0} events/s, {:.0} turns/s", rate(written, took), rate(turns, took));
        } else {
            eprintln!("FAILED: {written} events written of {}", workload.events);
        }
        ok
    }
}

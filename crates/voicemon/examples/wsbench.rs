//! Live view benchmark for BENCHMARKS.md: many WebSocket subscribers of
//! `/metrics/stream` against a running voicemon; the server's CPU and memory, and per
//! interval the time from the tick (the snapshot's `computed_at_ms`) to each client
//! receiving it.
//!
//! ```sh
//! cargo run --release --example wsbench -- ws://127.0.0.1:3401/metrics/stream <server pid> 1000 60 5 0
//! #                                          url                                pid   clients seconds interval tenants
//! ```
//! With `tenants` 0 every client subscribes to the same scope (all tenants), so one
//! snapshot per interval is computed and fanned out to all; with `tenants` n, client i
//! watches `tenant-0{i % n + 1}` (the demo's names): n scopes. Clients read `seq` and `computed_at_ms` by text
//! search (no JSON parsing), so the benchmark's own CPU stays small.

use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

fn arg<T: std::str::FromStr>(args: &[String], index: usize, default: T) -> T {
    args.get(index).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// The integer after `"name":` in `text`.
fn field(text: &str, name: &str) -> Option<i64> {
    let key = format!("\"{name}\":");
    let start = text.find(&key)? + key.len();
    let digits: String = text[start..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// (utime + stime in clock ticks, RSS kB, peak RSS kB) of a process.
fn process(pid: &str) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    let cpu = ticks(11) + ticks(12);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kb("VmRSS:"), kb("VmHWM:"))
}

/// CPU percent of one core between two readings.
fn cpu_percent(before: u64, after: u64, elapsed: Duration) -> f64 {
    (after - before) as f64 / 100.0 / elapsed.as_secs_f64() * 100.0
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// (seq, delay from computed_at to receipt in ms)
type Receipt = (i64, f64);

async fn client(
    url: String,
    interval: u64,
    tenant: Option<String>,
    receipts: mpsc::UnboundedSender<Receipt>,
    stop: Arc<tokio::sync::Notify>,
) {
    let (mut socket, _) = match tokio_tungstenite::connect_async(&url).await {
        Ok(connected) => connected,
        Err(err) => {
            eprintln!("connect failed: {err}");
            return;
        }
    };
    let tenant = tenant.map(|t| format!(r#","tenant_id":"{t}""#)).unwrap_or_default();
    let subscribe = format!(r#"{{"type":"subscribe","interval_s":{interval}{tenant}}}"#);
    if socket.send(Message::text(subscribe)).await.is_err() {
        return;
    }
    let wanted = format!("\"interval_s\":{interval}");
    let wanted_tenant =
        if tenant.is_empty() { "\"tenant_id\":null".to_owned() } else { tenant[1..].to_owned() };
    let mut subscribed = false;
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = stop.notified() => break,
        };
        let Some(Ok(Message::Text(text))) = message else {
            match message {
                Some(Ok(_)) => continue,
                _ => break,
            }
        };
        let received = now_ms();
        let text = text.as_str();
        if text.starts_with(r#"{"type":"subscribed""#)
            && text.contains(&wanted)
            && text.contains(&wanted_tenant)
        {
            subscribed = true;
        } else if subscribed && text.starts_with(r#"{"type":"snapshot""#) {
            if let (Some(seq), Some(at)) = (field(text, "seq"), field(text, "computed_at_ms")) {
                let _ = receipts.send((seq, received - at as f64));
            }
        }
    }
    let _ = socket.close(None).await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url: String = arg(&args, 1, "ws://127.0.0.1:3401/metrics/stream".to_owned());
    let pid: String = arg(&args, 2, String::new());
    let clients: usize = arg(&args, 3, 1000);
    let seconds: u64 = arg(&args, 4, 60);
    let interval: u64 = arg(&args, 5, 5);
    let tenants: usize = arg(&args, 6, 0);
    assert!(!pid.is_empty(), "usage: wsbench <ws url> <server pid> [clients] [seconds] [interval]");

    let idle = Duration::from_secs(10);
    let (cpu0, rss0, _) = process(&pid);
    tokio::time::sleep(idle).await;
    let (cpu1, rss1, _) = process(&pid);
    println!(
        "server before: CPU {:.1} % of a core (10 s, demo traffic only), RSS {} MB",
        cpu_percent(cpu0, cpu1, idle),
        rss1 / 1024
    );
    let _ = rss0;

    let (send, mut receipts) = mpsc::unbounded_channel::<Receipt>();
    let stop = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let tenant = (tenants > 0).then(|| format!("tenant-{:02}", i % tenants + 1));
        tasks.push(tokio::spawn(client(url.clone(), interval, tenant, send.clone(), Arc::clone(&stop))));
        // Do not open all at once: the listen backlog is finite.
        tokio::task::yield_now().await;
    }
    drop(send);
    // Connected and subscribed: every client has received a snapshot.
    let mut first: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut warm = 0;
    while warm < clients {
        match tokio::time::timeout(Duration::from_secs(60), receipts.recv()).await {
            Ok(Some((seq, _))) => {
                let count = first.entry(seq).or_default();
                *count += 1;
                warm = first.values().sum();
            }
            _ => break,
        }
    }
    println!(
        "{clients} clients subscribed and served a first snapshot in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    while receipts.try_recv().is_ok() {}

    let window = Duration::from_secs(seconds);
    let (cpu_a, _, _) = process(&pid);
    let bench_a = process("self").0;
    let measured = Instant::now();
    let mut by_seq: std::collections::BTreeMap<i64, Vec<f64>> = std::collections::BTreeMap::new();
    while measured.elapsed() < window {
        let left = window.saturating_sub(measured.elapsed());
        match tokio::time::timeout(left, receipts.recv()).await {
            Ok(Some((seq, delay))) => by_seq.entry(seq).or_default().push(delay),
            _ => break,
        }
    }
    let elapsed = measured.elapsed();
    let (cpu_b, rss, peak) = process(&pid);
    let bench_b = process("self").0;
    stop.notify_waiters();

    // Only complete intervals: the first and last seen may be cut by the window.
    let seqs: Vec<i64> = by_seq.keys().copied().collect();
    let inner = if seqs.len() > 2 { &seqs[1..seqs.len() - 1] } else { &seqs[..] };
    let mut lasts = Vec::new();
    let mut all = Vec::new();
    println!("\nseq  clients  p50 ms  p99 ms  last ms");
    for seq in inner {
        let mut delays = by_seq[seq].clone();
        delays.sort_by(f64::total_cmp);
        let last = *delays.last().unwrap_or(&f64::NAN);
        println!(
            "{seq:>4} {:>7} {:>7.1} {:>7.1} {:>8.1}",
            delays.len(),
            quantile(&delays, 0.5),
            quantile(&delays, 0.99),
            last
        );
        lasts.push(last);
        all.extend(delays);
    }
    lasts.sort_by(f64::total_cmp);
    all.sort_by(f64::total_cmp);
    let complete = inner.iter().filter(|seq| by_seq[seq].len() == clients).count();
    println!("\n{} intervals of {interval} s, {complete} delivered to all {clients} clients", inner.len());
    println!(
        "tick → client: p50 {:.1} ms, p99 {:.1} ms; tick → last client per interval: p50 {:.1} ms, max {:.1} ms",
        quantile(&all, 0.5),
        quantile(&all, 0.99),
        quantile(&lasts, 0.5),
        lasts.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "server: CPU {:.1} % of a core over {:.0} s, RSS {} MB (peak {} MB, {} MB before the clients)",
        cpu_percent(cpu_a, cpu_b, elapsed),
        elapsed.as_secs_f64(),
        rss / 1024,
        peak / 1024,
        rss1 / 1024
    );
    println!("benchmark client: CPU {:.1} % of a core", cpu_percent(bench_a, bench_b, elapsed));
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
}

//! What SQLite itself can write on this machine, durably (WAL, `synchronous=FULL`, the
//! writer's page cache), with no HTTP, parsing, validation, costing or derived data: the
//! floor under voicemon's SQLite ingest, for BENCHMARKS.md (issue 12). Three loads of the
//! same live-shaped turns (100 000 interleaved calls of 50 tenants, times over the last
//! hour), each into a fresh database in a temporary directory:
//!
//! - `seed`: the seed's design (`scripts/seed-design.sql`): 4 raw rows a turn in one
//!   `metrics_latency` table with its one index, 100-row multi-`VALUES` INSERTs, each
//!   committed on its own as the seed's autocommitting driver did;
//! - `seed, grouped`: the same statements, 40 of them (1 000 turns) a transaction, as
//!   voicemon's group commits are;
//! - `turn rows`: the least voicemon's commit writes for a turn: its idempotency key
//!   (`event_ids`) and its `turns` row with the `turns_by_call` index,
//!   4 000 a transaction (as voicemon's group commits under this load), one prepared statement each.
//!
//!   cargo run --release -p voicemon-store --example sqlite_floor -- [turns=150000]
use rusqlite::{params_from_iter, Connection};
use std::time::Instant;

/// One live-shaped turn.
struct Turn {
    call: i64,
    tenant: String,
    ts_ms: i64,
    turn_index: i64,
    /// e2e, stt, llm, tts.
    ms: [f64; 4],
}

fn turns(count: usize, now_ms: i64) -> Vec<Turn> {
    // xorshift64: the same rows on every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..count)
        .map(|_| {
            let call = (next() % 100_000) as i64;
            Turn {
                call,
                tenant: format!("t{:02}", call % 50),
                ts_ms: now_ms - (next() % 3_600_000) as i64,
                turn_index: (next() % 20) as i64,
                ms: [0; 4].map(|_| 100.0 + (next() % 2_000) as f64 / 2.0),
            }
        })
        .collect()
}

fn open(dir: &std::path::Path, name: &str, schema: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(dir.join(name))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.execute_batch(schema)?;
    Ok(conn)
}

const SEED: &str = "CREATE TABLE metrics_latency (ts INTEGER NOT NULL, tenant_id TEXT NOT NULL,
    agent_id TEXT, call_id TEXT NOT NULL, turn_index INTEGER, component TEXT NOT NULL,
    provider TEXT, model TEXT, latency_ms REAL NOT NULL);
    CREATE INDEX metrics_latency_tenant_ts ON metrics_latency (tenant_id, ts);";

/// The seed's rows, `turns_per_tx` turns (4 rows each) a transaction, 100 rows a statement.
fn seed(conn: &mut Connection, turns: &[Turn], turns_per_tx: usize) -> rusqlite::Result<()> {
    const COMPONENTS: [(&str, Option<&str>, Option<&str>); 4] = [
        ("e2e", None, None),
        ("stt", Some("deepgram"), Some("nova-3")),
        ("llm", Some("openai"), Some("gpt-4o-mini")),
        ("tts", Some("cartesia"), Some("sonic-2")),
    ];
    let one = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let sql = format!(
        "INSERT INTO metrics_latency (ts, tenant_id, agent_id, call_id, turn_index, component, provider,
         model, latency_ms) VALUES {}",
        vec![one; 100].join(", ")
    );
    for group in turns.chunks(turns_per_tx) {
        let tx = conn.transaction()?;
        let mut insert = tx.prepare_cached(&sql)?;
        // 25 turns are 100 rows.
        for statement in group.chunks(25) {
            let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(900);
            for turn in statement {
                for (n, (component, provider, model)) in COMPONENTS.iter().enumerate() {
                    values.extend([
                        turn.ts_ms.into(),
                        turn.tenant.clone().into(),
                        "support-bot".to_owned().into(),
                        format!("call_{:016x}", turn.call).into(),
                        turn.turn_index.into(),
                        component.to_string().into(),
                        provider.map(str::to_owned).into(),
                        model.map(str::to_owned).into(),
                        turn.ms[n].into(),
                    ]);
                }
            }
            insert.execute(params_from_iter(values))?;
        }
        drop(insert);
        tx.commit()?;
    }
    Ok(())
}

const TURN_ROWS: &str = "CREATE TABLE event_ids (ts_ms INTEGER NOT NULL, key INTEGER NOT NULL,
      PRIMARY KEY (ts_ms, key)) WITHOUT ROWID;
    CREATE TABLE turns (call INTEGER NOT NULL, ts_ms INTEGER NOT NULL, turn_index INTEGER NOT NULL,
      e2e INTEGER NOT NULL, stt INTEGER, eou INTEGER, llm_ttft INTEGER, tts_ttfb INTEGER,
      interrupted INTEGER, tool_calls INTEGER, agent_id TEXT);
    CREATE INDEX turns_by_call ON turns (call);";

/// One idempotency key and one `turns` row a turn, 4 000 turns a transaction.
fn turn_rows(conn: &mut Connection, turns: &[Turn]) -> rusqlite::Result<()> {
    for (g, group) in turns.chunks(4_000).enumerate() {
        let tx = conn.transaction()?;
        let mut key = tx.prepare_cached("INSERT OR IGNORE INTO event_ids (ts_ms, key) VALUES (?1, ?2)")?;
        let mut row = tx.prepare_cached(
            "INSERT INTO turns (call, ts_ms, turn_index, e2e, stt, eou, llm_ttft, tts_ttfb, interrupted,
             tool_calls, agent_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for (n, turn) in group.iter().enumerate() {
            let id = ((g * 4_000 + n) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as i64;
            key.execute([turn.ts_ms, id])?;
            let tenths = turn.ms.map(|ms| (ms * 10.0).round() as i64);
            row.execute(rusqlite::params![
                turn.call,
                turn.ts_ms,
                turn.turn_index,
                tenths[0],
                tenths[1],
                tenths[1],
                tenths[2],
                tenths[3],
                false,
                0,
                "support-bot"
            ])?;
        }
        drop((key, row));
        tx.commit()?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(150_000), |n| n.parse())?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let turns = turns(count, now_ms);
    let dir = tempfile::tempdir()?;
    let timed = |name: &str, rows: usize, load: &dyn Fn() -> rusqlite::Result<()>| -> rusqlite::Result<()> {
        let started = Instant::now();
        load()?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{name:<14} {:>9.0} rows/s, {:>8.0} turns/s ({rows} rows in {seconds:.2} s)",
            rows as f64 / seconds,
            count as f64 / seconds
        );
        Ok(())
    };
    let conn = std::cell::RefCell::new(open(dir.path(), "seed.db", SEED)?);
    timed("seed", count * 4, &|| seed(&mut conn.borrow_mut(), &turns, 25))?;
    let conn = std::cell::RefCell::new(open(dir.path(), "grouped.db", SEED)?);
    timed("seed, grouped", count * 4, &|| seed(&mut conn.borrow_mut(), &turns, 1_000))?;
    let conn = std::cell::RefCell::new(open(dir.path(), "turns.db", TURN_ROWS)?);
    timed("turn rows", count * 2, &|| turn_rows(&mut conn.borrow_mut(), &turns))?;
    Ok(())
}

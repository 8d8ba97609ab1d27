//! Re-pricing stored usage after the price book changes, against a real SQLite store.
//!
//! Usage is written costed under [`OLD_BOOK`], then re-priced under a corrected book. Every
//! expected amount is worked out by hand from the unit prices, in nano-USD.

use std::collections::BTreeMap;
use voicemon_core::event::{Body, CallStarted, Envelope, Event, LlmUsage, SttUsage, TtsUsage};
use voicemon_core::money::Nanos;
use voicemon_core::pricing::PriceBook;
use voicemon_core::window::{parse_time, TimeRange};
use voicemon_server::reprice::{reprice, RepriceSummary};
use voicemon_store::sqlite::{Durability, SqliteStore};
use voicemon_store::{CallRef, CostStore, IngestEvent, IngestStore, UsageLine};

/// nova-3 at $0.0077/min, gpt-4o at $2.50 / $1.25 cached / $10.00 per M, sonic* at
/// $37.375/M characters; nothing for gpt-9.
const OLD_BOOK: &str = r#"
version = 1

[[price]]
component = "stt"
provider = "deepgram"
model = "nova-3"
effective_from = "2026-01-01"
per_audio_minute = "0.0077"

[[price]]
component = "llm"
provider = "openai"
model = "gpt-4o"
effective_from = "2026-01-01"
input_per_million = "2.50"
cached_input_per_million = "1.25"
output_per_million = "10.00"

[[price]]
component = "tts"
provider = "cartesia"
model = "sonic*"
effective_from = "2026-01-01"
per_million_characters = "37.375"
"#;

/// [`OLD_BOOK`] with nova-3 corrected to $0.0080/min (same `effective_from`) and a price
/// for gpt-9 added: $1.00 in / $4.00 out per M.
fn corrected_book() -> PriceBook {
    let text = format!(
        "{}
[[price]]
component = \"llm\"
provider = \"openai\"
model = \"gpt-9\"
effective_from = \"2026-01-01\"
input_per_million = \"1.00\"
output_per_million = \"4.00\"
",
        OLD_BOOK.replace("\"0.0077\"", "\"0.0080\"")
    );
    PriceBook::from_toml(&text, "corrected").expect("the corrected book loads")
}

fn old_book() -> PriceBook {
    PriceBook::from_toml(OLD_BOOK, "old").expect("the old book loads")
}

fn ms(time: &str) -> i64 {
    parse_time(time).unwrap_or_else(|err| panic!("{time}: {err:?}"))
}

fn november() -> TimeRange {
    TimeRange { from_ms: ms("2026-11-01T00:00:00Z"), to_ms: ms("2026-12-01T00:00:00Z") }
}

fn event(tenant: &str, call: &str, id: &str, time: &str, body: Body) -> Event {
    Event {
        envelope: Envelope {
            id: id.into(),
            timestamp_ms: ms(time),
            tenant_id: tenant.into(),
            call_id: Some(call.into()),
            trace_id: None,
            agent_id: None,
            objective: None,
            attributes: BTreeMap::new(),
        },
        body,
    }
}

fn started() -> Body {
    Body::CallStarted(CallStarted { channel: None })
}

fn stt(audio_seconds: f64) -> Body {
    Body::SttUsage(SttUsage {
        provider: "deepgram".into(),
        model: Some("nova-3".into()),
        audio_seconds,
        latency_ms: None,
    })
}

fn llm(model: &str, input_tokens: u64, cached: Option<u64>, output_tokens: u64) -> Body {
    Body::LlmUsage(LlmUsage {
        provider: "openai".into(),
        model: model.into(),
        input_tokens,
        output_tokens,
        cached_input_tokens: cached,
        audio_input_tokens: None,
        audio_output_tokens: None,
        ttft_ms: None,
    })
}

fn tts(characters: u64) -> Body {
    Body::TtsUsage(TtsUsage {
        provider: "cartesia".into(),
        model: Some("sonic-2".into()),
        voice: None,
        characters,
        audio_seconds: None,
        ttfb_ms: None,
    })
}

/// Costed under the old book (as ingest would have done):
///
/// | tenant | call | line                                     | old cost   | corrected  |
/// |--------|------|------------------------------------------|------------|------------|
/// | acme   | a1   | nova-3 60 s × $0.0077 / $0.0080 per min  |  7 700 000 |  8 000 000 |
/// |        |      | gpt-4o (1 200 − 1 000) × $2.50/M         |    500 000 |            |
/// |        |      |        1 000 cached × $1.25/M            |  1 250 000 |            |
/// |        |      |          150 out × $10/M                 |  1 500 000 |            |
/// |        |      |        = line                            |  3 250 000 |  3 250 000 |
/// |        |      | sonic-2 1 000 chars × $37.375/M          | 37 375 000 | 37 375 000 |
/// |        |      | call total                               | 48 325 000 | 48 625 000 |
/// | acme   | a2   | gpt-9 1 000 in × $1/M + 500 out × $4/M   |   unpriced |  3 000 000 |
/// |        |      | nova-3 30 s                              |  3 850 000 |  4 000 000 |
/// |        |      | call total                               |  3 850 000 |  7 000 000 |
/// | globex | g1   | nova-3 60 s                              |  7 700 000 |  8 000 000 |
async fn store_with_usage() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path(), Durability::Normal).expect("the store opens");
    let book = old_book();
    let events = vec![
        event("acme", "a1", "a1-0", "2026-11-10T09:00:00Z", started()),
        event("acme", "a1", "a1-1", "2026-11-10T09:00:05Z", stt(60.0)),
        event("acme", "a1", "a1-2", "2026-11-10T09:00:06Z", llm("gpt-4o", 1_200, Some(1_000), 150)),
        event("acme", "a1", "a1-3", "2026-11-10T09:00:07Z", tts(1_000)),
        event("acme", "a2", "a2-0", "2026-11-12T09:00:00Z", started()),
        event("acme", "a2", "a2-1", "2026-11-12T09:00:05Z", llm("gpt-9", 1_000, None, 500)),
        event("acme", "a2", "a2-2", "2026-11-12T09:00:06Z", stt(30.0)),
        event("globex", "g1", "g1-0", "2026-11-11T09:00:00Z", started()),
        event("globex", "g1", "g1-1", "2026-11-11T09:00:05Z", stt(60.0)),
    ];
    let batch = events.into_iter().map(|event| IngestEvent { costing: book.cost(&event), event }).collect();
    store.write_batch(batch).await.expect("the batch is stored");
    (dir, store)
}

async fn lines_of(store: &SqliteStore, tenant: &str, call: &str) -> Vec<UsageLine> {
    store
        .call_cost(Some(tenant), &CallRef::CallId(call.into()))
        .await
        .expect("the store answers")
        .unwrap_or_else(|| panic!("call {tenant}/{call} exists"))
        .lines
}

/// Each line's cost (`None`: unpriced), in time order.
async fn line_costs(store: &SqliteStore, tenant: &str, call: &str) -> Vec<Option<i64>> {
    lines_of(store, tenant, call).await.iter().map(|line| line.cost_nano).collect()
}

/// `(cost, usage lines, unpriced lines)` of each call of `tenant` that began in November.
async fn call_totals(store: &SqliteStore, tenant: &str) -> BTreeMap<String, (i64, u64, u64)> {
    store
        .call_costs(Some(tenant), november())
        .await
        .expect("the store answers")
        .into_iter()
        .map(|call| (call.call_id, (call.cost_nano, call.usage_lines, call.unpriced_lines)))
        .collect()
}

fn totals(expected: &[(&str, i64, u64, u64)]) -> BTreeMap<String, (i64, u64, u64)> {
    expected.iter().map(|&(call, cost, lines, unpriced)| (call.to_owned(), (cost, lines, unpriced))).collect()
}

async fn run(store: &SqliteStore, book: &PriceBook, tenant: Option<&str>) -> RepriceSummary {
    reprice(store, book, tenant, november(), |_, _| {}).await.expect("the re-pricing runs")
}

#[tokio::test]
async fn usage_is_stored_with_its_cost_under_the_book_in_force_at_ingest() {
    let (_dir, store) = store_with_usage().await;
    assert_eq!(line_costs(&store, "acme", "a1").await, [Some(7_700_000), Some(3_250_000), Some(37_375_000)]);
    assert_eq!(line_costs(&store, "acme", "a2").await, [None, Some(3_850_000)]);
    assert_eq!(
        call_totals(&store, "acme").await,
        totals(&[("a1", 48_325_000, 3, 0), ("a2", 3_850_000, 2, 1)])
    );
}

#[tokio::test]
async fn a_price_correction_changes_stored_line_costs_and_call_totals_exactly() {
    let (_dir, store) = store_with_usage().await;
    let summary = run(&store, &corrected_book(), None).await;

    assert_eq!(
        summary,
        RepriceSummary {
            lines: 6,
            // a1's nova-3, a2's gpt-9 and nova-3, g1's nova-3
            changed: 4,
            newly_priced: 1,
            newly_unpriced: 0,
            // 7 700 000 + 3 250 000 + 37 375 000 + 3 850 000 + 7 700 000
            before: Nanos(59_875_000),
            // 8 000 000 + 3 250 000 + 37 375 000 + 3 000 000 + 4 000 000 + 8 000 000
            after: Nanos(63_625_000),
        }
    );
    assert_eq!(line_costs(&store, "acme", "a1").await, [Some(8_000_000), Some(3_250_000), Some(37_375_000)]);
    assert_eq!(line_costs(&store, "acme", "a2").await, [Some(3_000_000), Some(4_000_000)]);
    assert_eq!(line_costs(&store, "globex", "g1").await, [Some(8_000_000)]);
    assert_eq!(
        call_totals(&store, "acme").await,
        totals(&[("a1", 48_625_000, 3, 0), ("a2", 7_000_000, 2, 0)])
    );
    assert_eq!(call_totals(&store, "globex").await, totals(&[("g1", 8_000_000, 1, 0)]));

    let corrected = &lines_of(&store, "acme", "a1").await[0];
    assert_eq!(corrected.price_ref, "stt/deepgram/nova-3@2026-01-01");
    assert_eq!(corrected.detail, "$0.008/audio min, 1 s blocks");
    let newly_priced = &lines_of(&store, "acme", "a2").await[0];
    assert_eq!(newly_priced.price_ref, "llm/openai/gpt-9@2026-01-01");
    assert_eq!(newly_priced.detail, "in $1.00/M, cached $1.00/M, out $4.00/M tokens");
}

#[tokio::test]
async fn a_second_run_with_the_same_book_changes_nothing() {
    let (_dir, store) = store_with_usage().await;
    let book = corrected_book();
    run(&store, &book, None).await;
    let acme_after_first = call_totals(&store, "acme").await;
    let lines_after_first = lines_of(&store, "acme", "a2").await;

    let second = run(&store, &book, None).await;
    assert_eq!(
        second,
        RepriceSummary {
            lines: 6,
            changed: 0,
            newly_priced: 0,
            newly_unpriced: 0,
            before: Nanos(63_625_000),
            after: Nanos(63_625_000),
        }
    );
    assert_eq!(call_totals(&store, "acme").await, acme_after_first);
    assert_eq!(lines_of(&store, "acme", "a2").await, lines_after_first);
}

#[tokio::test]
async fn re_pricing_under_the_book_used_at_ingest_changes_nothing() {
    let (_dir, store) = store_with_usage().await;
    let summary = run(&store, &old_book(), None).await;
    assert_eq!(summary.changed, 0, "{summary:?}");
    assert_eq!(summary.before, summary.after, "{summary:?}");
    assert_eq!(summary.before, Nanos(59_875_000), "{summary:?}");
}

#[tokio::test]
async fn re_pricing_one_tenant_leaves_the_other_tenants_untouched() {
    let (_dir, store) = store_with_usage().await;
    let summary = run(&store, &corrected_book(), Some("acme")).await;
    assert_eq!(
        summary,
        RepriceSummary {
            lines: 5,
            changed: 3,
            newly_priced: 1,
            newly_unpriced: 0,
            // 7 700 000 + 3 250 000 + 37 375 000 + 3 850 000
            before: Nanos(52_175_000),
            // 8 000 000 + 3 250 000 + 37 375 000 + 3 000 000 + 4 000 000
            after: Nanos(55_625_000),
        }
    );
    assert_eq!(
        call_totals(&store, "acme").await,
        totals(&[("a1", 48_625_000, 3, 0), ("a2", 7_000_000, 2, 0)])
    );
    // globex keeps the old price: 60 s × $0.0077/min
    assert_eq!(line_costs(&store, "globex", "g1").await, [Some(7_700_000)]);
    assert_eq!(lines_of(&store, "globex", "g1").await[0].detail, "$0.0077/audio min, 1 s blocks");
    assert_eq!(call_totals(&store, "globex").await, totals(&[("g1", 7_700_000, 1, 0)]));
}

#[tokio::test]
async fn re_pricing_a_range_touches_only_the_lines_stamped_in_it() {
    let (_dir, store) = store_with_usage().await;
    // Only 2026-11-10: a1's lines.
    let range = TimeRange { from_ms: ms("2026-11-10T00:00:00Z"), to_ms: ms("2026-11-11T00:00:00Z") };
    let summary = reprice(&store, &corrected_book(), None, range, |_, _| {}).await.expect("it runs");
    assert_eq!((summary.lines, summary.changed, summary.newly_priced), (3, 1, 0), "{summary:?}");
    assert_eq!(
        call_totals(&store, "acme").await,
        totals(&[("a1", 48_625_000, 3, 0), ("a2", 3_850_000, 2, 1)])
    );
    assert_eq!(line_costs(&store, "globex", "g1").await, [Some(7_700_000)]);
}

#[tokio::test]
async fn a_price_removed_from_the_book_leaves_its_lines_unpriced_not_free() {
    let (_dir, store) = store_with_usage().await;
    let without_sonic = OLD_BOOK.split("[[price]]").take(3).collect::<Vec<_>>().join("[[price]]");
    let book = PriceBook::from_toml(&without_sonic, "without sonic").expect("the book loads");
    assert_eq!(book.entries().len(), 2, "the sonic* entry is gone");
    let summary = run(&store, &book, Some("acme")).await;
    assert_eq!((summary.changed, summary.newly_unpriced, summary.newly_priced), (1, 1, 0), "{summary:?}");
    // 52 175 000 − 37 375 000
    assert_eq!(summary.after, Nanos(14_800_000), "{summary:?}");
    assert_eq!(line_costs(&store, "acme", "a1").await, [Some(7_700_000), Some(3_250_000), None]);
    let unpriced = &lines_of(&store, "acme", "a1").await[2];
    assert_eq!(unpriced.detail, "no tts price for cartesia/sonic-2 on 2026-11-10");
    // a1: 7 700 000 + 3 250 000, one line of three unpriced
    assert_eq!(
        call_totals(&store, "acme").await,
        totals(&[("a1", 10_950_000, 3, 1), ("a2", 3_850_000, 2, 1)])
    );
}

#[tokio::test]
async fn re_pricing_reports_progress_up_to_every_line_it_examined() {
    let (_dir, store) = store_with_usage().await;
    let mut reports = Vec::new();
    reprice(&store, &corrected_book(), None, november(), |done, total| reports.push((done, total)))
        .await
        .expect("it runs");
    assert_eq!(reports.first(), Some(&(0, 6)), "{reports:?}");
    assert_eq!(reports.last(), Some(&(6, 6)), "{reports:?}");
}

//! Cost: itemised calls by call id or trace id within a tenant, per-call totals, every
//! breakdown, walking usage lines page by page, and re-pricing that recomputes totals.

use crate::backends::on_both_backends;
use crate::events::{at, call_ended, event, range, TODAY_MS};
use crate::transcript::Transcript;
use serde_json::json;
use std::sync::Arc;
use voicemon_core::money::Nanos;
use voicemon_core::pricing::{Costing, PricedLine};
use voicemon_core::window::{DAY_MS, MINUTE_MS};
use voicemon_store::{
    CallRef, CostGroup, CostGroupRow, CostUpdate, IngestEvent, Store, TenantCost, UsageLine,
};

/// The cost of a priced usage event.
pub fn nanos(event: &IngestEvent) -> i64 {
    match &event.costing {
        Costing::Priced(line) => line.cost.0,
        other => panic!("expected a priced event, got {other:?}"),
    }
}

const YESTERDAY_MS: i64 = TODAY_MS - DAY_MS;

struct Usage {
    /// acme c1: stt (deepgram), llm (gpt-4o), tts (cartesia), stt (acmevoice: unpriced).
    c1: [IngestEvent; 4],
    /// acme c2 (gpt-4o-mini), acme c0 yesterday (gpt-4o-mini), globex c1 (deepgram).
    later: [IngestEvent; 3],
}

fn usage() -> Usage {
    let line = |kind: &str, id: &str, tenant: &str, call: &str, at_ms: i64, mut fields: serde_json::Value| {
        fields["call_id"] = json!(call);
        event(kind, id, tenant, at_ms, fields)
    };
    let mini =
        json!({"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 3000, "output_tokens": 200});
    Usage {
        c1: [
            line(
                "stt.usage",
                "a1",
                "acme",
                "c1",
                at(10, 1),
                json!({"provider": "deepgram", "model": "nova-3", "audio_seconds": 65.0}),
            ),
            line(
                "llm.usage",
                "a2",
                "acme",
                "c1",
                at(10, 2),
                json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 1200, "output_tokens": 150}),
            ),
            line(
                "tts.usage",
                "a3",
                "acme",
                "c1",
                at(10, 3),
                json!({"provider": "cartesia", "model": "sonic-2", "voice": "kiefer", "characters": 480}),
            ),
            line(
                "stt.usage",
                "a4",
                "acme",
                "c1",
                at(10, 4),
                json!({"provider": "acmevoice", "audio_seconds": 10.0}),
            ),
        ],
        later: [
            line("llm.usage", "b1", "acme", "c2", at(10, 10), mini.clone()),
            line("llm.usage", "b2", "acme", "c0", YESTERDAY_MS + 23 * 60 * MINUTE_MS, mini),
            line(
                "stt.usage",
                "b3",
                "globex",
                "c1",
                at(10, 20),
                json!({"provider": "deepgram", "model": "nova-3", "audio_seconds": 30.0}),
            ),
        ],
    }
}

async fn write_calls(store: &dyn Store, usage: &Usage) {
    let mut first = vec![event(
        "call.started",
        "s1",
        "acme",
        at(10, 0),
        json!({"call_id": "c1", "trace_id": "tr-1", "channel": "phone"}),
    )];
    first.extend(usage.c1.iter().cloned());
    first.push(call_ended("e1", "acme", "c1", at(10, 5), "completed", 300.0));
    store.write_batch(first).await.expect("the first batch is stored");
    let mut second: Vec<IngestEvent> = usage.later.to_vec();
    second.push(event(
        "call.ended",
        "e2",
        "acme",
        at(10, 12),
        json!({"call_id": "c2", "trace_id": "tr-2", "status": "completed", "duration_s": 120.0}),
    ));
    second.push(event(
        "call.started",
        "g2",
        "globex",
        at(9, 0),
        json!({"call_id": "g2", "trace_id": "tr-2"}),
    ));
    store.write_batch(second).await.expect("the second batch is stored");
}

/// (id, component, provider, cost, price entry) of each line.
fn summary(lines: &[UsageLine]) -> Vec<(i64, String, String, Option<i64>, String)> {
    lines
        .iter()
        .map(|l| {
            (l.id, l.component.as_str().to_owned(), l.provider.clone(), l.cost_nano, l.price_ref.clone())
        })
        .collect()
}

fn price_ref(event: &IngestEvent) -> String {
    match &event.costing {
        Costing::Priced(line) => line.price_ref.clone(),
        _ => String::new(),
    }
}

fn row(key: &str, cost_nano: i64, usage_lines: u64, unpriced_lines: u64) -> CostGroupRow {
    CostGroupRow { key: key.into(), cost_nano, usage_lines, unpriced_lines }
}

#[tokio::test]
async fn a_call_is_itemised_by_call_id_or_trace_id_within_its_tenant() {
    on_both_backends(itemised_calls).await;
}

async fn itemised_calls(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let usage = usage();
    assert!(matches!(usage.c1[3].costing, Costing::Unpriced { .. }), "acmevoice has no price");
    write_calls(&*store, &usage).await;
    let call = |tenant: Option<&'static str>, call: CallRef| {
        let store = Arc::clone(&store);
        async move { store.call_cost(tenant, &call).await.expect("call cost reads") }
    };
    let c1 = call(Some("acme"), CallRef::CallId("c1".into())).await.expect("acme's c1");
    t.check(
        "the call",
        (c1.tenant_id.as_str(), c1.trace_id.as_deref(), c1.first_ms, c1.duration_s, c1.status.as_deref()),
        ("acme", Some("tr-1"), Some(at(10, 0)), Some(300.0), Some("completed")),
    );
    let [stt, llm, tts, unpriced] = &usage.c1;
    t.check(
        "its lines in time order, each with its cost and price entry",
        summary(&c1.lines),
        vec![
            (1, "stt".into(), "deepgram".into(), Some(nanos(stt)), price_ref(stt)),
            (2, "llm".into(), "openai".into(), Some(nanos(llm)), price_ref(llm)),
            (3, "tts".into(), "cartesia".into(), Some(nanos(tts)), price_ref(tts)),
            (4, "stt".into(), "acmevoice".into(), None, String::new()),
        ],
    );
    let [l1, l2, l3, l4] = &c1.lines[..] else { panic!("four lines") };
    t.check("stt keeps its audio", (l1.audio_seconds, l1.model.as_deref()), (Some(65.0), Some("nova-3")));
    t.check(
        "llm keeps its tokens",
        (l2.input_tokens, l2.output_tokens, l2.cached_input_tokens, l2.audio_input_tokens),
        (Some(1200), Some(150), None, None),
    );
    t.check(
        "tts keeps characters and voice",
        (l3.characters, l3.voice.as_deref()),
        (Some(480), Some("kiefer")),
    );
    let Costing::Unpriced { reason } = &unpriced.costing else { unreachable!() };
    t.check("an unpriced line says why", (&l4.detail, l4.ts_ms), (reason, at(10, 4)));
    t.note("every line", &c1.lines);

    let globex_c1 = call(Some("globex"), CallRef::CallId("c1".into())).await.expect("globex's c1");
    t.check("the same call id in another tenant is another call", summary(&globex_c1.lines).len(), 1);
    t.check(
        "without a tenant the latest call with that id answers",
        call(None, CallRef::CallId("c1".into())).await.map(|c| c.tenant_id),
        Some("globex".into()),
    );
    t.check(
        "a tenant without that call has none",
        call(Some("initech"), CallRef::CallId("c1".into())).await,
        None,
    );
    let by_trace = call(Some("acme"), CallRef::TraceId("tr-2".into())).await.expect("acme's tr-2");
    t.check("by trace id", (by_trace.call_id.as_str(), by_trace.lines.len()), ("c2", 1));
    t.check(
        "a trace id without a tenant: the latest call",
        call(None, CallRef::TraceId("tr-2".into())).await.map(|c| (c.tenant_id, c.call_id)),
        Some(("acme".into(), "c2".into())),
    );
    t.check(
        "a trace id within another tenant",
        call(Some("globex"), CallRef::TraceId("tr-2".into())).await.map(|c| (c.call_id, c.lines.len())),
        Some(("g2".into(), 0)),
    );
    t.check("an unknown trace id", call(None, CallRef::TraceId("tr-9".into())).await, None);

    let tenants = |call: CallRef, limit: usize| {
        let store = Arc::clone(&store);
        async move { store.call_tenants(&call, limit).await.expect("call tenants read") }
    };
    t.check(
        "the tenants holding a call id, in name order",
        tenants(CallRef::CallId("c1".into()), 10).await,
        vec!["acme".to_owned(), "globex".to_owned()],
    );
    t.check("at most the limit", tenants(CallRef::CallId("c1".into()), 1).await, vec!["acme".to_owned()]);
    t.check(
        "the tenants holding a trace id",
        tenants(CallRef::TraceId("tr-2".into()), 10).await,
        vec!["acme".to_owned(), "globex".to_owned()],
    );
    t.check("no tenant holds an unknown call", tenants(CallRef::CallId("c9".into()), 10).await, vec![]);
    t
}

#[tokio::test]
async fn call_totals_and_every_breakdown_add_up_the_lines() {
    on_both_backends(totals_and_breakdowns).await;
}

async fn totals_and_breakdowns(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let usage = usage();
    write_calls(&*store, &usage).await;
    let [stt, llm, tts, _] = &usage.c1;
    let [mini, yesterday_mini, globex_stt] = &usage.later;
    let (stt, llm, tts, mini, yesterday_mini, globex_stt) =
        (nanos(stt), nanos(llm), nanos(tts), nanos(mini), nanos(yesterday_mini), nanos(globex_stt));

    let hour = range(at(10, 0), at(11, 0));
    let totals = |tenant| {
        let store = Arc::clone(&store);
        async move {
            let mut totals = store.call_costs(tenant, hour).await.expect("call costs read");
            totals.sort_by(|a, b| (&a.tenant_id, &a.call_id).cmp(&(&b.tenant_id, &b.call_id)));
            totals
                .into_iter()
                .map(|c| {
                    (
                        c.tenant_id,
                        c.call_id,
                        c.first_ms,
                        c.cost_nano,
                        c.usage_lines,
                        c.unpriced_lines,
                        c.duration_s,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    t.check(
        "acme's calls first seen in the hour",
        totals(Some("acme")).await,
        vec![
            ("acme".into(), "c1".into(), at(10, 0), stt + llm + tts, 4, 1, Some(300.0)),
            ("acme".into(), "c2".into(), at(10, 10), mini, 1, 0, Some(120.0)),
        ],
    );
    t.check(
        "every tenant's",
        totals(None).await.into_iter().map(|c| (c.0, c.1, c.3)).collect::<Vec<_>>(),
        vec![
            ("acme".into(), "c1".into(), stt + llm + tts),
            ("acme".into(), "c2".into(), mini),
            ("globex".into(), "c1".into(), globex_stt),
        ],
    );
    t.check(
        "each tenant's totals, summed in the store (ended calls apart)",
        store.tenant_costs(hour).await.expect("tenant costs read"),
        vec![
            TenantCost {
                tenant_id: "acme".into(),
                calls: 2,
                cost_nano: stt + llm + tts + mini,
                ended_cost_nano: stt + llm + tts + mini,
                ended_seconds: 420.0,
            },
            TenantCost {
                tenant_id: "globex".into(),
                calls: 1,
                cost_nano: globex_stt,
                ended_cost_nano: 0,
                ended_seconds: 0.0,
            },
        ],
    );

    let two_days = range(YESTERDAY_MS, TODAY_MS + DAY_MS);
    let breakdown = |tenant, group| {
        let store = Arc::clone(&store);
        async move { store.cost_breakdown(tenant, two_days, group).await.expect("cost breakdown reads") }
    };
    t.check(
        "by provider",
        breakdown(Some("acme"), CostGroup::Provider).await,
        vec![
            row("acmevoice", 0, 1, 1),
            row("cartesia", tts, 1, 0),
            row("deepgram", stt, 1, 0),
            row("openai", llm + mini + yesterday_mini, 3, 0),
        ],
    );
    t.check(
        "by component",
        breakdown(Some("acme"), CostGroup::Component).await,
        vec![row("llm", llm + mini + yesterday_mini, 3, 0), row("stt", stt, 2, 1), row("tts", tts, 1, 0)],
    );
    t.check(
        "by model, '' for none",
        breakdown(Some("acme"), CostGroup::Model).await,
        vec![
            row("", 0, 1, 1),
            row("gpt-4o", llm, 1, 0),
            row("gpt-4o-mini", mini + yesterday_mini, 2, 0),
            row("nova-3", stt, 1, 0),
            row("sonic-2", tts, 1, 0),
        ],
    );
    t.check(
        "by the day of each call's first event",
        breakdown(Some("acme"), CostGroup::Day).await,
        vec![
            row(&YESTERDAY_MS.to_string(), yesterday_mini, 1, 0),
            row(&TODAY_MS.to_string(), stt + llm + tts + mini, 5, 1),
        ],
    );
    t.check(
        "every tenant by provider",
        breakdown(None, CostGroup::Provider).await,
        vec![
            row("acmevoice", 0, 1, 1),
            row("cartesia", tts, 1, 0),
            row("deepgram", stt + globex_stt, 2, 0),
            row("openai", llm + mini + yesterday_mini, 3, 0),
        ],
    );
    t.check(
        "a call counts where its first event falls",
        store.cost_breakdown(Some("acme"), range(at(10, 1), at(11, 0)), CostGroup::Component).await.unwrap(),
        vec![row("llm", mini, 1, 0)],
    );
    t
}

#[tokio::test]
async fn usage_lines_are_walked_page_by_page_in_id_order() {
    on_both_backends(usage_pages).await;
}

async fn usage_pages(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    write_calls(&*store, &usage()).await;
    let two_days = range(YESTERDAY_MS, TODAY_MS + DAY_MS);
    let page = |tenant, range, after_id| {
        let store = Arc::clone(&store);
        async move {
            let lines = store.usage_lines(tenant, range, after_id, 3).await.expect("usage lines read");
            lines.iter().map(|line| line.id).collect::<Vec<_>>()
        }
    };
    t.check("the first page", page(None, two_days, 0).await, vec![1, 2, 3]);
    t.check("the next", page(None, two_days, 3).await, vec![4, 5, 6]);
    t.check("the last", page(None, two_days, 6).await, vec![7]);
    t.check("past the end", page(None, two_days, 7).await, Vec::new());
    t.check("one tenant", page(Some("globex"), two_days, 0).await, vec![7]);
    t.check("one hour of one tenant", page(Some("acme"), range(at(10, 0), at(11, 0)), 4).await, vec![5]);
    let count = |tenant, range| {
        let store = Arc::clone(&store);
        async move { store.count_usage_lines(tenant, range).await.expect("usage lines count") }
    };
    t.check("counted", count(None, two_days).await, 7);
    t.check("counted for a tenant", count(Some("acme"), two_days).await, 6);
    t.check("counted for an hour", count(Some("acme"), range(at(10, 0), at(11, 0))).await, 5);
    t.check("the range is half-open", count(None, range(at(10, 1), at(10, 4))).await, 3);
    t.note("every line", store.usage_lines(None, two_days, 0, 100).await.unwrap());
    t
}

#[tokio::test]
async fn repricing_lines_recomputes_their_calls_totals() {
    on_both_backends(repricing).await;
}

async fn repricing(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let usage = usage();
    write_calls(&*store, &usage).await;
    let (stt, tts) = (nanos(&usage.c1[0]), nanos(&usage.c1[2]));
    let custom = PricedLine {
        cost: Nanos(5_000_000),
        price_ref: "stt/acmevoice/*@2026-11-01".into(),
        unit_price: "$0.30/audio min".into(),
    };
    let updates = vec![
        CostUpdate { usage_id: 4, costing: Costing::Priced(custom) },
        CostUpdate { usage_id: 2, costing: Costing::Unpriced { reason: "the price was withdrawn".into() } },
        CostUpdate { usage_id: 999, costing: Costing::Unpriced { reason: "no such line".into() } },
    ];
    store.apply_costs(updates).await.expect("the new costs are stored");

    let c1 = store.call_cost(Some("acme"), &CallRef::CallId("c1".into())).await.unwrap().expect("c1");
    let Costing::Priced(tts_price) = &usage.c1[2].costing else { unreachable!("tts is priced") };
    t.check(
        "each line has its new cost and note; the others are untouched",
        c1.lines
            .iter()
            .map(|l| (l.id, l.cost_nano, l.price_ref.clone(), l.detail.clone()))
            .skip(1)
            .collect::<Vec<_>>(),
        vec![
            (2, None, String::new(), "the price was withdrawn".into()),
            (3, Some(tts), tts_price.price_ref.clone(), tts_price.unit_price.clone()),
            (4, Some(5_000_000), "stt/acmevoice/*@2026-11-01".into(), "$0.30/audio min".into()),
        ],
    );
    let totals = store.call_costs(Some("acme"), range(at(10, 0), at(10, 1))).await.unwrap();
    t.check(
        "the call's totals are recomputed from its lines",
        totals
            .iter()
            .map(|c| (c.call_id.as_str(), c.cost_nano, c.usage_lines, c.unpriced_lines))
            .collect::<Vec<_>>(),
        vec![("c1", stt + tts + 5_000_000, 4, 1)],
    );
    t.check(
        "breakdowns follow",
        store.cost_breakdown(Some("acme"), range(at(10, 0), at(10, 1)), CostGroup::Provider).await.unwrap(),
        vec![
            row("acmevoice", 5_000_000, 1, 0),
            row("cartesia", tts, 1, 0),
            row("deepgram", stt, 1, 0),
            row("openai", 0, 1, 1),
        ],
    );
    t
}

#[tokio::test]
async fn cost_reads_merge_unflushed_call_totals_with_flushed_ones_without_flushing() {
    on_both_backends(cost_half_flushed).await;
}

/// The first batch flushed, the second pending. Pending usage adds to a flushed call's
/// totals (c1), moves a call's first event into the hour (c2) or out of it (c3), and makes
/// a call of its own (c4, and globex's g1). The cost reads merge all of it, flush
/// nothing, and answer the same once all is flushed.
async fn cost_half_flushed(store: Arc<dyn Store>) -> Transcript {
    let mut t = Transcript::of(&*store);
    let mini = |id: &str, tenant: &str, call: &str, at_ms: i64| {
        let fields = json!({"call_id": call, "provider": "openai", "model": "gpt-4o-mini",
            "input_tokens": 1000, "output_tokens": 100});
        event("llm.usage", id, tenant, at_ms, fields)
    };
    let voice = |id: &str, call: &str, at_ms: i64| {
        let fields = json!({"call_id": call, "provider": "cartesia", "model": "sonic-2", "characters": 300});
        event("tts.usage", id, "acme", at_ms, fields)
    };
    let first = [
        mini("f1", "acme", "c1", at(10, 5)),
        mini("f2", "acme", "c2", at(11, 10)),
        mini("f3", "acme", "c3", at(10, 30)),
    ];
    let second = [
        voice("s1", "c1", at(10, 20)),
        mini("s2", "acme", "c2", at(10, 40)),
        mini("s3", "acme", "c3", at(9, 50)),
        voice("s4", "c4", at(10, 50)),
        mini("s5", "globex", "g1", at(10, 15)),
    ];
    let (line, tts) = (nanos(&first[0]), nanos(&second[0]));
    store.write_batch(first.to_vec()).await.expect("stored");
    t.check("the first batch is flushed", store.flush_derived().await.expect("flushed") > 0, true);
    store.write_batch(second.to_vec()).await.expect("stored");

    let hour = range(at(10, 0), at(11, 0));
    let answers = || async {
        let mut totals: Vec<_> = store
            .call_costs(None, hour)
            .await
            .expect("call costs read")
            .into_iter()
            .map(|c| (c.tenant_id, c.call_id, c.first_ms, c.cost_nano, c.usage_lines))
            .collect();
        totals.sort();
        let mut acme: Vec<_> = store
            .call_costs(Some("acme"), hour)
            .await
            .expect("call costs read")
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        acme.sort();
        (
            totals,
            acme,
            store.cost_breakdown(Some("acme"), hour, CostGroup::Component).await.expect("read"),
            store.cost_breakdown(None, hour, CostGroup::Day).await.expect("read"),
            store
                .tenant_costs(hour)
                .await
                .expect("read")
                .into_iter()
                .map(|tenant| (tenant.tenant_id, tenant.calls, tenant.cost_nano))
                .collect::<Vec<_>>(),
        )
    };
    let before = answers().await;
    t.check(
        "totals: pending lines added, first times moved in and out of the hour, new calls",
        before.0.clone(),
        vec![
            ("acme".into(), "c1".into(), at(10, 5), line + tts, 2),
            ("acme".into(), "c2".into(), at(10, 40), 2 * line, 2),
            ("acme".into(), "c4".into(), at(10, 50), tts, 1),
            ("globex".into(), "g1".into(), at(10, 15), line, 1),
        ],
    );
    t.check("one tenant's calls only", before.1.clone(), vec!["c1".to_owned(), "c2".into(), "c4".into()]);
    t.check(
        "the lines of the calls whose merged first event is in the hour",
        before.2.clone(),
        vec![row("llm", 3 * line, 3, 0), row("tts", 2 * tts, 2, 0)],
    );
    t.check(
        "by day, every tenant",
        before.3.clone(),
        vec![row(&TODAY_MS.to_string(), 4 * line + 2 * tts, 6, 0)],
    );
    t.check(
        "each tenant's totals, the same calls",
        before.4.clone(),
        vec![("acme".into(), 3, 3 * line + 2 * tts), ("globex".into(), 1, line)],
    );
    let flushed = store.flush_derived().await.expect("flushed");
    t.check("the reads flushed nothing", flushed > 0, true);
    t.check("the same answers after the flush", answers().await, before);
    t
}

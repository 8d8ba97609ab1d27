//! The call explorer: from "P95 is high" down to the slow calls of a window, their worst
//! turns and what made them slow (`GET /calls`), and one call whole (`GET /calls/{id}`).
//!
//! A window's calls are those whose first event falls in it (as for cost). Each is
//! summarised from its raw turns: the worst turn and its slowest component, the call's
//! own P95 turn latency (exact, nearest rank), its cost and duration. Sorting and the
//! cursor work on those summaries, so a page never depends on the store's order.

use super::cost::CallAnswer;
use super::QueryError;
use serde::Serialize;
use utoipa::ToSchema;
use voicemon_core::event::CallStatus;
use voicemon_core::money::{Amount, Nanos};
use voicemon_core::window::{format_time, TimeRange};
use voicemon_store::{CallRef, CallRequest, CallTurns, CallWindow, HistoryEntry, Store, TurnRow};

/// Calls of one window read at most; a wider window must be narrowed.
pub const MAX_WINDOW_CALLS: usize = 100_000;

/// How the calls of a window are ordered: each worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallSort {
    /// The call's slowest turn (end-to-end).
    #[default]
    WorstTurn,
    /// The call's own P95 turn latency.
    P95,
    /// What the call cost.
    Cost,
    /// How long the call lasted.
    Duration,
}

impl CallSort {
    pub fn parse(text: &str) -> Option<CallSort> {
        match text {
            "worst_turn" => Some(CallSort::WorstTurn),
            "p95" => Some(CallSort::P95),
            "cost" => Some(CallSort::Cost),
            "duration" => Some(CallSort::Duration),
            _ => None,
        }
    }

    /// A call's key under this order (larger first); calls without one go last.
    fn key(self, call: &CallRow) -> Option<f64> {
        match self {
            CallSort::WorstTurn => call.worst_turn.as_ref().map(|turn| turn.e2e_ms),
            CallSort::P95 => call.p95_e2e_ms,
            CallSort::Cost => Some(call.cost.0 .0 as f64),
            CallSort::Duration => call.duration_s,
        }
    }
}

/// Which calls of a window `GET /calls` lists.
#[derive(Debug, Clone)]
pub struct CallListQuestion {
    pub tenant_id: String,
    pub range: TimeRange,
    pub agent_id: Option<String>,
    pub objective: Option<String>,
    pub provider: Option<String>,
    /// A call status, or `in_progress` for calls not ended.
    pub status: Option<String>,
    /// Calls with a turn at least this slow (end-to-end).
    pub min_e2e_ms: Option<f64>,
    pub sort: CallSort,
    pub limit: usize,
    /// Where the previous page ended (its `next_cursor`).
    pub cursor: Option<String>,
}

/// A call's slowest turn.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WorstTurn {
    pub turn_index: u32,
    pub e2e_ms: f64,
    /// The component that took longest in it (`stt`, `eou`, `llm_ttft`, `tts_ttfb`), if
    /// any was measured.
    pub slowest_component: Option<&'static str>,
    pub slowest_component_ms: Option<f64>,
}

/// One call of a window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallRow {
    pub call_id: String,
    pub agent_id: Option<String>,
    pub objective: Option<String>,
    /// Its first event, RFC 3339.
    pub start: String,
    pub duration_s: Option<f64>,
    /// `completed`, `failed`, `abandoned`, `transferred`, or `in_progress`.
    pub status: String,
    pub ended_reason: Option<String>,
    pub cost: Amount,
    pub unpriced_lines: u32,
    pub turns: usize,
    /// The call's own P95 end-to-end turn latency (nearest rank over its turns).
    pub p95_e2e_ms: Option<f64>,
    pub worst_turn: Option<WorstTurn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallListAnswer {
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub sort: CallSort,
    /// Calls matching the filters, on every page.
    pub matching: usize,
    pub calls: Vec<CallRow>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// The calls of a window, filtered, sorted worst first, one page.
pub async fn list(store: &dyn Store, question: CallListQuestion) -> Result<CallListAnswer, QueryError> {
    let window = CallWindow {
        tenant_id: question.tenant_id.clone(),
        range: question.range,
        agent_id: question.agent_id.clone(),
        objective: question.objective.clone(),
        provider: question.provider.clone(),
        limit: MAX_WINDOW_CALLS + 1,
    };
    let calls = store.window_calls(window).await?;
    if calls.len() > MAX_WINDOW_CALLS {
        return Err(QueryError::Invalid(format!(
            "more than {MAX_WINDOW_CALLS} calls began in this window; narrow `from`/`to` or filter"
        )));
    }
    let mut rows: Vec<CallRow> = calls
        .iter()
        .map(summarise)
        .filter(|row| question.status.as_deref().is_none_or(|status| row.status == status))
        .filter(|row| {
            question
                .min_e2e_ms
                .is_none_or(|min| row.worst_turn.as_ref().is_some_and(|turn| turn.e2e_ms >= min))
        })
        .collect();
    let sort = question.sort;
    rows.sort_by(|a, b| order(sort, a, b));
    let matching = rows.len();
    let start = match &question.cursor {
        Some(cursor) => {
            let (key, call_id) = decode_cursor(cursor)?;
            rows.iter().position(|row| after(sort, row, key, &call_id)).unwrap_or(rows.len())
        }
        None => 0,
    };
    let page: Vec<CallRow> = rows.into_iter().skip(start).take(question.limit).collect();
    let next_cursor = (start + page.len() < matching)
        .then(|| page.last().map(|last| encode_cursor(sort.key(last), &last.call_id)))
        .flatten();
    Ok(CallListAnswer {
        tenant_id: question.tenant_id,
        from: format_time(question.range.from_ms),
        to: format_time(question.range.to_ms),
        sort,
        matching,
        calls: page,
        next_cursor,
    })
}

/// Worst first; calls without a key last; then by call id, so the order is total.
fn order(sort: CallSort, a: &CallRow, b: &CallRow) -> std::cmp::Ordering {
    let key = |row: &CallRow| sort.key(row).unwrap_or(f64::NEG_INFINITY);
    key(b).total_cmp(&key(a)).then_with(|| a.call_id.cmp(&b.call_id))
}

/// Whether `row` comes after the position `(key, call_id)` in `sort` order.
fn after(sort: CallSort, row: &CallRow, key: f64, call_id: &str) -> bool {
    let own = sort.key(row).unwrap_or(f64::NEG_INFINITY);
    own.total_cmp(&key).reverse().then_with(|| row.call_id.as_str().cmp(call_id)).is_gt()
}

/// A cursor: the last row's sort key and call id, as URL-safe text.
fn encode_cursor(key: Option<f64>, call_id: &str) -> String {
    let key = key.unwrap_or(f64::NEG_INFINITY);
    format!("{:016x}.{}", key.to_bits(), hex::encode(call_id))
}

fn decode_cursor(cursor: &str) -> Result<(f64, String), QueryError> {
    let invalid = || QueryError::Invalid("query parameter `cursor`: not a cursor this API gave".into());
    let (key, call_id) = cursor.split_once('.').ok_or_else(invalid)?;
    let key = u64::from_str_radix(key, 16).map(f64::from_bits).map_err(|_| invalid())?;
    let call_id =
        hex::decode(call_id).ok().and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(invalid)?;
    Ok((key, call_id))
}

/// A call's row: its worst turn, its own P95, its cost.
fn summarise(call: &CallTurns) -> CallRow {
    let worst = call.turns.iter().max_by(|a, b| a.e2e_ms.total_cmp(&b.e2e_ms));
    CallRow {
        call_id: call.call_id.clone(),
        agent_id: call.agent_id.clone(),
        objective: call.objective.clone(),
        start: format_time(call.first_ms),
        duration_s: call.duration_s,
        status: status_name(call.status),
        ended_reason: call.ended_reason.clone(),
        cost: Amount(Nanos(call.cost_nano)),
        unpriced_lines: call.unpriced_lines,
        turns: call.turns.len(),
        p95_e2e_ms: p95(&call.turns),
        worst_turn: worst.map(|turn| {
            let slowest = slowest_component(turn);
            WorstTurn {
                turn_index: turn.turn_index,
                e2e_ms: turn.e2e_ms,
                slowest_component: slowest.map(|(name, _)| name),
                slowest_component_ms: slowest.map(|(_, ms)| ms),
            }
        }),
    }
}

fn status_name(status: Option<CallStatus>) -> String {
    status.map_or_else(|| "in_progress".to_owned(), |status| status.as_str().to_owned())
}

/// The exact P95 of the turns' end-to-end latencies (nearest rank).
fn p95(turns: &[TurnRow]) -> Option<f64> {
    let mut values: Vec<f64> = turns.iter().map(|turn| turn.e2e_ms).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * 0.95).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// The turn's component that took longest.
fn slowest_component(turn: &TurnRow) -> Option<(&'static str, f64)> {
    components(turn).into_iter().filter_map(|(name, ms)| Some((name, ms?))).max_by(|a, b| a.1.total_cmp(&b.1))
}

fn components(turn: &TurnRow) -> [(&'static str, Option<f64>); 4] {
    [
        ("stt", turn.stt_ms),
        ("eou", turn.eou_ms),
        ("llm_ttft", turn.llm_ttft_ms),
        ("tts_ttfb", turn.tts_ttfb_ms),
    ]
}

/// One turn of a call, as the call view draws it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnAnswer {
    pub turn_index: u32,
    pub time: String,
    pub e2e_ms: f64,
    pub stt_ms: Option<f64>,
    pub eou_ms: Option<f64>,
    pub llm_ttft_ms: Option<f64>,
    pub tts_ttfb_ms: Option<f64>,
    pub interrupted: Option<bool>,
    pub tool_calls: Option<u32>,
    pub slowest_component: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestAnswer {
    pub time: String,
    pub provider: String,
    pub component: String,
    pub ok: bool,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerChangeAnswer {
    pub time: String,
    pub breaker: String,
    pub state: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertEventAnswer {
    pub time: String,
    /// `firing`, `resolved`, a notification outcome...
    pub kind: String,
    pub rule: String,
    pub value: Option<f64>,
    pub detail: Option<String>,
}

/// One call whole: `GET /calls/{call_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    pub tenant_id: String,
    pub call_id: String,
    pub trace_id: Option<String>,
    pub agent_id: Option<String>,
    pub objective: Option<String>,
    /// Its first event; `started` and `ended` are what `call.started` and `call.ended` said.
    pub start: String,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub duration_s: Option<f64>,
    pub status: String,
    pub ended_reason: Option<String>,
    pub p95_e2e_ms: Option<f64>,
    pub turns: Vec<TurnAnswer>,
    /// Usage lines and their cost (as `GET /metrics/cost?call_id` itemises them).
    pub cost: CallAnswer,
    pub requests: Vec<RequestAnswer>,
    /// Breaker changes of the call's tenant while it lasted (and the state each breaker
    /// was in when it began).
    pub breakers: Vec<BreakerChangeAnswer>,
    /// Alert history of the call's tenant while it lasted.
    pub alerts: Vec<AlertEventAnswer>,
}

/// Alert history entries a call view lists at most.
const CALL_ALERTS: usize = 200;

/// One call of `tenant_id` whole; `NotFound` when the tenant has no such call.
pub async fn detail(store: &dyn Store, tenant_id: &str, call_id: &str) -> Result<CallDetail, QueryError> {
    let Some((call, requests)) = store.call_record(tenant_id, call_id).await? else {
        return Err(QueryError::NotFound(format!("tenant `{tenant_id}` has no call `{call_id}`")));
    };
    let cost = store
        .call_cost(Some(tenant_id), &CallRef::CallId(call_id.to_owned()))
        .await?
        .map(CallAnswer::from)
        .ok_or_else(|| QueryError::NotFound(format!("tenant `{tenant_id}` has no call `{call_id}`")))?;
    // While it lasted: from its first event to its end (or its last turn, or now-ish).
    let last_turn = call.turns.iter().map(|turn| turn.ts_ms).max();
    let end_ms = call
        .ended_ms
        .or_else(|| call.duration_s.map(|d| call.first_ms + (d * 1000.0) as i64))
        .into_iter()
        .chain(last_turn)
        .max()
        .unwrap_or(call.first_ms)
        .max(call.first_ms + 1);
    let during = TimeRange { from_ms: call.first_ms, to_ms: end_ms + 1 };
    let breakers = store
        .breaker_changes(Some(tenant_id), during.from_ms)
        .await?
        .into_iter()
        .filter(|change| change.at_ms < during.to_ms)
        .map(|change| BreakerChangeAnswer {
            time: format_time(change.at_ms),
            breaker: change.breaker,
            state: change.state.as_str().to_owned(),
        })
        .collect();
    let mut alerts: Vec<AlertEventAnswer> = store
        .alert_history(during, None, Some(tenant_id), CALL_ALERTS)
        .await?
        .into_iter()
        .map(alert_event)
        .collect();
    alerts.reverse();
    Ok(CallDetail {
        tenant_id: tenant_id.to_owned(),
        call_id: call.call_id.clone(),
        trace_id: call.trace_id.clone(),
        agent_id: call.agent_id.clone(),
        objective: call.objective.clone(),
        start: format_time(call.first_ms),
        started: call.started_ms.map(format_time),
        ended: call.ended_ms.map(format_time),
        duration_s: call.duration_s,
        status: status_name(call.status),
        ended_reason: call.ended_reason.clone(),
        p95_e2e_ms: p95(&call.turns),
        turns: call.turns.iter().map(turn_answer).collect(),
        cost,
        requests: requests.into_iter().map(request_answer).collect(),
        breakers,
        alerts,
    })
}

fn turn_answer(turn: &TurnRow) -> TurnAnswer {
    TurnAnswer {
        turn_index: turn.turn_index,
        time: format_time(turn.ts_ms),
        e2e_ms: turn.e2e_ms,
        stt_ms: turn.stt_ms,
        eou_ms: turn.eou_ms,
        llm_ttft_ms: turn.llm_ttft_ms,
        tts_ttfb_ms: turn.tts_ttfb_ms,
        interrupted: turn.interrupted,
        tool_calls: turn.tool_calls,
        slowest_component: slowest_component(turn).map(|(name, _)| name),
    }
}

fn request_answer(request: CallRequest) -> RequestAnswer {
    RequestAnswer {
        time: format_time(request.ts_ms),
        provider: request.provider,
        component: request.component.as_str().to_owned(),
        ok: request.ok,
        latency_ms: request.latency_ms,
        error: request.error,
    }
}

fn alert_event(entry: HistoryEntry) -> AlertEventAnswer {
    AlertEventAnswer {
        time: format_time(entry.at_ms),
        kind: entry.kind.as_str().to_owned(),
        rule: entry.rule,
        value: entry.value,
        detail: entry.detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(index: u32, e2e: f64, llm: Option<f64>, tts: Option<f64>) -> TurnRow {
        TurnRow {
            ts_ms: 0,
            turn_index: index,
            e2e_ms: e2e,
            stt_ms: Some(100.0),
            eou_ms: None,
            llm_ttft_ms: llm,
            tts_ttfb_ms: tts,
            interrupted: None,
            tool_calls: None,
        }
    }

    fn call(id: &str, turns: Vec<TurnRow>, cost: i64, duration: Option<f64>) -> CallTurns {
        CallTurns {
            call_id: id.into(),
            agent_id: None,
            objective: None,
            trace_id: None,
            first_ms: 1_795_780_800_000,
            started_ms: None,
            ended_ms: None,
            duration_s: duration,
            status: duration.map(|_| CallStatus::Completed),
            ended_reason: None,
            cost_nano: cost,
            unpriced_lines: 0,
            turns,
        }
    }

    #[test]
    fn a_call_row_names_its_worst_turn_and_what_made_it_slow() {
        let row = summarise(&call(
            "c1",
            vec![turn(0, 700.0, Some(300.0), Some(150.0)), turn(1, 2400.0, Some(1900.0), Some(200.0))],
            5,
            Some(60.0),
        ));
        let worst = row.worst_turn.unwrap();
        assert_eq!((worst.turn_index, worst.e2e_ms, worst.slowest_component), (1, 2400.0, Some("llm_ttft")));
        assert_eq!(row.p95_e2e_ms, Some(2400.0));
        assert_eq!((row.turns, row.status.as_str()), (2, "completed"));
        assert_eq!(summarise(&call("c2", vec![], 0, None)).status, "in_progress");
    }

    #[test]
    fn p95_is_the_nearest_rank_of_the_calls_own_turns() {
        let turns: Vec<TurnRow> = (1..=20).map(|n| turn(n, n as f64 * 100.0, None, None)).collect();
        assert_eq!(p95(&turns), Some(1900.0));
        assert_eq!(p95(&turns[..1]), Some(100.0));
        assert_eq!(p95(&[]), None);
    }

    #[test]
    fn pages_follow_the_sort_and_the_cursor_resumes_after_the_last_row() {
        let mut rows: Vec<CallRow> = (0..7)
            .map(|n| {
                summarise(&call(
                    &format!("c{n}"),
                    vec![turn(0, (n % 3) as f64 * 1000.0, None, None)],
                    0,
                    None,
                ))
            })
            .collect();
        rows.push(summarise(&call("no-turns", vec![], 0, None)));
        rows.sort_by(|a, b| order(CallSort::WorstTurn, a, b));
        let ids: Vec<&str> = rows.iter().map(|r| r.call_id.as_str()).collect();
        assert_eq!(ids, ["c2", "c5", "c1", "c4", "c0", "c3", "c6", "no-turns"]);
        let cursor = encode_cursor(CallSort::WorstTurn.key(&rows[2]), &rows[2].call_id);
        let (key, id) = decode_cursor(&cursor).unwrap();
        let next = rows.iter().position(|row| after(CallSort::WorstTurn, row, key, &id)).unwrap();
        assert_eq!(rows[next].call_id, "c4");
        let last = encode_cursor(None, "c6");
        let (key, id) = decode_cursor(&last).unwrap();
        assert_eq!(rows.iter().position(|row| after(CallSort::WorstTurn, row, key, &id)), Some(7));
        assert!(decode_cursor("nonsense").is_err());
    }
}

//! Re-pricing: recompute the cost of stored usage under the current price book, so a
//! corrected or newly added price reaches past calls. Idempotent: a second run with the
//! same book changes nothing.

use std::collections::BTreeMap;
use voicemon_core::event::{Body, Envelope, Event, LlmUsage, PipelineComponent, SttUsage, TtsUsage};
use voicemon_core::money::Nanos;
use voicemon_core::pricing::{Costing, PriceBook};
use voicemon_core::window::TimeRange;
use voicemon_store::{CostUpdate, RepriceStore, StoreError, UsageLine};

/// Lines read and written per step (one transaction each).
const STEP: usize = 5_000;

/// What a re-pricing run changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepriceSummary {
    /// Usage lines examined.
    pub lines: u64,
    /// Lines whose cost or price entry changed.
    pub changed: u64,
    /// Lines unpriced before and priced now.
    pub newly_priced: u64,
    /// Lines priced before and unpriced now.
    pub newly_unpriced: u64,
    /// Sum of the examined lines' cost before and after.
    pub before: Nanos,
    pub after: Nanos,
}

impl std::fmt::Display for RepriceSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let difference = Nanos(self.after.0 - self.before.0);
        writeln!(f, "usage lines examined: {}", self.lines)?;
        writeln!(f, "lines changed:        {}", self.changed)?;
        writeln!(f, "newly priced:         {}", self.newly_priced)?;
        writeln!(f, "newly unpriced:       {}", self.newly_unpriced)?;
        writeln!(f, "cost before:          {}", dollars(self.before))?;
        writeln!(f, "cost after:           {}", dollars(self.after))?;
        write!(f, "difference:           {}", dollars(difference))
    }
}

/// `-$0.01772`, `$0.02177`.
fn dollars(amount: Nanos) -> String {
    match amount.usd().strip_prefix('-') {
        Some(magnitude) => format!("-${magnitude}"),
        None => format!("${}", amount.usd()),
    }
}

/// Re-prices the usage lines with `ts_ms` in `range` (of `tenant_id`, when given),
/// calling `progress(done, total)` after each step.
pub async fn reprice(
    store: &dyn RepriceStore,
    book: &PriceBook,
    tenant_id: Option<&str>,
    range: TimeRange,
    mut progress: impl FnMut(u64, u64),
) -> Result<RepriceSummary, StoreError> {
    let total = store.count_usage_lines(tenant_id, range).await?;
    let mut summary = RepriceSummary::default();
    let mut after_id = 0;
    progress(0, total);
    loop {
        let lines = store.usage_lines(tenant_id, range, after_id, STEP).await?;
        let Some(last) = lines.last() else { break };
        after_id = last.id;
        let updates: Vec<CostUpdate> =
            lines.iter().filter_map(|line| reprice_line(book, line, &mut summary)).collect();
        if !updates.is_empty() {
            store.apply_costs(updates).await?;
        }
        progress(summary.lines, total.max(summary.lines));
    }
    Ok(summary)
}

/// The line's new cost, when it differs from the stored one.
fn reprice_line(book: &PriceBook, line: &UsageLine, summary: &mut RepriceSummary) -> Option<CostUpdate> {
    summary.lines += 1;
    summary.before.0 += line.cost_nano.unwrap_or(0);
    let costing = book.cost(&event_of(line));
    let unchanged = match &costing {
        Costing::Priced(priced) => {
            summary.after.0 += priced.cost.0;
            line.cost_nano == Some(priced.cost.0)
                && line.price_ref == priced.price_ref
                && line.detail == priced.unit_price
        }
        Costing::Unpriced { reason } => line.cost_nano.is_none() && &line.detail == reason,
        Costing::NotUsage => true,
    };
    if unchanged {
        return None;
    }
    summary.changed += 1;
    match (&costing, line.cost_nano) {
        (Costing::Priced(_), None) => summary.newly_priced += 1,
        (Costing::Unpriced { .. }, Some(_)) => summary.newly_unpriced += 1,
        _ => {}
    }
    Some(CostUpdate { usage_id: line.id, costing })
}

/// The usage event a stored line came from, as the price book needs it.
pub fn event_of(line: &UsageLine) -> Event {
    let envelope = Envelope {
        id: String::new(),
        timestamp_ms: line.ts_ms,
        tenant_id: line.tenant_id.clone(),
        call_id: Some(line.call_id.clone()),
        trace_id: None,
        agent_id: None,
        objective: None,
        attributes: BTreeMap::new(),
    };
    let provider = line.provider.clone();
    let body = match line.component {
        PipelineComponent::Stt => Body::SttUsage(SttUsage {
            provider,
            model: line.model.clone(),
            audio_seconds: line.audio_seconds.unwrap_or(0.0),
            latency_ms: None,
        }),
        PipelineComponent::Llm => Body::LlmUsage(LlmUsage {
            provider,
            model: line.model.clone().unwrap_or_default(),
            input_tokens: line.input_tokens.unwrap_or(0),
            output_tokens: line.output_tokens.unwrap_or(0),
            cached_input_tokens: line.cached_input_tokens,
            audio_input_tokens: line.audio_input_tokens,
            audio_output_tokens: line.audio_output_tokens,
            ttft_ms: None,
        }),
        PipelineComponent::Tts => Body::TtsUsage(TtsUsage {
            provider,
            model: line.model.clone(),
            voice: line.voice.clone(),
            characters: line.characters.unwrap_or(0),
            audio_seconds: line.audio_seconds,
            ttfb_ms: None,
        }),
    };
    Event { envelope, body }
}

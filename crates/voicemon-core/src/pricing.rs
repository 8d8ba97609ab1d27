//! The price book: dated unit prices per provider and model, and the cost of a usage
//! event under it (see `docs/pricing.md`).
//!
//! Prices are read from TOML (`pricing/default.toml`, shipped in the binary, plus
//! `[[pricing.price]]` entries in `voicemon.toml`) as exact decimals into nano-USD.
//! An entry applies from its `effective_from` date (00:00 UTC) until its `effective_to`
//! or the next entry for the same key. A usage line no entry prices is `Unpriced`, never
//! costed at zero.

use crate::event::{Body, Event, LlmUsage, SttUsage, TtsUsage};
use crate::money::{prorate, MoneyError, Nanos};
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeMap;
use thiserror::Error;

/// The price book voicemon ships with.
pub const DEFAULT_PRICE_BOOK: &str = include_str!("../../../pricing/default.toml");
/// Where the default book comes from, for error messages.
pub const DEFAULT_PRICE_BOOK_NAME: &str = "pricing/default.toml";

/// A price as written: a decimal string ("2.50") or a TOML number (2.5).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PriceText {
    Text(String),
    Number(f64),
}

impl PriceText {
    fn nanos(&self) -> Result<Nanos, MoneyError> {
        match self {
            PriceText::Text(text) => Nanos::parse_usd(text),
            // Rust prints the shortest text that reads back as the same float: 0.0043.
            PriceText::Number(number) => Nanos::parse_usd(&number.to_string()),
        }
    }
}

/// A price book file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBookFile {
    /// Format version; 1.
    pub version: u32,
    #[serde(default)]
    pub price: Vec<PriceEntryText>,
}

/// One `[[price]]` entry as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceEntryText {
    /// `stt`, `llm` or `tts`.
    pub component: String,
    pub provider: String,
    /// Exact name, or a prefix ending in `*`; `*` alone matches any model (and none).
    pub model: String,
    /// A tenant's negotiated price; absent for list prices.
    pub tenant: Option<String>,
    /// `YYYY-MM-DD`, from 00:00 UTC.
    pub effective_from: String,
    /// `YYYY-MM-DD`, exclusive; absent: until the next entry for the same key.
    pub effective_to: Option<String>,
    /// Where the price comes from and when it was read.
    pub source: Option<String>,
    /// STT: USD per minute of audio.
    pub per_audio_minute: Option<PriceText>,
    /// STT: audio is billed in blocks of this many seconds, rounded up (default 1).
    pub billing_increment_seconds: Option<u32>,
    /// STT: a usage line is billed at least this many seconds (default 0).
    pub minimum_billed_seconds: Option<u32>,
    /// LLM: USD per million uncached text input tokens.
    pub input_per_million: Option<PriceText>,
    /// LLM: USD per million cached input tokens (default: the input price).
    pub cached_input_per_million: Option<PriceText>,
    /// LLM: USD per million text output tokens.
    pub output_per_million: Option<PriceText>,
    /// LLM: USD per million audio input tokens (realtime / audio models).
    pub audio_input_per_million: Option<PriceText>,
    /// LLM: USD per million audio output tokens.
    pub audio_output_per_million: Option<PriceText>,
    /// TTS: USD per million characters.
    pub per_million_characters: Option<PriceText>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PricedComponent {
    Stt,
    Llm,
    Tts,
}

impl PricedComponent {
    pub fn as_str(self) -> &'static str {
        match self {
            PricedComponent::Stt => "stt",
            PricedComponent::Llm => "llm",
            PricedComponent::Tts => "tts",
        }
    }
}

/// Validated unit prices.
#[derive(Debug, Clone, PartialEq)]
pub enum Rates {
    Stt {
        per_minute: Nanos,
        increment_s: u32,
        minimum_s: u32,
    },
    Llm {
        input: Nanos,
        cached_input: Nanos,
        output: Nanos,
        audio_input: Option<Nanos>,
        audio_output: Option<Nanos>,
    },
    Tts {
        per_million_characters: Nanos,
    },
}

/// A validated price entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceEntry {
    pub component: PricedComponent,
    pub provider: String,
    pub model: String,
    pub tenant: Option<String>,
    pub from_ms: i64,
    pub to_ms: Option<i64>,
    pub rates: Rates,
    pub source: Option<String>,
    /// A stable name for the entry, stored with every line it priced.
    pub reference: String,
}

#[derive(Debug, Error, PartialEq)]
pub enum PricingError {
    #[error("{origin}: not a valid price book: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: price #{index} ({what}): {message}")]
    Entry { origin: String, index: usize, what: String, message: String },
    #[error("price entries {first} and {second} overlap: one model may have one price at a time")]
    Overlap { first: String, second: String },
}

/// Every price entry in force, defaults and overrides merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceBook {
    entries: Vec<PriceEntry>,
}

/// What a usage event cost.
#[derive(Debug, Clone, PartialEq)]
pub enum Costing {
    /// Not a usage event.
    NotUsage,
    Priced(PricedLine),
    /// No price entry applies; the line is stored and counted, its cost unknown.
    Unpriced {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PricedLine {
    pub cost: Nanos,
    /// [`PriceEntry::reference`] of the entry used.
    pub price_ref: String,
    /// The unit prices used, for people: "$0.0077/audio min, 1 s blocks".
    pub unit_price: String,
}

impl PriceBook {
    /// The shipped defaults, with `overrides` (from `voicemon.toml`) replacing entries with
    /// the same component, provider, model, tenant and `effective_from`.
    pub fn with_overrides(
        overrides: &[PriceEntryText],
        overrides_origin: &str,
    ) -> Result<PriceBook, PricingError> {
        let defaults = parse_file(DEFAULT_PRICE_BOOK, DEFAULT_PRICE_BOOK_NAME)?;
        let mut entries = validate_entries(&defaults.price, DEFAULT_PRICE_BOOK_NAME)?;
        let overrides = validate_entries(overrides, overrides_origin)?;
        // An override replaces the default it names; two overrides of one key and date
        // are an overlap, caught below like any other.
        entries.retain(|default| {
            !overrides.iter().any(|o| same_key(default, o) && default.from_ms == o.from_ms)
        });
        entries.extend(overrides);
        check_overlaps(&mut entries)?;
        Ok(PriceBook { entries })
    }

    /// A book from one file's text alone (tests, `config check` of a standalone book).
    pub fn from_toml(text: &str, origin: &str) -> Result<PriceBook, PricingError> {
        let file = parse_file(text, origin)?;
        let mut entries = validate_entries(&file.price, origin)?;
        check_overlaps(&mut entries)?;
        Ok(PriceBook { entries })
    }

    pub fn entries(&self) -> &[PriceEntry] {
        &self.entries
    }

    /// The cost of one event (usage events only).
    pub fn cost(&self, event: &Event) -> Costing {
        let tenant = &event.envelope.tenant_id;
        let at = event.envelope.timestamp_ms;
        match &event.body {
            Body::SttUsage(usage) => self.cost_stt(tenant, at, usage),
            Body::LlmUsage(usage) => self.cost_llm(tenant, at, usage),
            Body::TtsUsage(usage) => self.cost_tts(tenant, at, usage),
            _ => Costing::NotUsage,
        }
    }

    fn cost_stt(&self, tenant: &str, at: i64, usage: &SttUsage) -> Costing {
        let entry = match self.find(PricedComponent::Stt, tenant, &usage.provider, usage.model.as_deref(), at)
        {
            Ok(entry) => entry,
            Err(unpriced) => return unpriced,
        };
        let Rates::Stt { per_minute, increment_s, minimum_s } = entry.rates else {
            return unpriced_for(entry, "has no STT rates");
        };
        let audio_ms = (usage.audio_seconds * 1000.0).round() as i64;
        let block_ms = i64::from(increment_s.max(1)) * 1000;
        let billed_ms = ((audio_ms + block_ms - 1) / block_ms * block_ms).max(i64::from(minimum_s) * 1000);
        priced(entry, prorate(billed_ms, per_minute, 60_000))
    }

    fn cost_llm(&self, tenant: &str, at: i64, usage: &LlmUsage) -> Costing {
        let entry = match self.find(PricedComponent::Llm, tenant, &usage.provider, Some(&usage.model), at) {
            Ok(entry) => entry,
            Err(unpriced) => return unpriced,
        };
        let Rates::Llm { input, cached_input, output, audio_input, audio_output } = entry.rates else {
            return unpriced_for(entry, "has no LLM rates");
        };
        let tokens = TokenSplit::of(usage);
        let audio_in_rate = match (tokens.audio_input, audio_input) {
            (0, _) => Nanos(0),
            (_, Some(rate)) => rate,
            (_, None) => return unpriced_for(entry, "has no audio_input_per_million for the audio tokens"),
        };
        let audio_out_rate = match (tokens.audio_output, audio_output) {
            (0, _) => Nanos(0),
            (_, Some(rate)) => rate,
            (_, None) => return unpriced_for(entry, "has no audio_output_per_million for the audio tokens"),
        };
        let parts = [
            (tokens.text_input, input),
            (tokens.cached_input, cached_input),
            (tokens.audio_input, audio_in_rate),
            (tokens.text_output, output),
            (tokens.audio_output, audio_out_rate),
        ];
        let cost = parts.iter().try_fold(Nanos(0), |sum, &(count, rate)| {
            let count = i64::try_from(count).ok()?;
            sum.checked_add(prorate(count, rate, 1_000_000))
        });
        match cost {
            Some(cost) => priced(entry, cost),
            None => unpriced_for(entry, "gives a cost too large to count: check the token counts"),
        }
    }

    fn cost_tts(&self, tenant: &str, at: i64, usage: &TtsUsage) -> Costing {
        let entry = match self.find(PricedComponent::Tts, tenant, &usage.provider, usage.model.as_deref(), at)
        {
            Ok(entry) => entry,
            Err(unpriced) => return unpriced,
        };
        let Rates::Tts { per_million_characters } = entry.rates else {
            return unpriced_for(entry, "has no TTS rates");
        };
        match i64::try_from(usage.characters) {
            Ok(characters) => priced(entry, prorate(characters, per_million_characters, 1_000_000)),
            Err(_) => unpriced_for(entry, "gives a cost too large to count: check the character count"),
        }
    }

    /// The entry pricing a usage line: a tenant's own entry before list prices, then the
    /// closest model match (exact, then without a date suffix, then the longest prefix),
    /// among entries in force at `at`.
    /// An entry applies from its start until its `effective_to` or the start of the next
    /// entry for the same key, whichever comes first.
    fn in_force(&self, entry: &PriceEntry, at: i64) -> bool {
        let started = entry.from_ms <= at && entry.to_ms.is_none_or(|to| at < to);
        started
            && !self
                .entries
                .iter()
                .any(|other| same_key(other, entry) && other.from_ms > entry.from_ms && other.from_ms <= at)
    }

    fn find(
        &self,
        component: PricedComponent,
        tenant: &str,
        provider: &str,
        model: Option<&str>,
        at: i64,
    ) -> Result<&PriceEntry, Costing> {
        let provider = provider.to_ascii_lowercase();
        let best = self
            .entries
            .iter()
            .filter(|e| e.component == component && e.provider == provider)
            .filter(|e| e.tenant.as_deref().is_none_or(|t| t == tenant))
            .filter(|e| self.in_force(e, at))
            .filter_map(|e| model_match(&e.model, model).map(|quality| (e, quality)))
            .max_by_key(|(e, quality)| (e.tenant.is_some(), *quality, e.from_ms));
        best.map(|(entry, _)| entry).ok_or_else(|| Costing::Unpriced {
            reason: format!(
                "no {} price for {provider}/{} on {}",
                component.as_str(),
                model.unwrap_or("(no model)"),
                crate::window::format_time(at).get(..10).unwrap_or_default()
            ),
        })
    }
}

/// How well an entry's model pattern matches a usage line's model; `None`: not at all.
/// Exact (3) beats the model without a dated-snapshot suffix (2), which beats a prefix
/// pattern `name*` (1 + prefix length, so longer prefixes win) and `*` (0).
fn model_match(pattern: &str, model: Option<&str>) -> Option<(u8, usize)> {
    if pattern == "*" {
        return Some((0, 0));
    }
    let model = model?.to_ascii_lowercase();
    if pattern == model {
        return Some((3, pattern.len()));
    }
    if strip_snapshot_date(&model) == Some(pattern) {
        return Some((2, pattern.len()));
    }
    match pattern.strip_suffix('*') {
        Some(prefix) if model.starts_with(prefix) => Some((1, prefix.len())),
        _ => None,
    }
}

/// `gpt-4o-2024-08-06` → `gpt-4o`; `claude-3-5-sonnet-20241022` → `claude-3-5-sonnet`.
pub fn strip_snapshot_date(model: &str) -> Option<&str> {
    let bytes = model.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let n = bytes.len();
    if n > 11 && bytes[n - 11] == b'-' && bytes[n - 6] == b'-' && bytes[n - 3] == b'-' {
        let (y, m, d) = (&bytes[n - 10..n - 6], &bytes[n - 5..n - 3], &bytes[n - 2..]);
        if digits(y) && digits(m) && digits(d) {
            return Some(&model[..n - 11]);
        }
    }
    if n > 9 && bytes[n - 9] == b'-' && digits(&bytes[n - 8..]) {
        return Some(&model[..n - 9]);
    }
    None
}

/// How an `llm.usage` line's tokens are billed. `input_tokens` counts every input token:
/// cached ones are billed at the cached rate, audio ones at the audio rate, and only the
/// rest at the text input rate, so nothing is charged twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSplit {
    pub text_input: u64,
    pub cached_input: u64,
    pub audio_input: u64,
    pub text_output: u64,
    pub audio_output: u64,
}

impl TokenSplit {
    pub fn of(usage: &LlmUsage) -> TokenSplit {
        let cached = usage.cached_input_tokens.unwrap_or(0).min(usage.input_tokens);
        let audio_input = usage.audio_input_tokens.unwrap_or(0).min(usage.input_tokens - cached);
        let audio_output = usage.audio_output_tokens.unwrap_or(0).min(usage.output_tokens);
        TokenSplit {
            text_input: usage.input_tokens - cached - audio_input,
            cached_input: cached,
            audio_input,
            text_output: usage.output_tokens - audio_output,
            audio_output,
        }
    }
}

fn priced(entry: &PriceEntry, cost: Nanos) -> Costing {
    Costing::Priced(PricedLine {
        cost,
        price_ref: entry.reference.clone(),
        unit_price: describe(&entry.rates),
    })
}

fn unpriced_for(entry: &PriceEntry, problem: &str) -> Costing {
    Costing::Unpriced { reason: format!("price {} {problem}", entry.reference) }
}

/// Unit prices in words.
pub fn describe(rates: &Rates) -> String {
    match rates {
        Rates::Stt { per_minute, increment_s, minimum_s } => {
            let minimum = if *minimum_s > 0 { format!(", {minimum_s} s minimum") } else { String::new() };
            format!("${}/audio min, {increment_s} s blocks{minimum}", per_minute.usd())
        }
        Rates::Llm { input, cached_input, output, audio_input, audio_output } => {
            let mut text = format!(
                "in ${}/M, cached ${}/M, out ${}/M tokens",
                input.usd(),
                cached_input.usd(),
                output.usd()
            );
            if let Some(rate) = audio_input {
                text.push_str(&format!(", audio in ${}/M", rate.usd()));
            }
            if let Some(rate) = audio_output {
                text.push_str(&format!(", audio out ${}/M", rate.usd()));
            }
            text
        }
        Rates::Tts { per_million_characters } => format!("${}/M characters", per_million_characters.usd()),
    }
}

fn parse_file(text: &str, origin: &str) -> Result<PriceBookFile, PricingError> {
    let file: PriceBookFile = toml::from_str(text)
        .map_err(|err| PricingError::Parse { origin: origin.to_owned(), message: err.to_string() })?;
    if file.version != 1 {
        return Err(PricingError::Parse {
            origin: origin.to_owned(),
            message: format!("version {} is not known; this voicemon reads version 1", file.version),
        });
    }
    Ok(file)
}

fn validate_entries(texts: &[PriceEntryText], origin: &str) -> Result<Vec<PriceEntry>, PricingError> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            validate_entry(text).map_err(|message| PricingError::Entry {
                origin: origin.to_owned(),
                index: index + 1,
                what: format!("{} {} {}", text.component, text.provider, text.model),
                message,
            })
        })
        .collect()
}

fn validate_entry(text: &PriceEntryText) -> Result<PriceEntry, String> {
    let component = match text.component.as_str() {
        "stt" => PricedComponent::Stt,
        "llm" => PricedComponent::Llm,
        "tts" => PricedComponent::Tts,
        other => return Err(format!("component `{other}` is not one of stt, llm, tts")),
    };
    let provider = text.provider.trim().to_ascii_lowercase();
    let model = text.model.trim().to_ascii_lowercase();
    if provider.is_empty() || model.is_empty() {
        return Err("provider and model must not be empty (use model = \"*\" for any model)".into());
    }
    let from_ms = parse_date(&text.effective_from, "effective_from")?;
    let to_ms = text.effective_to.as_deref().map(|to| parse_date(to, "effective_to")).transpose()?;
    if to_ms.is_some_and(|to| to <= from_ms) {
        return Err("effective_to must be after effective_from".into());
    }
    let rates = validate_rates(component, text)?;
    let tenant = text.tenant.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    let mut reference = format!("{}/{provider}/{model}@{}", component.as_str(), text.effective_from.trim());
    if let Some(tenant) = &tenant {
        reference.push_str(&format!("#{tenant}"));
    }
    Ok(PriceEntry {
        component,
        provider,
        model,
        tenant,
        from_ms,
        to_ms,
        rates,
        source: text.source.clone(),
        reference,
    })
}

fn parse_date(text: &str, field: &str) -> Result<i64, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map(|date| date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default())
        .map_err(|_| format!("{field} `{text}` is not a date such as 2025-01-31"))
}

fn validate_rates(component: PricedComponent, text: &PriceEntryText) -> Result<Rates, String> {
    let price = |value: &Option<PriceText>, field: &str| -> Result<Option<Nanos>, String> {
        value.as_ref().map(|p| p.nanos().map_err(|err| format!("{field}: {err}"))).transpose()
    };
    let required = |value: &Option<PriceText>, field: &str| -> Result<Nanos, String> {
        price(value, field)?.ok_or_else(|| format!("{field} is required for {}", component.as_str()))
    };
    let present: BTreeMap<&str, bool> = [
        ("per_audio_minute", text.per_audio_minute.is_some()),
        ("billing_increment_seconds", text.billing_increment_seconds.is_some()),
        ("minimum_billed_seconds", text.minimum_billed_seconds.is_some()),
        ("input_per_million", text.input_per_million.is_some()),
        ("cached_input_per_million", text.cached_input_per_million.is_some()),
        ("output_per_million", text.output_per_million.is_some()),
        ("audio_input_per_million", text.audio_input_per_million.is_some()),
        ("audio_output_per_million", text.audio_output_per_million.is_some()),
        ("per_million_characters", text.per_million_characters.is_some()),
    ]
    .into_iter()
    .collect();
    let allowed: &[&str] = match component {
        PricedComponent::Stt => &["per_audio_minute", "billing_increment_seconds", "minimum_billed_seconds"],
        PricedComponent::Llm => &[
            "input_per_million",
            "cached_input_per_million",
            "output_per_million",
            "audio_input_per_million",
            "audio_output_per_million",
        ],
        PricedComponent::Tts => &["per_million_characters"],
    };
    if let Some((unit, _)) = present.iter().find(|(unit, set)| **set && !allowed.contains(unit)) {
        return Err(format!(
            "unit `{unit}` does not apply to {}; it takes {}",
            component.as_str(),
            allowed.join(", ")
        ));
    }
    Ok(match component {
        PricedComponent::Stt => {
            let increment_s = text.billing_increment_seconds.unwrap_or(1);
            if increment_s == 0 {
                return Err("billing_increment_seconds must be at least 1".into());
            }
            Rates::Stt {
                per_minute: required(&text.per_audio_minute, "per_audio_minute")?,
                increment_s,
                minimum_s: text.minimum_billed_seconds.unwrap_or(0),
            }
        }
        PricedComponent::Llm => {
            let input = required(&text.input_per_million, "input_per_million")?;
            Rates::Llm {
                input,
                cached_input: price(&text.cached_input_per_million, "cached_input_per_million")?
                    .unwrap_or(input),
                output: required(&text.output_per_million, "output_per_million")?,
                audio_input: price(&text.audio_input_per_million, "audio_input_per_million")?,
                audio_output: price(&text.audio_output_per_million, "audio_output_per_million")?,
            }
        }
        PricedComponent::Tts => Rates::Tts {
            per_million_characters: required(&text.per_million_characters, "per_million_characters")?,
        },
    })
}

fn same_key(a: &PriceEntry, b: &PriceEntry) -> bool {
    a.component == b.component && a.provider == b.provider && a.model == b.model && a.tenant == b.tenant
}

/// Entries for one key must not overlap in time: sorted by start, each must end (its
/// `effective_to`, if any) before the next begins, and no two may start the same day.
fn check_overlaps(entries: &mut [PriceEntry]) -> Result<(), PricingError> {
    entries.sort_by(|a, b| {
        (a.component, &a.provider, &a.model, &a.tenant, a.from_ms).cmp(&(
            b.component,
            &b.provider,
            &b.model,
            &b.tenant,
            b.from_ms,
        ))
    });
    for pair in entries.windows(2) {
        let (first, second) = (&pair[0], &pair[1]);
        if !same_key(first, second) {
            continue;
        }
        let first_ends_late = first.to_ms.is_some_and(|to| to > second.from_ms);
        if first_ends_late || first.from_ms == second.from_ms {
            return Err(PricingError::Overlap {
                first: first.reference.clone(),
                second: second.reference.clone(),
            });
        }
    }
    Ok(())
}

//! Alert rules: what to watch, how bad is bad, for how long. The defaults ship on.

use crate::latency::Component;
use crate::money::Nanos;
use serde::Deserialize;
use std::time::Duration;
use thiserror::Error;

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A latency percentile of a component over the window, per tenant (ms).
    Latency { component: Component, quantile: Quantile },
    /// Mean cost per call of the calls that began in the window, per tenant (USD).
    CostPerCall,
    /// Cost per minute of the ended calls that began in the window, per tenant (USD).
    CostPerMinute,
    /// How long a breaker has been open (s), per tenant and breaker.
    BreakerOpenSeconds,
    /// A worker's memory use (percent of its limit), per tenant and worker.
    WorkerMemoryPercent,
    /// How long a provider has been down (s), per provider.
    ProviderDownSeconds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    P50,
    P95,
    P99,
}

impl Quantile {
    pub fn value(self) -> f64 {
        match self {
            Quantile::P50 => 0.50,
            Quantile::P95 => 0.95,
            Quantile::P99 => 0.99,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P95 => "p95",
            Quantile::P99 => "p99",
        }
    }
}

impl Metric {
    /// The `metric` label of its alerts.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Latency { .. } => "latency",
            Metric::CostPerCall => "cost_per_call",
            Metric::CostPerMinute => "cost_per_minute",
            Metric::BreakerOpenSeconds => "breaker_open_seconds",
            Metric::WorkerMemoryPercent => "worker_memory_percent",
            Metric::ProviderDownSeconds => "provider_down_seconds",
        }
    }

    /// The labels its samples carry, so the ones a rule may group by.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            // `provider` only for the components usage events measure per provider.
            Metric::Latency { component: Component::TurnE2e | Component::Eou, .. } => &["tenant_id"],
            Metric::Latency { .. } => &["tenant_id", "provider"],
            Metric::CostPerCall | Metric::CostPerMinute => &["tenant_id"],
            Metric::BreakerOpenSeconds => &["tenant_id", "breaker"],
            Metric::WorkerMemoryPercent => &["tenant_id", "worker_id"],
            Metric::ProviderDownSeconds => &["provider"],
        }
    }

    /// Whether the metric is computed over a window of past data.
    pub fn uses_window(self) -> bool {
        matches!(self, Metric::Latency { .. } | Metric::CostPerCall | Metric::CostPerMinute)
    }

    /// The unit of its threshold and values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Latency { .. } => "ms",
            Metric::CostPerCall | Metric::CostPerMinute => "USD",
            Metric::BreakerOpenSeconds | Metric::ProviderDownSeconds => "s",
            Metric::WorkerMemoryPercent => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    /// Fires when the value is above this (in the metric's unit).
    pub threshold: f64,
    pub window: Duration,
    /// How long the condition must hold before pending becomes firing.
    pub for_: Duration,
    /// How long a firing alert stays firing after its condition stops holding.
    pub keep_firing_for: Duration,
    /// The labels alerts are kept apart by; the others are dropped from samples.
    pub group_by: Vec<String>,
    pub severity: Severity,
    /// Only these tenants; all when empty.
    pub tenants: Vec<String>,
    /// Receiver names to notify; every receiver when empty.
    pub receivers: Vec<String>,
    /// One line a person reads; `{value}`, `{threshold}` and labels are filled in.
    pub summary: String,
}

/// A `[[alerting.rule]]` as written in `voicemon.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleText {
    pub name: String,
    /// `false` turns a shipped rule of the same name off.
    pub enabled: Option<bool>,
    /// latency | cost_per_call | cost_per_minute | breaker_open_seconds |
    /// worker_memory_percent | provider_down_seconds
    pub metric: Option<String>,
    /// For `latency`: turn_e2e (default), stt, eou, llm_ttft, tts_ttfb.
    pub component: Option<String>,
    /// For `latency`: p50, p95 (default), p99.
    pub aggregation: Option<String>,
    pub threshold: Option<f64>,
    pub window: Option<String>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub keep_firing_for: Option<String>,
    pub group_by: Option<Vec<String>>,
    pub severity: Option<Severity>,
    pub tenants: Option<Vec<String>>,
    pub receivers: Option<Vec<String>>,
    pub summary: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("alert rule `{rule}`: {message}")]
pub struct RuleError {
    pub rule: String,
    pub message: String,
}

/// $0.20 per call and per minute: the brief's guardrail.
pub const COST_GUARDRAIL: Nanos = Nanos(200_000_000);

/// The rules voicemon ships, all on.
pub fn default_rules() -> Vec<Rule> {
    let minutes = |m: u64| Duration::from_secs(60 * m);
    let rule = |name: &str, metric, threshold, window, for_, group: &[&str], severity, summary: &str| Rule {
        name: name.to_owned(),
        metric,
        threshold,
        window,
        for_,
        keep_firing_for: Duration::ZERO,
        group_by: group.iter().map(|s| (*s).to_owned()).collect(),
        severity,
        tenants: Vec::new(),
        receivers: Vec::new(),
        summary: summary.to_owned(),
    };
    let guardrail = COST_GUARDRAIL.0 as f64 / 1e9;
    vec![
        rule(
            "turn_latency_p95_high",
            Metric::Latency { component: Component::TurnE2e, quantile: Quantile::P95 },
            800.0,
            minutes(5),
            Duration::ZERO,
            &["tenant_id"],
            Severity::Critical,
            "P95 turn latency of {tenant_id} is {value} ms (SLO: under {threshold} ms over 5 min)",
        ),
        rule(
            "cost_per_call_high",
            Metric::CostPerCall,
            guardrail,
            minutes(60),
            Duration::ZERO,
            &["tenant_id"],
            Severity::Warning,
            "cost per call of {tenant_id} is ${value} (guardrail ${threshold}, last hour)",
        ),
        rule(
            "cost_per_minute_high",
            Metric::CostPerMinute,
            guardrail,
            minutes(60),
            Duration::ZERO,
            &["tenant_id"],
            Severity::Warning,
            "cost per minute of {tenant_id} is ${value} (guardrail ${threshold}, last hour)",
        ),
        rule(
            "breaker_open",
            Metric::BreakerOpenSeconds,
            300.0,
            Duration::ZERO,
            Duration::ZERO,
            &["tenant_id", "breaker"],
            Severity::Critical,
            "circuit breaker {breaker} of {tenant_id} has been open for {value} s",
        ),
        rule(
            "worker_memory_high",
            Metric::WorkerMemoryPercent,
            80.0,
            Duration::ZERO,
            Duration::ZERO,
            &["tenant_id", "worker_id"],
            Severity::Warning,
            "worker {worker_id} of {tenant_id} uses {value} % of its memory",
        ),
        rule(
            "provider_down",
            Metric::ProviderDownSeconds,
            120.0,
            Duration::ZERO,
            Duration::ZERO,
            &["provider"],
            Severity::Critical,
            "provider {provider} has been down for {value} s",
        ),
    ]
}

/// The shipped rules with `texts` applied: a text naming a shipped rule overrides its
/// fields (or turns it off with `enabled = false`); any other name adds a rule.
pub fn rules_with(texts: &[RuleText]) -> Result<Vec<Rule>, RuleError> {
    let mut rules = default_rules();
    for text in texts {
        let error = |message: String| RuleError { rule: text.name.clone(), message };
        if text.name.trim().is_empty() {
            return Err(error("every rule needs a name".into()));
        }
        if texts.iter().filter(|t| t.name == text.name).count() > 1 {
            return Err(error("is defined twice".into()));
        }
        let position = rules.iter().position(|r| r.name == text.name);
        if text.enabled == Some(false) {
            match position {
                Some(index) => {
                    rules.remove(index);
                }
                None => return Err(error("`enabled = false` names no shipped rule".into())),
            }
            continue;
        }
        let rule = apply(position.map(|i| rules[i].clone()), text).map_err(error)?;
        match position {
            Some(index) => rules[index] = rule,
            None => rules.push(rule),
        }
    }
    Ok(rules)
}

fn duration(text: &Option<String>, field: &str, default: Duration) -> Result<Duration, String> {
    match text {
        Some(text) => {
            let ms = crate::window::parse_duration_ms(text).map_err(|err| format!("{field}: {err}"))?;
            Ok(Duration::from_millis(ms.max(0) as u64))
        }
        None => Ok(default),
    }
}

fn parse_metric(text: &RuleText, base: Option<Metric>) -> Result<Metric, String> {
    let name = match (&text.metric, base) {
        (Some(name), _) => name.clone(),
        (None, Some(metric)) => metric.name().to_owned(),
        (None, None) => return Err("`metric` is required for a new rule".into()),
    };
    let metric = match name.as_str() {
        "latency" => {
            let (base_component, base_quantile) = match base {
                Some(Metric::Latency { component, quantile }) => (component, quantile),
                _ => (Component::TurnE2e, Quantile::P95),
            };
            let component = match &text.component {
                Some(c) => Component::parse(c).ok_or_else(|| format!("unknown component `{c}`"))?,
                None => base_component,
            };
            let quantile = match text.aggregation.as_deref() {
                Some("p50") => Quantile::P50,
                Some("p95") => Quantile::P95,
                Some("p99") => Quantile::P99,
                Some(other) => return Err(format!("aggregation `{other}` is not one of p50, p95, p99")),
                None => base_quantile,
            };
            Metric::Latency { component, quantile }
        }
        "cost_per_call" => Metric::CostPerCall,
        "cost_per_minute" => Metric::CostPerMinute,
        "breaker_open_seconds" => Metric::BreakerOpenSeconds,
        "worker_memory_percent" => Metric::WorkerMemoryPercent,
        "provider_down_seconds" => Metric::ProviderDownSeconds,
        other => return Err(format!("unknown metric `{other}`")),
    };
    if !matches!(metric, Metric::Latency { .. }) && (text.component.is_some() || text.aggregation.is_some()) {
        return Err(format!("`component` and `aggregation` apply to latency rules, not {}", metric.name()));
    }
    Ok(metric)
}

fn apply(base: Option<Rule>, text: &RuleText) -> Result<Rule, String> {
    let metric = parse_metric(text, base.as_ref().map(|r| r.metric))?;
    let threshold = match (text.threshold, &base) {
        (Some(t), _) => t,
        (None, Some(base)) => base.threshold,
        (None, None) => return Err("`threshold` is required for a new rule".into()),
    };
    if !threshold.is_finite() || threshold < 0.0 {
        return Err(format!("threshold {threshold} must be a number ≥ 0"));
    }
    let default_window = base.as_ref().map_or(Duration::from_secs(300), |b| b.window);
    let window = duration(&text.window, "window", default_window)?;
    if metric.uses_window() && window < Duration::from_secs(60) {
        return Err("window must be at least 1m".into());
    }
    let group_by = match &text.group_by {
        Some(labels) => labels.clone(),
        // A new rule keeps alerts apart by every label but `provider`, which is opt-in.
        None => base.as_ref().map_or_else(
            || metric.labels().iter().filter(|l| **l != "provider").map(|l| (*l).to_owned()).collect(),
            |b| b.group_by.clone(),
        ),
    };
    let tenants =
        text.tenants.clone().or_else(|| base.as_ref().map(|b| b.tenants.clone())).unwrap_or_default();
    if !tenants.is_empty() && !metric.labels().contains(&"tenant_id") {
        return Err(format!("{} has no tenant; `tenants` cannot scope it", metric.name()));
    }
    if let Some(label) = group_by.iter().find(|l| !metric.labels().contains(&l.as_str())) {
        return Err(format!(
            "cannot group {} by `{label}`; it has {}",
            metric.name(),
            metric.labels().join(", ")
        ));
    }
    Ok(Rule {
        name: text.name.clone(),
        metric,
        threshold,
        window,
        for_: duration(&text.for_, "for", base.as_ref().map_or(Duration::ZERO, |b| b.for_))?,
        keep_firing_for: duration(
            &text.keep_firing_for,
            "keep_firing_for",
            base.as_ref().map_or(Duration::ZERO, |b| b.keep_firing_for),
        )?,
        group_by,
        severity: text.severity.or(base.as_ref().map(|b| b.severity)).unwrap_or(Severity::Warning),
        tenants: text
            .tenants
            .clone()
            .or_else(|| base.as_ref().map(|b| b.tenants.clone()))
            .unwrap_or_default(),
        receivers: text
            .receivers
            .clone()
            .or_else(|| base.as_ref().map(|b| b.receivers.clone()))
            .unwrap_or_default(),
        summary: text.summary.clone().or_else(|| base.as_ref().map(|b| b.summary.clone())).unwrap_or_else(
            || format!("{} is {{value}} {} (threshold {{threshold}})", metric.name(), metric.unit()),
        ),
    })
}

//! The pure alerting core, driven by an injected time (plain `now_ms` values, no sleeps):
//! rules and their validation, pending → firing → resolved with `for` and
//! `keep_firing_for`, the notification policy (group_wait, grouping, repeat interval,
//! resolved after firing, restart), silences and inhibition.
//!
//! Policy, silence and inhibition tests go through a small `Monitor` that wires the
//! pieces together the way the server's engine does, so every expected notice is what a
//! person would receive.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use voicemon_core::alerting::evaluator::{format_value, Alert, AlertState, Change, Evaluator, Sample};
use voicemon_core::alerting::policy::{Notice, NotifyRecord, Policy, PolicyConfig};
use voicemon_core::alerting::rules::{
    default_rules, rules_with, Metric, Quantile, Rule, RuleError, RuleText, Severity, COST_GUARDRAIL,
};
use voicemon_core::alerting::silence::{default_inhibit_rules, is_inhibited, InhibitRule, Matcher, Silence};
use voicemon_core::alerting::{fingerprint, Labels};
use voicemon_core::latency::Component;

/// 2026-11-27T12:00:00Z.
const T0: i64 = 1_795_780_800_000;
const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

// ---------------------------------------------------------------------------------------
// Helpers.

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

fn sample(pairs: &[(&str, &str)], value: f64) -> Sample {
    Sample { labels: labels(pairs), value }
}

/// A per-tenant sample (latency, cost).
fn tenant(tenant_id: &str, value: f64) -> Sample {
    sample(&[("tenant_id", tenant_id)], value)
}

fn provider(name: &str, down_seconds: f64) -> Sample {
    sample(&[("provider", name)], down_seconds)
}

/// `[[alerting.rule]]` tables, as an operator writes them (`[[rule]]` here).
fn texts(toml_text: &str) -> Vec<RuleText> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Alerting {
        rule: Vec<RuleText>,
    }
    toml::from_str::<Alerting>(toml_text).unwrap_or_else(|err| panic!("{toml_text}: {err}")).rule
}

/// The shipped rules with the given `[[rule]]` tables applied.
fn configured(toml_text: &str) -> Result<Vec<Rule>, RuleError> {
    rules_with(&texts(toml_text))
}

/// The rule one `[[rule]]` table (its body given) defines or overrides.
fn rule(body: &str) -> Rule {
    let texts = texts(&format!("[[rule]]\n{body}"));
    let name = texts[0].name.clone();
    let rules = rules_with(&texts).unwrap_or_else(|err| panic!("{body}: {err}"));
    rules.into_iter().find(|r| r.name == name).expect("the configured rule is in the list")
}

/// Why one `[[rule]]` table (its body given) is rejected.
fn rejected(body: &str) -> RuleError {
    match configured(&format!("[[rule]]\n{body}")) {
        Ok(_) => panic!("accepted: {body}"),
        Err(err) => err,
    }
}

fn shipped(name: &str) -> Rule {
    default_rules().into_iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no shipped rule {name}"))
}

fn latency_rule() -> Rule {
    shipped("turn_latency_p95_high")
}

/// A latency rule whose alerts carry the provider, built directly (validation refuses
/// `group_by = ["provider"]` on latency; see
/// `a_latency_rule_may_group_by_provider_so_the_shipped_inhibition_can_reach_it`).
fn latency_by_provider_rule() -> Rule {
    Rule {
        name: "turn_latency_by_provider".into(),
        group_by: vec!["tenant_id".into(), "provider".into()],
        ..latency_rule()
    }
}

fn latency_with_provider(tenant_id: &str, provider: &str, ms: f64) -> Sample {
    sample(&[("tenant_id", tenant_id), ("provider", provider)], ms)
}

/// The only active alert of `evaluator`.
fn only_alert(evaluator: &Evaluator) -> &Alert {
    let alerts: Vec<&Alert> = evaluator.alerts().collect();
    assert_eq!(alerts.len(), 1, "active alerts: {alerts:#?}");
    alerts[0]
}

/// How a person tells alerts of one rule apart: its group-by label values.
fn who(alert: &Alert) -> String {
    let own = ["alertname", "metric", "severity"];
    let values: Vec<&str> = alert
        .labels
        .iter()
        .filter(|(name, _)| !own.contains(&name.as_str()))
        .map(|(_, v)| v.as_str())
        .collect();
    values.join("/")
}

/// Each notice as one line: `rule: firing [a, b]; resolved [c]` (alerts in name order; a
/// notice's order of alerts carries no meaning).
fn describe(notices: &[Notice]) -> Vec<String> {
    let list = |alerts: &[Alert]| {
        let mut names: Vec<String> = alerts.iter().map(who).collect();
        names.sort();
        names.join(", ")
    };
    notices
        .iter()
        .map(|n| format!("{}: firing [{}]; resolved [{}]", n.rule, list(&n.firing), list(&n.resolved)))
        .collect()
}

fn silence(matchers: &[&str], starts_ms: i64, ends_ms: i64) -> Silence {
    Silence {
        id: "s1".into(),
        matchers: matchers.iter().map(|m| Matcher::parse(m).expect("a valid matcher")).collect(),
        starts_ms,
        ends_ms,
        comment: "maintenance".into(),
        author: "oncall@example.com".into(),
        created_ms: starts_ms,
    }
}

/// Evaluator + notification log + silences + inhibition, wired as the server wires them.
struct Monitor {
    evaluator: Evaluator,
    policy: Policy,
    silences: Vec<Silence>,
    inhibit_rules: Vec<InhibitRule>,
    /// What the last tick's evaluations changed.
    changes: Vec<Change>,
}

impl Monitor {
    fn new() -> Monitor {
        Monitor::resume(Vec::new(), Vec::new())
    }

    /// A monitor restarted from what a previous run stored.
    fn resume(alerts: Vec<Alert>, records: Vec<NotifyRecord>) -> Monitor {
        Monitor {
            evaluator: Evaluator::restore(alerts),
            policy: Policy::new(PolicyConfig::default(), records),
            silences: Vec::new(),
            inhibit_rules: default_inhibit_rules(),
            changes: Vec::new(),
        }
    }

    /// Evaluates every rule over its samples at `now_ms`; returns the notices due then.
    fn tick(&mut self, now_ms: i64, observed: &[(&Rule, &[Sample])]) -> Vec<String> {
        self.changes.clear();
        for (rule, samples) in observed {
            self.changes.extend(self.evaluator.evaluate(rule, samples, now_ms));
        }
        let resolved: Vec<Alert> = self
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Resolved { alert, .. } => Some(alert.clone()),
                _ => None,
            })
            .collect();
        let firing_now: Vec<Alert> =
            self.evaluator.alerts().filter(|a| a.state == AlertState::Firing).cloned().collect();
        let firing: Vec<&Alert> = firing_now.iter().collect();
        let (silences, inhibit_rules) = (&self.silences, &self.inhibit_rules);
        let muted = |alert: &Alert| {
            silences.iter().any(|s| s.mutes(&alert.labels, now_ms))
                || is_inhibited(alert, &firing, inhibit_rules)
        };
        describe(&self.policy.due(&firing, &resolved, muted, now_ms))
    }

    /// The ticks at `times`, each with the same observations; every notice sent meanwhile.
    fn ticks(
        &mut self,
        times: impl IntoIterator<Item = i64>,
        observed: &[(&Rule, &[Sample])],
    ) -> Vec<String> {
        times.into_iter().flat_map(|now_ms| self.tick(now_ms, observed)).collect()
    }

    fn firing(&self) -> Vec<String> {
        self.evaluator.alerts().filter(|a| a.state == AlertState::Firing).map(who).collect()
    }
}

/// Every 10 s from `from_ms` up to and including `to_ms`.
fn every_10_s(from_ms: i64, to_ms: i64) -> impl Iterator<Item = i64> {
    (from_ms..=to_ms).step_by(10_000)
}

// ---------------------------------------------------------------------------------------
// Evaluation: pending, firing, dropped, resolved.

#[test]
fn an_alert_stays_pending_until_its_for_has_elapsed_and_fires_at_exactly_active_since_plus_for() {
    let rule = rule("name = \"turn_latency_p95_high\"\nfor = \"1m\"");
    let mut evaluator = Evaluator::default();

    let changes = evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0);
    match changes.as_slice() {
        [Change::Pending(alert)] => {
            assert_eq!(alert.active_since_ms, T0);
            assert_eq!(alert.firing_since_ms, None);
        }
        other => panic!("expected one pending alert, got {other:#?}"),
    }

    assert_eq!(evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0 + MINUTE - 1), vec![]);
    assert_eq!(only_alert(&evaluator).state, AlertState::Pending);

    let changes = evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0 + MINUTE);
    match changes.as_slice() {
        [Change::Firing(alert)] => {
            assert_eq!(alert.state, AlertState::Firing);
            assert_eq!(alert.active_since_ms, T0);
            assert_eq!(alert.firing_since_ms, Some(T0 + MINUTE));
        }
        other => panic!("expected the alert to fire, got {other:#?}"),
    }
    assert_eq!(evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0 + 2 * MINUTE), vec![]);
}

#[test]
fn a_rule_without_for_fires_at_the_first_evaluation_that_finds_its_condition() {
    let mut evaluator = Evaluator::default();
    let changes = evaluator.evaluate(&latency_rule(), &[tenant("acme", 900.0)], T0);
    match changes.as_slice() {
        [Change::Firing(alert)] => {
            assert_eq!(alert.active_since_ms, T0);
            assert_eq!(alert.firing_since_ms, Some(T0));
        }
        other => panic!("expected the alert to fire at once, got {other:#?}"),
    }
}

#[test]
fn only_a_value_above_the_threshold_alerts_not_one_equal_to_it_nor_nan() {
    let mut evaluator = Evaluator::default();
    let samples =
        [tenant("at", 800.0), tenant("nan", f64::NAN), tenant("below", 799.9), tenant("above", 800.5)];
    evaluator.evaluate(&latency_rule(), &samples, T0);
    assert_eq!(who(only_alert(&evaluator)), "above");
}

#[test]
fn a_condition_that_clears_while_pending_drops_the_alert_and_notifies_nothing() {
    let rule = rule("name = \"turn_latency_p95_high\"\nfor = \"1m\"");
    let mut monitor = Monitor::new();

    let mut sent = monitor.ticks(every_10_s(T0, T0 + 50 * SECOND), &[(&rule, &[tenant("acme", 900.0)])]);
    assert!(matches!(only_alert(&monitor.evaluator).state, AlertState::Pending));

    sent.extend(monitor.tick(T0 + MINUTE - 1, &[(&rule, &[])]));
    match monitor.changes.as_slice() {
        [Change::Dropped(alert)] => assert_eq!(who(alert), "acme"),
        other => panic!("expected the pending alert to be dropped, got {other:#?}"),
    }
    assert_eq!(monitor.evaluator.alerts().count(), 0);

    sent.extend(monitor.ticks(every_10_s(T0 + MINUTE, T0 + 10 * MINUTE), &[(&rule, &[])]));
    assert_eq!(sent, Vec::<String>::new());
}

#[test]
fn a_condition_that_returns_after_being_dropped_starts_a_new_pending_period() {
    let rule = rule("name = \"turn_latency_p95_high\"\nfor = \"1m\"");
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0);
    evaluator.evaluate(&rule, &[], T0 + 30 * SECOND);
    evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0 + 40 * SECOND);

    let changes = evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0 + MINUTE);
    assert_eq!(changes, vec![], "the minute counts from the return, not from T0");
    assert_eq!(only_alert(&evaluator).active_since_ms, T0 + 40 * SECOND);
    let changes = evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0 + 100 * SECOND);
    assert!(matches!(changes.as_slice(), [Change::Firing(_)]), "{changes:#?}");
}

#[test]
fn keep_firing_for_does_not_keep_a_pending_alert() {
    let rule = rule("name = \"turn_latency_p95_high\"\nfor = \"1m\"\nkeep_firing_for = \"5m\"");
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0);
    let changes = evaluator.evaluate(&rule, &[], T0 + 10 * SECOND);
    assert!(matches!(changes.as_slice(), [Change::Dropped(_)]), "{changes:#?}");
}

#[test]
fn without_keep_firing_for_a_firing_alert_resolves_at_the_first_evaluation_that_finds_it_over() {
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&latency_rule(), &[tenant("acme", 900.0)], T0);
    let changes = evaluator.evaluate(&latency_rule(), &[tenant("acme", 700.0)], T0 + 10 * SECOND);
    match changes.as_slice() {
        [Change::Resolved { alert, at_ms }] => {
            assert_eq!(who(alert), "acme");
            assert_eq!(*at_ms, T0 + 10 * SECOND);
        }
        other => panic!("expected the alert to resolve, got {other:#?}"),
    }
    assert_eq!(evaluator.alerts().count(), 0);
}

#[test]
fn a_flapping_alert_with_keep_firing_for_stays_firing_and_sends_no_resolved_notice() {
    let rule = rule("name = \"turn_latency_p95_high\"\nkeep_firing_for = \"2m\"");
    let high: &[Sample] = &[tenant("acme", 900.0)];
    let mut monitor = Monitor::new();

    assert_eq!(
        monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, high)]),
        ["turn_latency_p95_high: firing [acme]; resolved []"]
    );

    // Over for 50 s, back for one evaluation, over for 110 s: always less than 2 min.
    let mut sent = monitor.ticks(every_10_s(T0 + 20 * SECOND, T0 + MINUTE), &[(&rule, &[])]);
    assert_eq!(monitor.firing(), ["acme"]);
    sent.extend(monitor.tick(T0 + 70 * SECOND, &[(&rule, high)]));
    sent.extend(monitor.ticks(every_10_s(T0 + 80 * SECOND, T0 + 180 * SECOND), &[(&rule, &[])]));

    assert_eq!(sent, Vec::<String>::new());
    assert_eq!(monitor.firing(), ["acme"]);
    assert_eq!(only_alert(&monitor.evaluator).firing_since_ms, Some(T0), "still the same firing alert");
}

#[test]
fn a_condition_over_for_longer_than_keep_firing_for_resolves_the_alert_once() {
    let rule = rule("name = \"turn_latency_p95_high\"\nkeep_firing_for = \"2m\"");
    let mut monitor = Monitor::new();
    monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, &[tenant("acme", 900.0)])]);

    // Last true at T0 + 10 s; over from T0 + 20 s.
    let sent = monitor.ticks(every_10_s(T0 + 20 * SECOND, T0 + 2 * MINUTE), &[(&rule, &[])]);
    assert_eq!(sent, Vec::<String>::new());
    assert_eq!(monitor.firing(), ["acme"], "over for less than 2 min");

    let sent = monitor.ticks(every_10_s(T0 + 130 * SECOND, T0 + 10 * MINUTE), &[(&rule, &[])]);
    assert_eq!(sent, ["turn_latency_p95_high: firing []; resolved [acme]"]);
    assert_eq!(monitor.evaluator.alerts().count(), 0);
}

/// Prometheus keeps the alert firing while `now - KeepFiringSince < keep_firing_for`,
/// `KeepFiringSince` being the first evaluation that found the condition false.
#[test]
fn keep_firing_for_counts_from_the_first_evaluation_that_finds_the_condition_over() {
    let rule = rule("name = \"turn_latency_p95_high\"\nkeep_firing_for = \"2m\"");
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0);
    assert_eq!(evaluator.evaluate(&rule, &[], T0 + MINUTE), vec![], "first seen over at T0 + 1 min");

    let changes = evaluator.evaluate(&rule, &[], T0 + 150 * SECOND);
    assert_eq!(changes, vec![], "over for 1 min 30 s (< 2 min): still firing");

    let changes = evaluator.evaluate(&rule, &[], T0 + 3 * MINUTE);
    assert!(
        matches!(changes.as_slice(), [Change::Resolved { at_ms, .. }] if *at_ms == T0 + 3 * MINUTE),
        "over for 2 min: resolved, got {changes:#?}"
    );
}

#[test]
fn a_changing_value_is_the_same_alert_with_updated_annotations() {
    let rule = latency_rule();
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&rule, &[tenant("acme", 950.0)], T0);
    let first = only_alert(&evaluator).clone();

    let changes = evaluator.evaluate(&rule, &[tenant("acme", 1234.0)], T0 + 10 * SECOND);
    assert_eq!(changes, vec![], "a new value is no state change");
    let now = only_alert(&evaluator);
    assert_eq!(now.fingerprint, first.fingerprint);
    assert_eq!(now.labels, first.labels);
    assert_eq!(now.firing_since_ms, Some(T0));
    assert_eq!(now.value, 1234.0);
    assert_eq!(
        now.annotations,
        BTreeMap::from([
            (
                "summary".to_owned(),
                "P95 turn latency of acme is 1234 ms (SLO: under 800 ms over 5 min)".to_owned()
            ),
            ("value".to_owned(), "1234".to_owned()),
            ("threshold".to_owned(), "800".to_owned()),
            ("unit".to_owned(), "ms".to_owned()),
        ])
    );
    assert_eq!(
        first.annotations["summary"],
        "P95 turn latency of acme is 950 ms (SLO: under 800 ms over 5 min)"
    );
}

#[test]
fn an_alert_is_labelled_by_its_rule_metric_severity_and_group_by_labels_only() {
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(
        &shipped("breaker_open"),
        &[sample(&[("tenant_id", "acme"), ("breaker", "stt"), ("region", "eu")], 420.0)],
        T0,
    );
    assert_eq!(
        only_alert(&evaluator).labels,
        labels(&[
            ("alertname", "breaker_open"),
            ("metric", "breaker_open_seconds"),
            ("severity", "critical"),
            ("tenant_id", "acme"),
            ("breaker", "stt"),
        ])
    );
}

#[test]
fn summaries_fill_in_value_threshold_and_labels_with_fitting_decimals() {
    let cases = [
        (
            shipped("cost_per_call_high"),
            tenant("acme", 0.2537),
            "cost per call of acme is $0.2537 (guardrail $0.2000, last hour)",
        ),
        (
            shipped("cost_per_minute_high"),
            tenant("acme", 1.25),
            "cost per minute of acme is $1.2 (guardrail $0.2000, last hour)",
        ),
        (
            shipped("breaker_open"),
            sample(&[("tenant_id", "acme"), ("breaker", "stt-deepgram")], 420.0),
            "circuit breaker stt-deepgram of acme has been open for 420 s",
        ),
        (
            shipped("worker_memory_high"),
            sample(&[("tenant_id", "acme"), ("worker_id", "w-7")], 93.4),
            "worker w-7 of acme uses 93.4 % of its memory",
        ),
        (shipped("provider_down"), provider("openai", 185.0), "provider openai has been down for 185 s"),
    ];
    for (rule, sample, expected) in cases {
        let mut evaluator = Evaluator::default();
        evaluator.evaluate(&rule, &[sample], T0);
        assert_eq!(only_alert(&evaluator).annotations["summary"], expected, "rule {}", rule.name);
    }
    assert_eq!(format_value(0.2), "0.2000");
    assert_eq!(format_value(12.34), "12.3");
    assert_eq!(format_value(812.6), "813");
}

#[test]
fn a_new_rule_without_a_summary_gets_one_naming_metric_value_unit_and_threshold() {
    let rule = rule("name = \"stt_slow\"\nmetric = \"latency\"\ncomponent = \"stt\"\nthreshold = 300");
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&rule, &[tenant("acme", 420.0)], T0);
    assert_eq!(only_alert(&evaluator).annotations["summary"], "latency is 420 ms (threshold 300)");
}

#[test]
fn group_by_drops_the_other_labels_and_the_worst_value_of_the_merged_samples_wins() {
    let rule = rule("name = \"breaker_open\"\ngroup_by = [\"tenant_id\"]");
    let samples = [
        sample(&[("tenant_id", "acme"), ("breaker", "stt")], 400.0),
        sample(&[("tenant_id", "acme"), ("breaker", "tts")], 700.0),
        sample(&[("tenant_id", "acme"), ("breaker", "llm")], 350.0),
        sample(&[("tenant_id", "globex"), ("breaker", "llm")], 310.0),
    ];
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&rule, &samples, T0);

    let alerts: Vec<(String, f64)> = evaluator.alerts().map(|a| (who(a), a.value)).collect();
    let mut alerts = alerts;
    alerts.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(alerts, [("acme".to_owned(), 700.0), ("globex".to_owned(), 310.0)]);
    assert!(evaluator.alerts().all(|a| !a.labels.contains_key("breaker")));
}

#[test]
fn the_shipped_breaker_rule_keeps_two_breakers_of_one_tenant_apart() {
    let samples = [
        sample(&[("tenant_id", "acme"), ("breaker", "stt")], 400.0),
        sample(&[("tenant_id", "acme"), ("breaker", "tts")], 700.0),
    ];
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&shipped("breaker_open"), &samples, T0);
    let mut alerts: Vec<String> = evaluator.alerts().map(who).collect();
    alerts.sort();
    assert_eq!(alerts, ["stt/acme", "tts/acme"]);
}

#[test]
fn a_rule_scoped_to_tenants_ignores_other_tenants_and_samples_without_a_tenant() {
    let rule = rule("name = \"turn_latency_p95_high\"\ntenants = [\"acme\"]");
    let samples = [tenant("acme", 900.0), tenant("globex", 2000.0), sample(&[], 3000.0)];
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&rule, &samples, T0);
    assert_eq!(who(only_alert(&evaluator)), "acme");
}

#[test]
fn evaluating_one_rule_leaves_the_alerts_of_another_rule_alone() {
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&latency_rule(), &[tenant("acme", 900.0)], T0);
    let changes = evaluator.evaluate(&shipped("cost_per_call_high"), &[], T0 + 10 * SECOND);
    assert_eq!(changes, vec![]);
    assert_eq!(only_alert(&evaluator).rule, "turn_latency_p95_high");
}

#[test]
fn the_alerts_of_a_removed_rule_resolve_if_firing_and_are_dropped_if_pending() {
    let pending_rule = rule("name = \"cost_per_call_high\"\nfor = \"10m\"");
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(&latency_rule(), &[tenant("acme", 900.0)], T0);
    evaluator.evaluate(&pending_rule, &[tenant("acme", 0.5)], T0);

    let changes = evaluator.retain_rules(&["provider_down"], T0 + MINUTE);
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(changes.iter().any(|c| matches!(c, Change::Resolved { alert, at_ms }
        if alert.rule == "turn_latency_p95_high" && *at_ms == T0 + MINUTE)));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::Dropped(alert) if alert.rule == "cost_per_call_high")));
    assert_eq!(evaluator.alerts().count(), 0);
}

#[test]
fn a_restored_evaluator_continues_the_alerts_it_was_given() {
    let mut before = Evaluator::default();
    before.evaluate(&latency_rule(), &[tenant("acme", 900.0)], T0);
    let mut after = Evaluator::restore(before.alerts().cloned().collect::<Vec<_>>());
    assert_eq!(after.evaluate(&latency_rule(), &[tenant("acme", 950.0)], T0 + MINUTE), vec![]);
    assert_eq!(only_alert(&after).firing_since_ms, Some(T0));
}

// ---------------------------------------------------------------------------------------
// Notification policy.

#[test]
fn a_new_firing_alert_is_notified_once_it_has_fired_for_group_wait() {
    let rule = latency_rule();
    let high: &[Sample] = &[tenant("acme", 900.0)];
    let mut monitor = Monitor::new();
    assert_eq!(monitor.tick(T0, &[(&rule, high)]), Vec::<String>::new());
    assert_eq!(monitor.tick(T0 + 9_999, &[(&rule, high)]), Vec::<String>::new());
    assert_eq!(
        monitor.tick(T0 + 10_000, &[(&rule, high)]),
        ["turn_latency_p95_high: firing [acme]; resolved []"]
    );
}

#[test]
fn group_wait_counts_from_when_the_alert_fired_not_from_when_it_became_pending() {
    let rule = rule("name = \"turn_latency_p95_high\"\nfor = \"1m\"");
    let high: &[Sample] = &[tenant("acme", 900.0)];
    let mut monitor = Monitor::new();
    let sent = monitor.ticks([T0, T0 + MINUTE, T0 + MINUTE + 9_999], &[(&rule, high)]);
    assert_eq!(sent, Vec::<String>::new());
    assert_eq!(monitor.tick(T0 + MINUTE + 10_000, &[(&rule, high)]).len(), 1);
}

#[test]
fn a_firing_alert_is_not_notified_again_before_the_repeat_interval_and_is_at_exactly_5_min() {
    let rule = latency_rule();
    let high: &[Sample] = &[tenant("acme", 900.0)];
    let mut monitor = Monitor::new();
    let notified_at = T0 + 10 * SECOND;
    assert_eq!(monitor.ticks([T0, notified_at], &[(&rule, high)]).len(), 1);

    let sent = monitor.ticks(
        every_10_s(notified_at + 10 * SECOND, notified_at + 4 * MINUTE + 50 * SECOND),
        &[(&rule, high)],
    );
    assert_eq!(sent, Vec::<String>::new());
    assert_eq!(monitor.tick(notified_at + 5 * MINUTE - SECOND, &[(&rule, high)]), Vec::<String>::new());
    assert_eq!(
        monitor.tick(notified_at + 5 * MINUTE, &[(&rule, high)]),
        ["turn_latency_p95_high: firing [acme]; resolved []"]
    );

    let sent = monitor.ticks(
        every_10_s(notified_at + 5 * MINUTE + 10 * SECOND, notified_at + 10 * MINUTE),
        &[(&rule, high)],
    );
    assert_eq!(sent, ["turn_latency_p95_high: firing [acme]; resolved []"], "the next repeat, at +10 min");
}

#[test]
fn an_alert_that_resolves_before_group_wait_gives_no_notice_at_all() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    let mut sent = monitor.tick(T0, &[(&rule, &[tenant("acme", 900.0)])]);
    sent.extend(monitor.tick(T0 + 5 * SECOND, &[(&rule, &[])]));
    assert!(matches!(monitor.changes.as_slice(), [Change::Resolved { .. }]));
    sent.extend(monitor.ticks(every_10_s(T0 + 10 * SECOND, T0 + 10 * MINUTE), &[(&rule, &[])]));
    assert_eq!(sent, Vec::<String>::new());
}

#[test]
fn a_resolved_notice_follows_a_sent_firing_notice_exactly_once() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, &[tenant("acme", 900.0)])]);
    assert!(monitor.policy.was_notified(&only_alert(&monitor.evaluator).fingerprint));

    let sent = monitor.ticks(every_10_s(T0 + 20 * SECOND, T0 + 20 * MINUTE), &[(&rule, &[])]);
    assert_eq!(sent, ["turn_latency_p95_high: firing []; resolved [acme]"]);
    assert_eq!(monitor.policy.records().count(), 0);
}

#[test]
fn a_resolved_alert_handed_to_the_policy_twice_is_announced_once() {
    let rule = latency_rule();
    let mut evaluator = Evaluator::default();
    let mut policy = Policy::default();
    evaluator.evaluate(&rule, &[tenant("acme", 900.0)], T0);
    let alert = only_alert(&evaluator).clone();
    assert_eq!(policy.due(&[&alert], &[], |_| false, T0 + 10 * SECOND).len(), 1);

    let resolved = [alert.clone()];
    assert_eq!(
        describe(&policy.due(&[], &resolved, |_| false, T0 + MINUTE)),
        ["turn_latency_p95_high: firing []; resolved [acme]"]
    );
    assert_eq!(policy.due(&[], &resolved, |_| false, T0 + MINUTE + 10 * SECOND), vec![]);
}

#[test]
fn two_alerts_of_one_rule_firing_within_group_wait_go_out_in_one_notice() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    monitor.tick(T0, &[(&rule, &[tenant("acme", 900.0)])]);
    let both: &[Sample] = &[tenant("acme", 900.0), tenant("globex", 1100.0)];
    assert_eq!(monitor.tick(T0 + 4 * SECOND, &[(&rule, both)]), Vec::<String>::new());
    assert_eq!(
        monitor.tick(T0 + 10 * SECOND, &[(&rule, both)]),
        ["turn_latency_p95_high: firing [acme, globex]; resolved []"]
    );

    let sent = monitor.ticks(every_10_s(T0 + 14 * SECOND, T0 + 2 * MINUTE), &[(&rule, both)]);
    assert_eq!(sent, Vec::<String>::new(), "globex was sent with acme, not again after its own group_wait");
}

#[test]
fn alerts_of_different_rules_go_out_in_separate_notices() {
    let latency = latency_rule();
    let cost = shipped("cost_per_call_high");
    let observed: &[(&Rule, &[Sample])] =
        &[(&latency, &[tenant("acme", 900.0)]), (&cost, &[tenant("acme", 0.31)])];
    let mut monitor = Monitor::new();
    monitor.tick(T0, observed);
    let mut sent = monitor.tick(T0 + 10 * SECOND, observed);
    sent.sort();
    assert_eq!(
        sent,
        [
            "cost_per_call_high: firing [acme]; resolved []",
            "turn_latency_p95_high: firing [acme]; resolved []"
        ]
    );
}

#[test]
fn a_new_alert_of_another_rule_does_not_join_a_notice_before_its_own_group_wait() {
    let latency = latency_rule();
    let cost = shipped("cost_per_call_high");
    let mut monitor = Monitor::new();
    monitor.tick(T0, &[(&latency, &[tenant("acme", 900.0)]), (&cost, &[])]);
    let both: &[(&Rule, &[Sample])] =
        &[(&latency, &[tenant("acme", 900.0)]), (&cost, &[tenant("acme", 0.31)])];
    monitor.tick(T0 + 5 * SECOND, both);
    assert_eq!(monitor.tick(T0 + 10 * SECOND, both), ["turn_latency_p95_high: firing [acme]; resolved []"]);
    assert_eq!(monitor.tick(T0 + 15 * SECOND, both), ["cost_per_call_high: firing [acme]; resolved []"]);
}

#[test]
fn a_new_alert_joins_the_repeat_notice_of_its_rule() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    let notified_at = T0 + 10 * SECOND;
    monitor.ticks([T0, notified_at], &[(&rule, &[tenant("acme", 900.0)])]);

    let both: &[Sample] = &[tenant("acme", 900.0), tenant("globex", 1100.0)];
    assert_eq!(monitor.tick(notified_at + 5 * MINUTE - SECOND, &[(&rule, both)]), Vec::<String>::new());
    assert_eq!(
        monitor.tick(notified_at + 5 * MINUTE, &[(&rule, both)]),
        ["turn_latency_p95_high: firing [acme, globex]; resolved []"]
    );
    let sent = monitor.ticks(
        every_10_s(notified_at + 5 * MINUTE + 10 * SECOND, notified_at + 9 * MINUTE),
        &[(&rule, both)],
    );
    assert_eq!(sent, Vec::<String>::new());
}

#[test]
fn a_repeat_notice_does_not_carry_alerts_of_its_rule_notified_less_than_5_min_ago() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, &[tenant("acme", 900.0)])]);
    let both: &[Sample] = &[tenant("acme", 900.0), tenant("globex", 1100.0)];
    monitor.tick(T0 + MINUTE, &[(&rule, both)]);
    assert_eq!(
        monitor.tick(T0 + 70 * SECOND, &[(&rule, both)]),
        ["turn_latency_p95_high: firing [globex]; resolved []"]
    );

    assert_eq!(
        monitor.tick(T0 + 10 * SECOND + 5 * MINUTE, &[(&rule, both)]),
        ["turn_latency_p95_high: firing [acme]; resolved []"]
    );
    assert_eq!(
        monitor.tick(T0 + 70 * SECOND + 5 * MINUTE, &[(&rule, both)]),
        ["turn_latency_p95_high: firing [globex]; resolved []"]
    );
}

#[test]
fn a_resolved_alert_and_a_firing_one_of_the_same_rule_share_a_notice() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    let both: &[Sample] = &[tenant("acme", 900.0), tenant("globex", 1100.0)];
    monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, both)]);
    let sent = monitor.tick(T0 + 10 * SECOND + 5 * MINUTE, &[(&rule, &[tenant("globex", 1100.0)])]);
    assert_eq!(sent, ["turn_latency_p95_high: firing [globex]; resolved [acme]"]);
}

#[test]
fn after_a_restart_with_the_previous_records_a_firing_alert_is_not_notified_twice_and_still_resolves() {
    let rule = latency_rule();
    let high: &[Sample] = &[tenant("acme", 900.0)];
    let mut first_run = Monitor::new();
    assert_eq!(first_run.ticks([T0, T0 + 10 * SECOND], &[(&rule, high)]).len(), 1);
    let alerts: Vec<Alert> = first_run.evaluator.alerts().cloned().collect();
    let records: Vec<NotifyRecord> = first_run.policy.records().cloned().collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].first_notified_ms, T0 + 10 * SECOND);
    drop(first_run);

    let mut second_run = Monitor::resume(alerts, records);
    let sent = second_run.ticks(every_10_s(T0 + MINUTE, T0 + 4 * MINUTE), &[(&rule, high)]);
    assert_eq!(sent, Vec::<String>::new());
    assert_eq!(
        second_run.tick(T0 + 5 * MINUTE, &[(&rule, &[])]),
        ["turn_latency_p95_high: firing []; resolved [acme]"]
    );
}

#[test]
fn after_a_restart_that_lost_the_alerts_but_kept_the_records_a_firing_alert_is_not_notified_twice() {
    let rule = latency_rule();
    let high: &[Sample] = &[tenant("acme", 900.0)];
    let mut first_run = Monitor::new();
    first_run.ticks([T0, T0 + 10 * SECOND], &[(&rule, high)]);
    let records: Vec<NotifyRecord> = first_run.policy.records().cloned().collect();

    let mut second_run = Monitor::resume(Vec::new(), records);
    let sent = second_run.ticks(every_10_s(T0 + MINUTE, T0 + 3 * MINUTE), &[(&rule, high)]);
    assert_eq!(sent, Vec::<String>::new());
    assert_eq!(
        second_run.tick(T0 + 3 * MINUTE + 10 * SECOND, &[(&rule, &[])]).len(),
        1,
        "the resolved notice"
    );
}

// ---------------------------------------------------------------------------------------
// Silences.

#[test]
fn a_silence_is_active_from_its_start_until_just_before_its_end() {
    let s = silence(&["tenant_id=acme"], T0, T0 + HOUR);
    let acme = labels(&[("tenant_id", "acme")]);
    assert!(!s.mutes(&acme, T0 - 1));
    assert!(s.mutes(&acme, T0));
    assert!(s.mutes(&acme, T0 + HOUR - 1));
    assert!(!s.mutes(&acme, T0 + HOUR));
}

#[test]
fn a_silenced_alert_is_notified_once_the_silence_has_expired() {
    let rule = latency_rule();
    let high: &[Sample] = &[tenant("acme", 900.0)];
    let mut monitor = Monitor::new();
    monitor.silences.push(silence(&["tenant_id=acme"], T0, T0 + HOUR));

    let sent = monitor.ticks([T0, T0 + 10 * SECOND, T0 + 30 * MINUTE, T0 + HOUR - 1], &[(&rule, high)]);
    assert_eq!(sent, Vec::<String>::new());
    assert_eq!(monitor.firing(), ["acme"], "a silence mutes notices, not the alert");
    assert_eq!(
        monitor.tick(T0 + HOUR, &[(&rule, high)]),
        ["turn_latency_p95_high: firing [acme]; resolved []"]
    );
}

#[test]
fn a_silence_that_starts_later_does_not_mute_yet() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    monitor.silences.push(silence(&["tenant_id=acme"], T0 + MINUTE, T0 + HOUR));
    let sent = monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, &[tenant("acme", 900.0)])]);
    assert_eq!(sent, ["turn_latency_p95_high: firing [acme]; resolved []"]);
}

#[test]
fn a_silence_mutes_only_the_alerts_its_equal_matcher_names() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    monitor.silences.push(silence(&["tenant_id=acme"], T0, T0 + HOUR));
    let both: &[Sample] = &[tenant("acme", 900.0), tenant("globex", 900.0)];
    let sent = monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, both)]);
    assert_eq!(sent, ["turn_latency_p95_high: firing [globex]; resolved []"]);
}

#[test]
fn a_not_equal_matcher_mutes_every_alert_except_the_value_it_names() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    monitor.silences.push(silence(&["tenant_id!=acme"], T0, T0 + HOUR));
    let three: &[Sample] = &[tenant("acme", 900.0), tenant("globex", 900.0), tenant("initech", 900.0)];
    let sent = monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, three)]);
    assert_eq!(sent, ["turn_latency_p95_high: firing [acme]; resolved []"]);
}

#[test]
fn every_matcher_of_a_silence_must_match_for_it_to_mute() {
    let latency = latency_rule();
    let cost = shipped("cost_per_call_high");
    let mut monitor = Monitor::new();
    monitor.silences.push(silence(&["tenant_id=acme", "alertname=cost_per_call_high"], T0, T0 + HOUR));
    let observed: &[(&Rule, &[Sample])] =
        &[(&latency, &[tenant("acme", 900.0)]), (&cost, &[tenant("acme", 0.5)])];
    let sent = monitor.ticks([T0, T0 + 10 * SECOND], observed);
    assert_eq!(sent, ["turn_latency_p95_high: firing [acme]; resolved []"]);
}

#[test]
fn a_silence_without_matchers_mutes_nothing() {
    let s = silence(&[], T0, T0 + HOUR);
    assert!(!s.mutes(&labels(&[("tenant_id", "acme")]), T0 + MINUTE));
}

#[test]
fn a_muted_alert_that_was_notified_before_still_gets_its_resolved_notice() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    monitor.ticks([T0, T0 + 10 * SECOND], &[(&rule, &[tenant("acme", 900.0)])]);
    monitor.silences.push(silence(&["tenant_id=acme"], T0 + 20 * SECOND, T0 + HOUR));

    let sent =
        monitor.ticks(every_10_s(T0 + 20 * SECOND, T0 + 6 * MINUTE), &[(&rule, &[tenant("acme", 900.0)])]);
    assert_eq!(sent, Vec::<String>::new(), "the repeat at +5 min is muted");
    let sent = monitor.tick(T0 + 7 * MINUTE, &[(&rule, &[])]);
    assert_eq!(sent, ["turn_latency_p95_high: firing []; resolved [acme]"]);
}

#[test]
fn a_muted_alert_that_was_never_notified_resolves_silently() {
    let rule = latency_rule();
    let mut monitor = Monitor::new();
    monitor.silences.push(silence(&["tenant_id=acme"], T0, T0 + HOUR));
    let mut sent = monitor.ticks(every_10_s(T0, T0 + MINUTE), &[(&rule, &[tenant("acme", 900.0)])]);
    sent.extend(monitor.ticks(every_10_s(T0 + 70 * SECOND, T0 + 2 * MINUTE), &[(&rule, &[])]));
    assert_eq!(sent, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// Inhibition.

/// Firing alerts of `rule` for `samples`, evaluated at T0.
fn firing_alerts(rule: &Rule, samples: &[Sample]) -> Vec<Alert> {
    let mut evaluator = Evaluator::default();
    evaluator.evaluate(rule, samples, T0);
    evaluator.alerts().cloned().collect()
}

#[test]
fn a_down_provider_mutes_the_latency_alerts_that_name_it_and_no_others() {
    let down = firing_alerts(&shipped("provider_down"), &[provider("openai", 300.0)]);
    let latency = firing_alerts(
        &latency_by_provider_rule(),
        &[latency_with_provider("acme", "openai", 1200.0), latency_with_provider("acme", "deepgram", 1100.0)],
    );
    let without_provider = firing_alerts(&latency_rule(), &[tenant("acme", 1200.0)]);
    let firing: Vec<&Alert> = down.iter().chain(&latency).chain(&without_provider).collect();
    let rules = default_inhibit_rules();

    let inhibited: Vec<String> = firing
        .iter()
        .filter(|a| is_inhibited(a, &firing, &rules))
        .map(|a| format!("{} {}", a.rule, who(a)))
        .collect();
    assert_eq!(inhibited, ["turn_latency_by_provider openai/acme"]);
}

#[test]
fn an_alert_without_the_provider_label_is_not_inhibited_even_by_a_source_also_without_it() {
    let down_somewhere = firing_alerts(&shipped("provider_down"), &[sample(&[], 300.0)]);
    let latency = firing_alerts(&latency_rule(), &[tenant("acme", 1200.0)]);
    let firing: Vec<&Alert> = down_somewhere.iter().chain(&latency).collect();
    assert!(!down_somewhere[0].labels.contains_key("provider"));
    assert!(!is_inhibited(&latency[0], &firing, &default_inhibit_rules()));
}

#[test]
fn the_provider_down_alert_does_not_inhibit_itself() {
    let down = firing_alerts(&shipped("provider_down"), &[provider("openai", 300.0)]);
    let firing: Vec<&Alert> = down.iter().collect();
    let everything_by_provider =
        InhibitRule { source: vec![], target: vec![], equal: vec!["provider".into()] };
    assert!(!is_inhibited(&down[0], &firing, &default_inhibit_rules()));
    assert!(!is_inhibited(&down[0], &firing, &[everything_by_provider]));
}

#[test]
fn a_latency_alert_is_not_inhibited_once_its_provider_is_back_up() {
    let latency =
        firing_alerts(&latency_by_provider_rule(), &[latency_with_provider("acme", "openai", 1200.0)]);
    let firing: Vec<&Alert> = latency.iter().collect();
    assert!(!is_inhibited(&latency[0], &firing, &default_inhibit_rules()));
}

#[test]
fn an_inhibited_latency_alert_is_not_notified_while_the_provider_down_alert_is() {
    let down_rule = shipped("provider_down");
    let latency = latency_by_provider_rule();
    let observed: &[(&Rule, &[Sample])] = &[
        (&down_rule, &[provider("openai", 300.0)]),
        (
            &latency,
            &[
                latency_with_provider("acme", "openai", 1200.0),
                latency_with_provider("acme", "deepgram", 1100.0),
            ],
        ),
    ];
    let mut monitor = Monitor::new();
    let mut sent = monitor.ticks([T0, T0 + 10 * SECOND], observed);
    sent.sort();
    assert_eq!(
        sent,
        [
            "provider_down: firing [openai]; resolved []",
            "turn_latency_by_provider: firing [deepgram/acme]; resolved []"
        ]
    );
}

/// The shipped inhibition targets latency alerts carrying `provider`: a latency rule on a
/// component the providers' usage events measure may group by provider; end-to-end turn
/// latency is measured per turn and has no provider.
#[test]
fn a_latency_rule_may_group_by_provider_so_the_shipped_inhibition_can_reach_it() {
    let result = configured(
        r#"
        [[rule]]
        name = "llm_ttft_by_provider"
        metric = "latency"
        component = "llm_ttft"
        threshold = 900
        group_by = ["tenant_id", "provider"]
        "#,
    );
    let rules = result.expect("a latency rule grouped by provider");
    let latency = rules.iter().find(|r| r.name == "llm_ttft_by_provider").expect("the new latency rule");
    assert!(latency.group_by.contains(&"provider".to_owned()));
    let refused = configured(
        r#"
        [[rule]]
        name = "turn_latency_p95_high"
        group_by = ["tenant_id", "provider"]
        "#,
    );
    assert!(refused.is_err(), "turn_e2e has no provider to group by");
}

// ---------------------------------------------------------------------------------------
// Matchers.

#[test]
fn matchers_parse_equal_and_not_equal_with_spaces_and_quotes_trimmed() {
    let cases = [
        ("tenant_id=acme", "tenant_id", "acme", true),
        ("provider!=openai", "provider", "openai", false),
        (" tenant_id = \"acme\" ", "tenant_id", "acme", true),
        ("breaker!=\"stt deepgram\"", "breaker", "stt deepgram", false),
        ("provider=", "provider", "", true),
    ];
    for (text, name, value, equal) in cases {
        assert_eq!(
            Matcher::parse(text),
            Ok(Matcher { name: name.into(), value: value.into(), equal }),
            "parsing {text:?}"
        );
    }
}

#[test]
fn a_matcher_without_an_operator_or_a_label_name_is_rejected() {
    for text in ["acme", "", "=acme", " != openai"] {
        let err = Matcher::parse(text).expect_err(text);
        assert!(err.contains(text.trim()) || text.is_empty(), "{text:?}: {err}");
    }
    assert!(Matcher::parse("acme").unwrap_err().contains("is not a matcher"));
    assert!(Matcher::parse("=acme").unwrap_err().contains("has no label name"));
}

#[test]
fn a_matcher_treats_a_missing_label_as_empty() {
    let no_provider = labels(&[("tenant_id", "acme")]);
    assert!(Matcher::parse("provider!=openai").unwrap().matches(&no_provider));
    assert!(Matcher::parse("provider=").unwrap().matches(&no_provider));
    assert!(!Matcher::parse("provider=openai").unwrap().matches(&no_provider));
}

// ---------------------------------------------------------------------------------------
// Fingerprints.

#[test]
fn the_same_labels_in_any_insertion_order_have_the_same_fingerprint() {
    let forward = labels(&[("alertname", "breaker_open"), ("tenant_id", "acme"), ("breaker", "stt")]);
    let backward = labels(&[("breaker", "stt"), ("tenant_id", "acme"), ("alertname", "breaker_open")]);
    assert_eq!(fingerprint(&forward), fingerprint(&backward));
    assert_eq!(fingerprint(&forward).len(), 16);
    assert!(fingerprint(&forward).chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn different_label_values_or_a_shifted_boundary_give_different_fingerprints() {
    let acme = fingerprint(&labels(&[("tenant_id", "acme")]));
    assert_ne!(acme, fingerprint(&labels(&[("tenant_id", "globex")])));
    assert_ne!(acme, fingerprint(&labels(&[("tenant", "acme")])));
    assert_ne!(acme, fingerprint(&labels(&[("tenant_id", "acme"), ("breaker", "stt")])));
    assert_ne!(fingerprint(&labels(&[("ab", "c")])), fingerprint(&labels(&[("a", "bc")])));
}

#[test]
fn an_alert_fingerprint_is_the_fingerprint_of_its_labels_and_ignores_its_value() {
    let rule = latency_rule();
    let low = firing_alerts(&rule, &[tenant("acme", 801.0)]);
    let high = firing_alerts(&rule, &[tenant("acme", 5000.0)]);
    assert_eq!(low[0].fingerprint, high[0].fingerprint);
    assert_eq!(low[0].fingerprint, fingerprint(&low[0].labels));
}

// ---------------------------------------------------------------------------------------
// Shipped rules.

/// Name, metric, threshold, window, group-by labels, severity.
type ShippedRule = (&'static str, Metric, f64, Duration, &'static [&'static str], Severity);

#[test]
fn six_rules_ship_with_the_briefs_thresholds() {
    let minutes = |m: u64| Duration::from_secs(60 * m);
    let expected: [ShippedRule; 6] = [
        (
            "turn_latency_p95_high",
            Metric::Latency { component: Component::TurnE2e, quantile: Quantile::P95 },
            800.0,
            minutes(5),
            &["tenant_id"],
            Severity::Critical,
        ),
        ("cost_per_call_high", Metric::CostPerCall, 0.20, minutes(60), &["tenant_id"], Severity::Warning),
        ("cost_per_minute_high", Metric::CostPerMinute, 0.20, minutes(60), &["tenant_id"], Severity::Warning),
        (
            "breaker_open",
            Metric::BreakerOpenSeconds,
            300.0,
            Duration::ZERO,
            &["tenant_id", "breaker"],
            Severity::Critical,
        ),
        (
            "worker_memory_high",
            Metric::WorkerMemoryPercent,
            80.0,
            Duration::ZERO,
            &["tenant_id", "worker_id"],
            Severity::Warning,
        ),
        (
            "provider_down",
            Metric::ProviderDownSeconds,
            120.0,
            Duration::ZERO,
            &["provider"],
            Severity::Critical,
        ),
    ];
    let rules = default_rules();
    assert_eq!(rules.len(), 6);
    for (rule, (name, metric, threshold, window, group_by, severity)) in rules.iter().zip(expected) {
        assert_eq!(rule.name, name);
        assert_eq!(rule.metric, metric, "{name}");
        assert_eq!(rule.threshold, threshold, "{name}");
        assert_eq!(rule.window, window, "{name}");
        assert_eq!(rule.group_by, group_by, "{name}");
        assert_eq!(rule.severity, severity, "{name}");
        assert_eq!(rule.for_, Duration::ZERO, "{name}");
        assert_eq!(rule.keep_firing_for, Duration::ZERO, "{name}");
        assert!(rule.tenants.is_empty() && rule.receivers.is_empty(), "{name}");
    }
    assert_eq!(COST_GUARDRAIL.0, 200_000_000, "$0.20 in nano-USD");
}

#[test]
fn no_texts_leave_the_shipped_rules_as_they_are() {
    assert_eq!(rules_with(&[]), Ok(default_rules()));
}

// ---------------------------------------------------------------------------------------
// Configured rules: override, disable, add.

#[test]
fn a_text_naming_a_shipped_rule_overrides_only_the_fields_it_sets_and_keeps_its_place() {
    let rules = configured(
        r#"
        [[rule]]
        name = "turn_latency_p95_high"
        threshold = 1000
        for = "2m"
        keep_firing_for = "90s"
        aggregation = "p99"
        receivers = ["pager"]
        "#,
    )
    .expect("a valid override");
    assert_eq!(rules.len(), 6);
    let rule = &rules[0];
    assert_eq!(rule.name, "turn_latency_p95_high");
    assert_eq!(rule.threshold, 1000.0);
    assert_eq!(rule.for_, Duration::from_secs(120));
    assert_eq!(rule.keep_firing_for, Duration::from_secs(90));
    assert_eq!(rule.metric, Metric::Latency { component: Component::TurnE2e, quantile: Quantile::P99 });
    assert_eq!(rule.receivers, ["pager"]);
    let shipped = latency_rule();
    assert_eq!(rule.window, shipped.window);
    assert_eq!(rule.group_by, shipped.group_by);
    assert_eq!(rule.severity, shipped.severity);
    assert_eq!(rule.summary, shipped.summary);
    assert_eq!(&rules[1..], &default_rules()[1..]);
}

#[test]
fn enabled_false_removes_a_shipped_rule() {
    let rules = configured("[[rule]]\nname = \"provider_down\"\nenabled = false").expect("a valid text");
    let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "turn_latency_p95_high",
            "cost_per_call_high",
            "cost_per_minute_high",
            "breaker_open",
            "worker_memory_high"
        ]
    );
}

#[test]
fn a_new_name_adds_a_rule_with_defaults_for_what_it_leaves_out() {
    let rules = configured(
        r#"
        [[rule]]
        name = "stt_latency_p99_high"
        metric = "latency"
        component = "stt"
        aggregation = "p99"
        threshold = 400
        window = "10m"
        "#,
    )
    .expect("a valid new rule");
    assert_eq!(rules.len(), 7);
    let rule = &rules[6];
    assert_eq!(rule.name, "stt_latency_p99_high");
    assert_eq!(rule.metric, Metric::Latency { component: Component::Stt, quantile: Quantile::P99 });
    assert_eq!(rule.threshold, 400.0);
    assert_eq!(rule.window, Duration::from_secs(600));
    assert_eq!(rule.for_, Duration::ZERO);
    assert_eq!(rule.keep_firing_for, Duration::ZERO);
    assert_eq!(rule.group_by, ["tenant_id"]);
    assert_eq!(rule.severity, Severity::Warning);
    assert!(rule.tenants.is_empty() && rule.receivers.is_empty());
}

#[test]
fn a_new_latency_rule_defaults_to_turn_e2e_p95_over_5_min() {
    let rule = rule("name = \"slow_turns\"\nmetric = \"latency\"\nthreshold = 1500");
    assert_eq!(rule.metric, Metric::Latency { component: Component::TurnE2e, quantile: Quantile::P95 });
    assert_eq!(rule.window, Duration::from_secs(300));
}

#[test]
fn overrides_disables_and_additions_apply_together() {
    let rules = configured(
        r#"
        [[rule]]
        name = "breaker_open"
        threshold = 60
        severity = "warning"

        [[rule]]
        name = "worker_memory_high"
        enabled = false

        [[rule]]
        name = "acme_cost"
        metric = "cost_per_call"
        threshold = 0.05
        tenants = ["acme"]
        "#,
    )
    .expect("valid texts");
    let summary: Vec<(&str, f64)> = rules.iter().map(|r| (r.name.as_str(), r.threshold)).collect();
    assert_eq!(
        summary,
        [
            ("turn_latency_p95_high", 800.0),
            ("cost_per_call_high", 0.2),
            ("cost_per_minute_high", 0.2),
            ("breaker_open", 60.0),
            ("provider_down", 120.0),
            ("acme_cost", 0.05),
        ]
    );
    assert_eq!(rules[3].severity, Severity::Warning);
    assert_eq!(rules[5].tenants, ["acme"]);
}

#[test]
fn an_unknown_field_in_a_rule_text_is_rejected_when_parsed() {
    let parsed = toml::from_str::<RuleText>("name = \"breaker_open\"\ntreshold = 60");
    let err = parsed.expect_err("a misspelt field");
    assert!(err.to_string().contains("treshold"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Configured rules: validation errors.

fn assert_rejected(body: &str, rule: &str, message_part: &str) {
    let err = rejected(body);
    assert_eq!(err.rule, rule, "{err}");
    assert!(err.message.contains(message_part), "expected `{message_part}` in `{}`", err.message);
    assert!(err.to_string().starts_with(&format!("alert rule `{rule}`: ")), "{err}");
}

#[test]
fn an_unknown_metric_is_rejected() {
    assert_rejected(
        "name = \"jitter_high\"\nmetric = \"jitter\"\nthreshold = 1",
        "jitter_high",
        "unknown metric `jitter`",
    );
}

#[test]
fn an_aggregation_other_than_p50_p95_p99_is_rejected() {
    assert_rejected(
        "name = \"turn_latency_p95_high\"\naggregation = \"p90\"",
        "turn_latency_p95_high",
        "aggregation `p90` is not one of p50, p95, p99",
    );
}

#[test]
fn an_unknown_latency_component_is_rejected() {
    assert_rejected(
        "name = \"asr\"\nmetric = \"latency\"\ncomponent = \"asr\"\nthreshold = 1",
        "asr",
        "unknown component `asr`",
    );
}

#[test]
fn grouping_by_a_label_the_metric_does_not_have_is_rejected() {
    assert_rejected(
        "name = \"cost_per_call_high\"\ngroup_by = [\"provider\"]",
        "cost_per_call_high",
        "cannot group cost_per_call by `provider`; it has tenant_id",
    );
    assert_rejected(
        "name = \"provider_down\"\ngroup_by = [\"tenant_id\"]",
        "provider_down",
        "cannot group provider_down_seconds by `tenant_id`",
    );
}

#[test]
fn a_negative_or_non_finite_threshold_is_rejected_and_zero_is_accepted() {
    assert_rejected("name = \"breaker_open\"\nthreshold = -1", "breaker_open", "must be a number ≥ 0");
    assert_rejected("name = \"breaker_open\"\nthreshold = nan", "breaker_open", "must be a number ≥ 0");
    assert_rejected("name = \"breaker_open\"\nthreshold = inf", "breaker_open", "must be a number ≥ 0");
    assert_eq!(rule("name = \"breaker_open\"\nthreshold = 0").threshold, 0.0);
}

#[test]
fn a_window_under_1_min_is_rejected_for_windowed_metrics_only() {
    assert_rejected(
        "name = \"turn_latency_p95_high\"\nwindow = \"30s\"",
        "turn_latency_p95_high",
        "window must be at least 1m",
    );
    assert_rejected(
        "name = \"cost_per_minute_high\"\nwindow = \"59999ms\"",
        "cost_per_minute_high",
        "at least 1m",
    );
    assert_eq!(rule("name = \"turn_latency_p95_high\"\nwindow = \"1m\"").window, Duration::from_secs(60));
    assert_eq!(rule("name = \"breaker_open\"\nwindow = \"0s\"").window, Duration::ZERO);
}

#[test]
fn a_new_rule_without_a_metric_or_a_threshold_is_rejected() {
    assert_rejected("name = \"mystery\"\nthreshold = 1", "mystery", "`metric` is required for a new rule");
    assert_rejected(
        "name = \"mystery\"\nmetric = \"cost_per_call\"",
        "mystery",
        "`threshold` is required for a new rule",
    );
}

#[test]
fn a_name_given_twice_is_rejected() {
    let err = configured(
        r#"
        [[rule]]
        name = "breaker_open"
        threshold = 60

        [[rule]]
        name = "breaker_open"
        threshold = 90
        "#,
    )
    .expect_err("a duplicate name");
    assert_eq!(err, RuleError { rule: "breaker_open".into(), message: "is defined twice".into() });
}

#[test]
fn enabled_false_naming_no_shipped_rule_is_rejected() {
    assert_rejected(
        "name = \"breaker_opn\"\nenabled = false",
        "breaker_opn",
        "`enabled = false` names no shipped rule",
    );
}

#[test]
fn component_or_aggregation_on_a_metric_other_than_latency_is_rejected() {
    assert_rejected(
        "name = \"cost_per_call_high\"\ncomponent = \"stt\"",
        "cost_per_call_high",
        "`component` and `aggregation` apply to latency rules, not cost_per_call",
    );
    assert_rejected(
        "name = \"gpu_memory\"\nmetric = \"worker_memory_percent\"\naggregation = \"p99\"\nthreshold = 90",
        "gpu_memory",
        "apply to latency rules, not worker_memory_percent",
    );
}

#[test]
fn a_blank_name_or_an_unreadable_duration_is_rejected() {
    assert_rejected("name = \"  \"\nmetric = \"latency\"\nthreshold = 1", "  ", "every rule needs a name");
    let err = rejected("name = \"breaker_open\"\nfor = \"soon\"");
    assert_eq!(err.rule, "breaker_open");
    assert!(err.message.starts_with("for: "), "{err}");
    let err = rejected("name = \"breaker_open\"\nkeep_firing_for = \"-5m\"");
    assert!(err.message.starts_with("keep_firing_for: "), "{err}");
}

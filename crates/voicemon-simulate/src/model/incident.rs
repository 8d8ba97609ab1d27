//! Provider incidents: one provider slows down for everyone, each tenant using it trips
//! its circuit breaker (open → half-open → closed), and requests fail meanwhile.

use super::fleet::{Provider, Stack, TenantSim};
use super::random::{exponential, uniform};
use super::{seconds_ms, Happening, Scope, TrafficModel};
use rand::Rng;
use serde_json::json;
use std::time::Duration;
use voicemon_core::event::{BreakerState, CallStatus, EndedBy, EventKind, PipelineComponent};

pub(super) const DEFAULT_INCIDENT_GAP: Duration = Duration::from_secs(10 * 60);

/// A provider that is slow right now, for every tenant.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slowdown {
    pub(super) provider: Provider,
    pub(super) factor: f64,
}

/// What an incident did to one turn.
pub(super) enum IncidentEffect {
    None,
    /// The request failed, the retry went through; the turn completes.
    Retried,
    /// The request failed and the call with it.
    CallFails(Provider),
}

impl TrafficModel {
    /// A provider slows down ×3–5 for every tenant; 10–40 s later each tenant using it
    /// trips its breaker, which stays open 30–120 s, then half-open 10–30 s, then closes.
    pub(super) fn incident_starts(&mut self, at_ms: i64) {
        if self.used_providers.is_empty() {
            return;
        }
        let provider = self.used_providers[self.rng.random_range(0..self.used_providers.len())];
        let factor = uniform(&mut self.rng, 3.0, 5.0);
        self.slowdown = Some(Slowdown { provider, factor });
        let open_at = at_ms + seconds_ms(uniform(&mut self.rng, 10.0, 40.0));
        let open_ms = seconds_ms(uniform(&mut self.rng, 30.0, 120.0));
        let half_open_ms = seconds_ms(uniform(&mut self.rng, 10.0, 30.0));
        let mut last_close = open_at;
        for tenant in self.tenants_using(provider) {
            let opened = open_at + self.rng.random_range(0..5_000);
            let closed = opened + open_ms + half_open_ms;
            self.schedule_breaker(opened, tenant, provider, BreakerState::Open);
            self.schedule_breaker(opened + open_ms, tenant, provider, BreakerState::HalfOpen);
            self.schedule_breaker(closed, tenant, provider, BreakerState::Closed);
            last_close = last_close.max(closed);
        }
        self.schedule(last_close + 1, Happening::IncidentEnds);
    }

    fn schedule_breaker(&mut self, at_ms: i64, tenant: usize, provider: Provider, state: BreakerState) {
        self.schedule(at_ms, Happening::BreakerChanges { tenant, provider, state });
    }

    fn tenants_using(&self, provider: Provider) -> Vec<usize> {
        let uses = |tenant: &TenantSim| tenant.agents.iter().any(|a| a.stack.providers().contains(&provider));
        (0..self.tenants.len()).filter(|&t| uses(&self.tenants[t])).collect()
    }

    pub(super) fn breaker_changes(
        &mut self,
        at_ms: i64,
        tenant: usize,
        provider: Provider,
        state: BreakerState,
    ) {
        if state == BreakerState::Open {
            self.open_breakers.insert((tenant, provider));
            self.stats.breaker_trips += 1;
        } else {
            self.open_breakers.remove(&(tenant, provider));
        }
        let scope = self.tenant_scope(tenant);
        let fields = json!({ "breaker": provider.name(), "state": state.as_str() });
        self.emit(at_ms, EventKind::CircuitBreakerChanged, &scope, fields);
    }

    pub(super) fn incident_ends(&mut self, at_ms: i64) {
        self.slowdown = None;
        if let Some(gap) = self.config.mean_incident_gap {
            let quiet_ms = exponential(&mut self.rng, gap.as_millis() as f64).max(60_000.0);
            self.schedule(at_ms + quiet_ms.round() as i64, Happening::IncidentStarts);
        }
    }

    /// While a provider the call uses is troubled, its requests fail: with the breaker
    /// open every turn sees a failure, which kills the call 2 % of the time (a retry or
    /// fallback saves the rest); while it is only slow, 15 % of turns see a failure that
    /// a retry absorbs.
    pub(super) fn incident_effect(
        &mut self,
        at_ms: i64,
        tenant: usize,
        scope: &Scope,
        stack: &Stack,
    ) -> IncidentEffect {
        let open = stack.providers().into_iter().find(|p| self.open_breakers.contains(&(tenant, *p)));
        if let Some(provider) = open {
            let error = if self.rng.random_bool(0.6) { "timeout" } else { "http_503" };
            self.emit_failed_request(at_ms, scope, provider, error);
            if self.rng.random_bool(0.02) {
                return IncidentEffect::CallFails(provider);
            }
            return IncidentEffect::Retried;
        }
        let slow = self.slowdown.filter(|slow| stack.providers().contains(&slow.provider));
        if let Some(slow) = slow {
            if self.rng.random_bool(0.15) {
                self.emit_failed_request(at_ms, scope, slow.provider, "timeout");
                return IncidentEffect::Retried;
            }
        }
        IncidentEffect::None
    }

    /// An incident killed the call: it fails, blamed on the provider, a moment later.
    pub(super) fn fail_call_on_incident(&mut self, at_ms: i64, key: u64, provider: Provider) {
        if let Some(call) = self.calls.get_mut(&key) {
            call.plan.status = CallStatus::Failed;
            call.plan.ended_reason = incident_reason(provider.component());
            call.plan.ended_by = EndedBy::Provider;
        }
        let after_ms = seconds_ms(uniform(&mut self.rng, 0.5, 2.0));
        self.schedule(at_ms + after_ms, Happening::CallEnds { call: key });
    }
}

/// The `ended_reason` of a call an incident at `component` killed.
fn incident_reason(component: PipelineComponent) -> &'static str {
    match component {
        PipelineComponent::Stt => "stt_error",
        PipelineComponent::Llm => "llm_timeout",
        PipelineComponent::Tts => "tts_error",
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{model, MINUTE_MS, START_MS};
    use voicemon_core::event::{Body, BreakerState};
    use voicemon_core::validate::parse_event;

    #[test]
    fn every_event_of_twenty_minutes_with_an_incident_passes_validation() {
        let mut model = model(11);
        let mut events = Vec::new();
        for minute in 1..=20 {
            let now_ms = START_MS + minute * MINUTE_MS;
            for event in model.events_until(now_ms) {
                let parsed = parse_event(&event.to_string(), now_ms)
                    .unwrap_or_else(|err| panic!("{event} is invalid: {err}"));
                assert!(parsed.envelope.timestamp_ms <= now_ms, "{event} is in the future");
                assert!(parsed.envelope.timestamp_ms >= START_MS, "{event} is before the start");
                events.push(parsed);
            }
        }
        let breaker_states: Vec<BreakerState> = events
            .iter()
            .filter_map(|e| match &e.body {
                Body::CircuitBreakerChanged(change) => Some(change.state),
                _ => None,
            })
            .collect();
        for state in BreakerState::ALL {
            assert!(breaker_states.contains(&state), "no breaker went {state:?} in 20 minutes");
        }
        let failed_request = |e: &voicemon_core::event::Event| match &e.body {
            Body::ProviderRequest(request) => !request.ok && request.error.is_some(),
            _ => false,
        };
        assert!(events.iter().any(failed_request), "no failed provider request during the incident");
        assert!(model.stats().breaker_trips > 0);
    }
}

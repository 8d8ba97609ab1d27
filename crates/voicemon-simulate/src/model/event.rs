//! Event building: the envelope every event shares (id, type, timestamp and the scope it
//! happened in), and `provider.request` events.

use super::fleet::Provider;
use super::random::uniform;
use super::{round1, TrafficModel};
use serde_json::{json, Map, Value};
use voicemon_core::event::EventKind;

/// Envelope fields an event inherits from where it happens.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    pub(super) tenant_id: String,
    pub(super) call_id: Option<String>,
    pub(super) agent_id: Option<String>,
    pub(super) objective: Option<&'static str>,
}

impl TrafficModel {
    /// Wraps `fields` in the envelope (a fresh id, the type, the time, the scope) and
    /// keeps the event for the next [`TrafficModel::events_until`].
    pub(super) fn emit(&mut self, at_ms: i64, kind: EventKind, scope: &Scope, fields: Value) {
        let mut event = Map::new();
        event.insert("id".into(), format!("sim-{}-{}", self.run_tag, self.next_event).into());
        event.insert("type".into(), kind.wire_name().into());
        event.insert("timestamp".into(), rfc3339_millis(at_ms).into());
        event.insert("tenant_id".into(), scope.tenant_id.clone().into());
        if let Some(call_id) = &scope.call_id {
            event.insert("call_id".into(), call_id.clone().into());
        }
        if let Some(agent_id) = &scope.agent_id {
            event.insert("agent_id".into(), agent_id.clone().into());
        }
        if let Some(objective) = scope.objective {
            event.insert("objective".into(), objective.into());
        }
        if let Value::Object(body) = fields {
            event.extend(body);
        }
        self.next_event += 1;
        self.stats.events += 1;
        self.out.push((at_ms, Value::Object(event)));
    }

    pub(super) fn tenant_scope(&self, tenant: usize) -> Scope {
        Scope {
            tenant_id: self.tenants[tenant].tenant_id.clone(),
            call_id: None,
            agent_id: None,
            objective: None,
        }
    }

    /// A `provider.request` that went through in `latency_ms`.
    pub(super) fn emit_request(&mut self, at_ms: i64, scope: &Scope, provider: Provider, latency_ms: f64) {
        self.emit_provider_request(at_ms, scope, provider, latency_ms, None);
    }

    /// A `provider.request` that failed with `error`: a timeout after 5–10 s, anything
    /// else within 250 ms.
    pub(super) fn emit_failed_request(&mut self, at_ms: i64, scope: &Scope, provider: Provider, error: &str) {
        let latency_ms = match error {
            "timeout" => uniform(&mut self.rng, 5_000.0, 10_000.0),
            _ => uniform(&mut self.rng, 20.0, 250.0),
        };
        self.emit_provider_request(at_ms, scope, provider, latency_ms, Some(error));
    }

    fn emit_provider_request(
        &mut self,
        at_ms: i64,
        scope: &Scope,
        provider: Provider,
        latency_ms: f64,
        error: Option<&str>,
    ) {
        let mut fields = json!({
            "provider": provider.name(),
            "component": provider.component().as_str(),
            "ok": error.is_none(),
            "latency_ms": round1(latency_ms),
        });
        if let Some(error) = error {
            fields["error"] = error.into();
        }
        self.emit(at_ms, EventKind::ProviderRequest, scope, fields);
    }
}

/// `2026-11-27T10:15:00.250Z`.
fn rfc3339_millis(at_ms: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

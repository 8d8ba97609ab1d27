//! Calls: Poisson arrivals spread over tenants and agents, a plan for how each call ends
//! (decided when it starts), and the `call.started` / `call.ended` events.

use super::random::{exponential, pick_weighted};
use super::worker::least_loaded;
use super::{Happening, Scope, TrafficModel};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;
use voicemon_core::event::{CallStatus, EndedBy, EventKind};

/// How a call is meant to end, decided when it starts (an incident may still fail it).
#[derive(Debug, Clone, Copy)]
pub(super) struct CallPlan {
    pub(super) status: CallStatus,
    pub(super) ended_reason: &'static str,
    pub(super) ended_by: EndedBy,
    /// The index of the turn at which the call ends (fails on, for failed calls).
    pub(super) last_turn: u32,
}

/// A call in progress.
pub(super) struct CallSim {
    pub(super) scope: Scope,
    pub(super) tenant: usize,
    pub(super) agent: usize,
    worker: usize,
    started_ms: i64,
    pub(super) plan: CallPlan,
    /// Tokens of the conversation so far, the prefix the provider may have cached.
    pub(super) context_tokens: u64,
}

impl TrafficModel {
    /// Schedules the next call arrival: the gaps of a Poisson process.
    pub(super) fn schedule_next_arrival(&mut self, after_ms: i64) {
        let per_minute = self.config.calls_per_minute;
        if !(per_minute.is_finite() && per_minute > 0.0) {
            return;
        }
        let gap_ms = exponential(&mut self.rng, 60_000.0 / per_minute).max(1.0);
        self.schedule(after_ms + gap_ms.round() as i64, Happening::CallArrives);
    }

    /// A call starts on the least-loaded worker of a tenant and agent picked by weight;
    /// its first turn is scheduled.
    pub(super) fn call_arrives(&mut self, at_ms: i64) {
        self.schedule_next_arrival(at_ms);
        let tenant = pick_weighted(&mut self.rng, &self.tenant_weights);
        let agent = pick_weighted(&mut self.rng, &self.tenants[tenant].agent_weights);
        let worker = least_loaded(&self.tenants[tenant].workers);
        let scope = self.call_scope(tenant, agent);
        let phone_share = self.tenants[tenant].agents[agent].kind.phone_share;
        let channel = if self.rng.random_bool(phone_share) { "phone" } else { "web" };
        self.emit(at_ms, EventKind::CallStarted, &scope, json!({ "channel": channel }));
        let plan = plan_call(&mut self.rng);
        let key = self.next_call;
        self.next_call += 1;
        self.tenants[tenant].workers[worker].active_calls += 1;
        self.stats.calls_started += 1;
        let call = CallSim { scope, tenant, agent, worker, started_ms: at_ms, plan, context_tokens: 0 };
        self.calls.insert(key, call);
        self.schedule_turn(at_ms, key, 0);
    }

    /// The scope of the next call: its tenant, id and agent, and an objective (the
    /// agent's main one 80 % of the time).
    fn call_scope(&mut self, tenant: usize, agent: usize) -> Scope {
        let objectives = self.tenants[tenant].agents[agent].kind.objectives;
        let objective = if self.rng.random_bool(0.8) { objectives[0] } else { objectives[1] };
        Scope {
            tenant_id: self.tenants[tenant].tenant_id.clone(),
            call_id: Some(format!("call-{}-{}", self.run_tag, self.next_call)),
            agent_id: Some(self.tenants[tenant].agents[agent].agent_id.clone()),
            objective: Some(objective),
        }
    }

    /// Emits `call.ended` as the plan says and frees the call's worker.
    pub(super) fn call_ends(&mut self, at_ms: i64, key: u64) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        if let Some(worker) = self.tenants[call.tenant].workers.get_mut(call.worker) {
            worker.active_calls = worker.active_calls.saturating_sub(1);
        }
        let duration_s = (at_ms - call.started_ms) as f64 / 1000.0;
        let fields = json!({
            "duration_s": duration_s,
            "status": call.plan.status.as_str(),
            "ended_reason": call.plan.ended_reason,
            "ended_by": call.plan.ended_by.as_str(),
        });
        self.emit(at_ms, EventKind::CallEnded, &call.scope, fields);
        self.count_ended(call.plan.status);
    }

    fn count_ended(&mut self, status: CallStatus) {
        self.stats.calls_ended += 1;
        match status {
            CallStatus::Completed => self.stats.completed += 1,
            CallStatus::Failed => self.stats.failed += 1,
            CallStatus::Abandoned => self.stats.abandoned += 1,
            CallStatus::Transferred => self.stats.transferred += 1,
        }
    }
}

/// Completed 88 %, failed 5 %, abandoned 5 %, transferred 2 %; 3–15 turns.
fn plan_call(rng: &mut StdRng) -> CallPlan {
    let turns = rng.random_range(3..=15u32);
    let roll: f64 = rng.random();
    let plan =
        |status, ended_reason, ended_by, last_turn| CallPlan { status, ended_reason, ended_by, last_turn };
    if roll < 0.88 {
        let (reason, by) = if rng.random_bool(0.55) {
            ("user_goodbye", EndedBy::User)
        } else {
            ("objective_met", EndedBy::Agent)
        };
        return plan(CallStatus::Completed, reason, by, turns - 1);
    }
    if roll < 0.93 {
        let reason = ["llm_timeout", "llm_timeout", "stt_error", "tts_error", "pipeline_error"]
            [rng.random_range(0..5)];
        let by = if reason == "pipeline_error" { EndedBy::System } else { EndedBy::Provider };
        return plan(CallStatus::Failed, reason, by, rng.random_range(0..turns));
    }
    if roll < 0.98 {
        return plan(CallStatus::Abandoned, "user_hangup", EndedBy::User, rng.random_range(0..turns.min(5)));
    }
    plan(CallStatus::Transferred, "transfer_to_human", EndedBy::Agent, turns - 1)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{count_type, model, timestamp_ms, MINUTE_MS, START_MS};
    use super::super::{ModelConfig, TrafficModel};
    use std::collections::{HashMap, HashSet};

    #[test]
    fn call_scoped_events_carry_agent_and_objective() {
        let events = model(5).events_until(START_MS + 3 * MINUTE_MS);
        for event in events.iter().filter(|e| e.get("call_id").is_some()) {
            assert!(event["agent_id"].is_string(), "{event} has no agent_id");
            assert!(event["objective"].is_string(), "{event} has no objective");
        }
        let tenants: HashSet<&str> = events.iter().filter_map(|e| e["tenant_id"].as_str()).collect();
        assert!(tenants.contains("tenant-01") && tenants.contains("tenant-05"), "{tenants:?}");
    }

    #[test]
    fn ended_plus_active_calls_equal_started_calls() {
        let mut model = model(17);
        let events = model.events_until(START_MS + 10 * MINUTE_MS);
        let started = count_type(&events, "call.started");
        let ended = count_type(&events, "call.ended");
        assert!(started > 400, "only {started} calls in 10 minutes at 60 a minute");
        assert_eq!(ended + model.active_calls(), started);
        assert_eq!(model.stats().calls_started as usize, started);
        assert_eq!(model.stats().calls_ended as usize, ended);
    }

    /// Statuses of the calls started in the first 4 minutes, all ended 4 minutes later
    /// (no call outlasts 4 minutes), with incidents off so only the plan decides.
    #[test]
    fn call_status_mix_is_roughly_as_planned() {
        let config = ModelConfig {
            calls_per_minute: 500.0,
            mean_incident_gap: None,
            ..ModelConfig::new(23, START_MS)
        };
        let mut model = TrafficModel::new(config);
        let events = model.events_until(START_MS + 8 * MINUTE_MS);
        let early_calls: HashSet<&str> = events
            .iter()
            .filter(|e| e["type"] == "call.started" && timestamp_ms(e) < START_MS + 4 * MINUTE_MS)
            .filter_map(|e| e["call_id"].as_str())
            .collect();
        let mut statuses: HashMap<&str, usize> = HashMap::new();
        for event in events.iter().filter(|e| e["type"] == "call.ended") {
            if early_calls.contains(event["call_id"].as_str().unwrap_or_default()) {
                *statuses.entry(event["status"].as_str().unwrap_or_default()).or_default() += 1;
            }
        }
        let total: usize = statuses.values().sum();
        assert_eq!(total, early_calls.len(), "some early calls never ended");
        assert!(total > 1_500, "only {total} calls");
        let share = |status: &str| statuses.get(status).copied().unwrap_or(0) as f64 / total as f64;
        assert!((share("completed") - 0.88).abs() < 0.025, "{statuses:?}");
        assert!((share("failed") - 0.05).abs() < 0.017, "{statuses:?}");
        assert!((share("abandoned") - 0.05).abs() < 0.017, "{statuses:?}");
        assert!((share("transferred") - 0.02).abs() < 0.011, "{statuses:?}");
    }

    #[test]
    fn call_duration_covers_its_turns() {
        let events = model(31).events_until(START_MS + 10 * MINUTE_MS);
        let mut started: HashMap<&str, i64> = HashMap::new();
        let mut last_turn: HashMap<&str, i64> = HashMap::new();
        for event in &events {
            let call = event["call_id"].as_str().unwrap_or_default();
            match event["type"].as_str() {
                Some("call.started") => drop(started.insert(call, timestamp_ms(event))),
                Some("turn.completed") => drop(last_turn.insert(call, timestamp_ms(event))),
                Some("call.ended") => {
                    let duration_ms = (event["duration_s"].as_f64().unwrap_or(-1.0) * 1000.0).round() as i64;
                    assert_eq!(started[call] + duration_ms, timestamp_ms(event), "{event}");
                    if let Some(turn) = last_turn.get(call) {
                        assert!(*turn <= timestamp_ms(event), "{event}");
                    }
                }
                _ => {}
            }
        }
    }

    #[test]
    fn no_calls_per_minute_means_only_heartbeats() {
        let config =
            ModelConfig { calls_per_minute: 0.0, mean_incident_gap: None, ..ModelConfig::new(1, START_MS) };
        let events = TrafficModel::new(config).events_until(START_MS + MINUTE_MS);
        assert!(!events.is_empty());
        assert!(events.iter().all(|e| e["type"] == "worker.heartbeat"));
    }
}

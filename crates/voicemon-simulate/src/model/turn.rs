//! Turns: one exchange of a call (the user speaks, the agent answers through its STT →
//! LLM → TTS stack), with its latencies, tokens and characters, and the usage and
//! provider-request events it leaves.

use super::fleet::{Service, Stack};
use super::incident::IncidentEffect;
use super::random::{lognormal, uniform};
use super::{clamp_latency, round1, seconds_ms, Happening, Scope, TrafficModel};
use rand::Rng;
use serde_json::{json, Value};
use voicemon_core::event::{CallStatus, EventKind, PipelineComponent};

/// Spoken characters per second of synthesized speech.
const CHARACTERS_PER_SECOND: f64 = 15.0;

/// Latencies of one turn, milliseconds.
#[derive(Debug, Clone, Copy)]
struct TurnTiming {
    stt_ms: f64,
    eou_ms: f64,
    llm_ttft_ms: f64,
    tts_ttfb_ms: f64,
    e2e_ms: f64,
}

/// Tokens of one LLM request.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    input: u64,
    cached: u64,
    output: u64,
}

impl TrafficModel {
    /// The next turn completes 3–12 s after the previous one (or after the greeting);
    /// the user spoke for 1–8 s of that gap.
    pub(super) fn schedule_turn(&mut self, after_ms: i64, call: u64, turn_index: u32) {
        let gap_s = uniform(&mut self.rng, 3.0, 12.0);
        let user_speech_s = uniform(&mut self.rng, 1.0, (gap_s - 1.0).min(8.0));
        let happening = Happening::Turn { call, turn_index, user_speech_s };
        self.schedule(after_ms + seconds_ms(gap_s), happening);
    }

    /// A turn's time has come: it completes, or the call fails here (as planned, or
    /// because of an incident); after the last turn the call ends.
    pub(super) fn turn(&mut self, at_ms: i64, key: u64, turn_index: u32, user_speech_s: f64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (scope, plan, tenant) = (call.scope.clone(), call.plan, call.tenant);
        let stack = self.tenants[tenant].agents[call.agent].stack;
        if plan.status == CallStatus::Failed && turn_index == plan.last_turn {
            self.fail_turn(at_ms, key, &scope, &stack, plan.ended_reason);
            return;
        }
        if let IncidentEffect::CallFails(provider) = self.incident_effect(at_ms, tenant, &scope, &stack) {
            self.fail_call_on_incident(at_ms, key, provider);
            return;
        }
        let agent_speech_s = self.complete_turn(at_ms, key, turn_index, user_speech_s, &scope, &stack);
        if turn_index < plan.last_turn {
            self.schedule_turn(at_ms, key, turn_index + 1);
            return;
        }
        let after_s = match plan.status {
            CallStatus::Abandoned => uniform(&mut self.rng, 1.0, 4.0),
            _ => agent_speech_s + uniform(&mut self.rng, 0.5, 2.0),
        };
        self.schedule(at_ms + seconds_ms(after_s), Happening::CallEnds { call: key });
    }

    /// A planned failure: the failing provider's request (if a provider is to blame),
    /// then the call ends a moment later.
    fn fail_turn(&mut self, at_ms: i64, key: u64, scope: &Scope, stack: &Stack, reason: &str) {
        if let Some((component, error)) = failure_cause(reason) {
            let provider = stack.service_for(component).provider;
            self.emit_failed_request(at_ms, scope, provider, error);
        }
        let after_ms = seconds_ms(uniform(&mut self.rng, 0.5, 3.0));
        self.schedule(at_ms + after_ms, Happening::CallEnds { call: key });
    }

    /// Emits one completed turn with its usage and provider requests; returns how long
    /// the agent then speaks, in seconds.
    fn complete_turn(
        &mut self,
        at_ms: i64,
        key: u64,
        turn_index: u32,
        user_speech_s: f64,
        scope: &Scope,
        stack: &Stack,
    ) -> f64 {
        let timing = self.sample_timing(stack);
        let context_tokens = self.calls.get(&key).map_or(0, |call| call.context_tokens);
        let tokens = self.sample_tokens(turn_index, context_tokens);
        if let Some(call) = self.calls.get_mut(&key) {
            call.context_tokens = tokens.input + tokens.output;
        }
        let characters = self.sample_characters(tokens.output);
        let user_stopped_ms = at_ms - timing.e2e_ms.round() as i64;
        self.emit_stt(user_stopped_ms + timing.stt_ms.round() as i64, scope, stack, &timing, user_speech_s);
        let llm_at_ms =
            user_stopped_ms + (timing.eou_ms.max(timing.stt_ms) + timing.llm_ttft_ms).round() as i64;
        self.emit_llm(llm_at_ms.min(at_ms), scope, stack, &timing, tokens);
        self.emit_tts(at_ms, scope, stack, &timing, characters);
        self.emit_turn_completed(at_ms, scope, turn_index, &timing);
        characters as f64 / CHARACTERS_PER_SECOND
    }

    fn emit_stt(&mut self, at_ms: i64, scope: &Scope, stack: &Stack, timing: &TurnTiming, audio_s: f64) {
        let fields = json!({
            "audio_seconds": round1(audio_s),
            "latency_ms": round1(timing.stt_ms),
        });
        let kind = EventKind::SttUsage;
        self.emit_usage(at_ms, kind, scope, stack.stt, fields, timing.stt_ms);
    }

    fn emit_llm(&mut self, at_ms: i64, scope: &Scope, stack: &Stack, timing: &TurnTiming, tokens: Tokens) {
        let fields = json!({
            "input_tokens": tokens.input,
            "cached_input_tokens": tokens.cached,
            "output_tokens": tokens.output,
            "ttft_ms": round1(timing.llm_ttft_ms),
        });
        let per_token_ms = uniform(&mut self.rng, 8.0, 16.0);
        let request_ms = clamp_latency(timing.llm_ttft_ms + tokens.output as f64 * per_token_ms);
        let kind = EventKind::LlmUsage;
        self.emit_usage(at_ms, kind, scope, stack.llm, fields, request_ms);
    }

    fn emit_tts(&mut self, at_ms: i64, scope: &Scope, stack: &Stack, timing: &TurnTiming, characters: u64) {
        let fields = json!({
            "characters": characters,
            "audio_seconds": round1(characters as f64 / CHARACTERS_PER_SECOND),
            "ttfb_ms": round1(timing.tts_ttfb_ms),
        });
        let per_character_ms = uniform(&mut self.rng, 0.5, 1.5);
        let request_ms = clamp_latency(timing.tts_ttfb_ms + characters as f64 * per_character_ms);
        let kind = EventKind::TtsUsage;
        self.emit_usage(at_ms, kind, scope, stack.tts, fields, request_ms);
    }

    /// A usage event of `service` (its provider and model, then `fields`), and the
    /// provider request behind it, which took `request_ms`.
    fn emit_usage(
        &mut self,
        at_ms: i64,
        kind: EventKind,
        scope: &Scope,
        service: Service,
        fields: Value,
        request_ms: f64,
    ) {
        let mut usage = json!({ "provider": service.provider.name(), "model": service.model });
        if let (Value::Object(usage), Value::Object(fields)) = (&mut usage, fields) {
            usage.extend(fields);
        }
        self.emit(at_ms, kind, scope, usage);
        self.emit_request(at_ms, scope, service.provider, request_ms);
    }

    fn emit_turn_completed(&mut self, at_ms: i64, scope: &Scope, turn_index: u32, timing: &TurnTiming) {
        let mut fields = json!({
            "turn_index": turn_index,
            "e2e_ms": round1(timing.e2e_ms),
            "stt_ms": round1(timing.stt_ms),
            "eou_ms": round1(timing.eou_ms),
            "llm_ttft_ms": round1(timing.llm_ttft_ms),
            "tts_ttfb_ms": round1(timing.tts_ttfb_ms),
            "interrupted": self.rng.random_bool(0.07),
        });
        let uses_tools = scope.objective.is_some_and(books_something);
        if uses_tools && self.rng.random_bool(0.3) {
            fields["tool_calls"] = json!(1);
        }
        self.emit(at_ms, EventKind::TurnCompleted, scope, fields);
    }

    /// End-to-end latency is lognormal (median 650 ms, P95 ≈ 1.1 s) split into its
    /// parts; each part then scales with its model's speed and any slowdown, and the
    /// end-to-end figure is the sum the caller actually heard.
    fn sample_timing(&mut self, stack: &Stack) -> TurnTiming {
        let base_ms = lognormal(&mut self.rng, 650.0, 0.32);
        let shares = self.sample_shares([0.30, 0.45, 0.17, 0.08]);
        let eou_ms = clamp_latency(base_ms * shares[0]);
        let stt_raw = eou_ms * uniform(&mut self.rng, 0.5, 1.0) * self.scale(stack.stt);
        let stt_ms = clamp_latency(stt_raw);
        let llm_ttft_ms = clamp_latency(base_ms * shares[1] * self.scale(stack.llm));
        let tts_ttfb_ms = clamp_latency(base_ms * shares[2] * self.scale(stack.tts));
        let overhead_ms = base_ms * shares[3];
        let e2e_ms = clamp_latency(eou_ms.max(stt_ms) + llm_ttft_ms + tts_ttfb_ms + overhead_ms);
        TurnTiming { stt_ms, eou_ms, llm_ttft_ms, tts_ttfb_ms, e2e_ms }
    }

    fn sample_shares(&mut self, base: [f64; 4]) -> [f64; 4] {
        let mut shares = base.map(|share| share * lognormal(&mut self.rng, 1.0, 0.25));
        let total: f64 = shares.iter().sum();
        shares.iter_mut().for_each(|share| *share /= total);
        shares
    }

    /// Latency multiplier of one service: its model's speed, times the slowdown factor
    /// while its provider has an incident.
    fn scale(&self, service: Service) -> f64 {
        match self.slowdown {
            Some(slow) if slow.provider == service.provider => service.speed * slow.factor,
            _ => service.speed,
        }
    }

    /// The prompt grows with the conversation (800 → 4000 tokens); after the first turn
    /// the provider usually serves the previous conversation from its prompt cache.
    fn sample_tokens(&mut self, turn_index: u32, context_tokens: u64) -> Tokens {
        let grown = 800.0 + 230.0 * f64::from(turn_index) + uniform(&mut self.rng, 0.0, 200.0);
        let input = (grown.round() as u64).clamp(800, 4000);
        let cache_hit = context_tokens >= 1024 && self.rng.random_bool(0.85);
        let cached = if cache_hit { (context_tokens / 128 * 128).min(input) } else { 0 };
        let output = (lognormal(&mut self.rng, 40.0, 0.5).round() as u64).clamp(20, 200);
        Tokens { input, cached, output }
    }

    /// What the agent says is what the LLM wrote: about four characters per token.
    fn sample_characters(&mut self, output_tokens: u64) -> u64 {
        let per_token = uniform(&mut self.rng, 3.6, 4.4);
        ((output_tokens as f64 * per_token).round() as u64).clamp(40, 400)
    }
}

/// Booking objectives call a calendar tool now and then.
fn books_something(objective: &str) -> bool {
    objective.contains("appointment") || objective.contains("booking")
}

/// The component and provider error behind a planned failure; `None` when no provider
/// is to blame.
fn failure_cause(reason: &str) -> Option<(PipelineComponent, &'static str)> {
    match reason {
        "llm_timeout" => Some((PipelineComponent::Llm, "timeout")),
        "stt_error" => Some((PipelineComponent::Stt, "connection_reset")),
        "tts_error" => Some((PipelineComponent::Tts, "http_500")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{model, MINUTE_MS, START_MS};
    use super::super::{ModelConfig, TrafficModel};
    use serde_json::Value;

    #[test]
    fn turn_latency_has_a_realistic_median_and_p95() {
        let config = ModelConfig { mean_incident_gap: None, ..ModelConfig::new(29, START_MS) };
        let events = TrafficModel::new(config).events_until(START_MS + 30 * MINUTE_MS);
        let mut e2e: Vec<f64> = events
            .iter()
            .filter(|e| e["type"] == "turn.completed")
            .filter_map(|e| e["e2e_ms"].as_f64())
            .collect();
        e2e.sort_by(f64::total_cmp);
        let quantile = |q: f64| e2e[((e2e.len() - 1) as f64 * q) as usize];
        assert!(e2e.len() > 5_000);
        assert!((580.0..720.0).contains(&quantile(0.5)), "median {}", quantile(0.5));
        assert!((950.0..1_300.0).contains(&quantile(0.95)), "p95 {}", quantile(0.95));
    }

    #[test]
    fn llm_cached_tokens_never_exceed_input_and_input_grows() {
        let events = model(37).events_until(START_MS + 5 * MINUTE_MS);
        let usage: Vec<&Value> = events.iter().filter(|e| e["type"] == "llm.usage").collect();
        assert!(usage.iter().all(|e| e["cached_input_tokens"].as_u64() <= e["input_tokens"].as_u64()));
        assert!(usage.iter().any(|e| e["cached_input_tokens"].as_u64() > Some(0)));
        let max_input = usage.iter().filter_map(|e| e["input_tokens"].as_u64()).max();
        assert!(max_input > Some(2_500), "{max_input:?}");
    }
}

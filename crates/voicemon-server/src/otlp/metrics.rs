//! STT audio that no span carries: LiveKit Agents counts it only in the OpenTelemetry
//! counter `lk.agents.usage.stt_audio_duration` (seconds, by `model_provider` and
//! `model_name`), which `POST /v1/metrics` turns into `stt.usage` lines. Every other
//! metric is ignored: the tokens and characters of LiveKit's other usage counters are
//! already read from its spans, and counting both would count twice.
//!
//! A point's call is the room its job stamps on it (`room_id`, on the point or the
//! resource), the same id its spans give the call.
//!
//! Counters arrive as DELTA points (each is what was added in its interval: stored as
//! is, its id made of the series and the interval, so a retry is harmless) or as
//! CUMULATIVE points (OpenTelemetry's default: the total since the series began).
//! A cumulative point counts its increase over the series' previous point, kept in
//! memory. A series voicemon first sees after its own start, which began before that
//! start, only sets the baseline: what it counted before a restart is not counted again
//! (what it added between the last point before the restart and the first after is not
//! counted either; delta temporality has neither gap).

use crate::otlp::map::{normalise_provider, Envelope};
use crate::otlp::span::string_attribute;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as PointValue;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use voicemon_core::validate::{prefix, WireEvent, MAX_ID_LEN};

/// The one counter read.
pub const STT_AUDIO: &str = "lk.agents.usage.stt_audio_duration";

/// Cumulative series remembered at most; beyond it the longest idle are forgotten.
const MAX_SERIES: usize = 100_000;

/// A cumulative series forgotten after this long without a point.
const SERIES_MEMORY_MS: i64 = 6 * 3600 * 1000;

/// What the points of one request came to.
#[derive(Debug, Default)]
pub struct Counted {
    pub events: Vec<WireEvent>,
    /// Points refused: no call to attach them to, or of a tenant the caller may not write.
    pub rejected: i64,
    pub message: String,
    /// The series these points moved and where they were before, to put back if the
    /// events cannot be stored ([`Counters::undo`]).
    moved: Vec<(String, Option<Last>)>,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    start_ns: u64,
    time_ns: u64,
    value: f64,
    seen_ms: i64,
}

/// The last point of every cumulative series seen.
#[derive(Debug)]
pub struct Counters {
    last: HashMap<String, Last>,
    /// When this process started, in unix nanoseconds.
    started_ns: u64,
}

impl Counters {
    pub fn new(started_ms: i64) -> Counters {
        Counters { last: HashMap::new(), started_ns: (started_ms.max(0) as u64) * 1_000_000 }
    }

    /// The `stt.usage` lines of `request`'s points for `tenant_of` each resource (the
    /// tenant, or why its points are refused).
    pub fn count(
        &mut self,
        request: &ExportMetricsServiceRequest,
        tenant_of: impl Fn(&[KeyValue]) -> Result<(String, Option<String>), String>,
        now_ms: i64,
    ) -> Counted {
        let mut counted = Counted::default();
        for resource in &request.resource_metrics {
            let resource_attributes =
                resource.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or_default();
            let sums = resource
                .scope_metrics
                .iter()
                .flat_map(|scope| &scope.metrics)
                .filter(|metric| metric.name == STT_AUDIO)
                .filter_map(|metric| match &metric.data {
                    Some(Data::Sum(sum)) => Some(sum),
                    _ => None,
                });
            let identity = tenant_of(resource_attributes);
            for sum in sums {
                let delta = sum.aggregation_temporality == AggregationTemporality::Delta as i32;
                for point in &sum.data_points {
                    let (tenant, agent) = match &identity {
                        Ok(identity) => identity,
                        Err(why) => {
                            refuse(&mut counted, why);
                            continue;
                        }
                    };
                    let text = |key: &str| {
                        string_attribute(&point.attributes, key)
                            .or_else(|| string_attribute(resource_attributes, key))
                    };
                    let Some(call_id) = text("room_id").or_else(|| text("gen_ai.conversation.id")) else {
                        refuse(&mut counted, "an STT audio point without room_id names no call");
                        continue;
                    };
                    let value = match point.value {
                        Some(PointValue::AsDouble(v)) => v,
                        Some(PointValue::AsInt(v)) => v as f64,
                        None => continue,
                    };
                    if !value.is_finite() || value < 0.0 {
                        refuse(&mut counted, "an STT audio point is negative or not a number");
                        continue;
                    }
                    let provider = text("model_provider").unwrap_or("livekit");
                    let model = text("model_name");
                    let series = format!(
                        "{tenant}\u{1f}{call_id}\u{1f}{}\u{1f}{provider}\u{1f}{}",
                        text("job_id").unwrap_or_default(),
                        model.unwrap_or_default()
                    );
                    let seconds = if delta {
                        Some(value)
                    } else {
                        counted.moved.push((series.clone(), self.last.get(&series).copied()));
                        self.increase(
                            &series,
                            point.start_time_unix_nano,
                            point.time_unix_nano,
                            value,
                            now_ms,
                        )
                    };
                    let Some(seconds) = seconds.filter(|s| *s > 0.0) else { continue };
                    let id = point_id(&series, point.start_time_unix_nano, point.time_unix_nano);
                    let envelope = Envelope {
                        tenant_id: tenant,
                        call_id: prefix(call_id, MAX_ID_LEN),
                        agent_id: agent.as_deref(),
                        trace_id: None,
                    };
                    let mut event =
                        envelope.event("stt.usage", id, (point.time_unix_nano / 1_000_000) as i64);
                    event.provider = Some(normalise_provider(provider));
                    event.model = model.map(|m| m.to_ascii_lowercase());
                    event.audio_seconds = Some(seconds);
                    counted.events.push(event);
                }
            }
        }
        self.forget_idle(now_ms);
        counted
    }

    /// Puts the series `counted` moved back where they were: its events were not stored,
    /// and the exporter's retry must count them again.
    pub fn undo(&mut self, counted: Counted) {
        for (series, before) in counted.moved.into_iter().rev() {
            match before {
                Some(last) => self.last.insert(series, last),
                None => self.last.remove(&series),
            };
        }
    }

    /// A cumulative point's increase over the series' last one; `None` for a point seen
    /// already (a retry), or the first point of a series that began before this process.
    fn increase(
        &mut self,
        series: &str,
        start_ns: u64,
        time_ns: u64,
        value: f64,
        now_ms: i64,
    ) -> Option<f64> {
        let point = Last { start_ns, time_ns, value, seen_ms: now_ms };
        match self.last.get_mut(series) {
            Some(last) if last.start_ns == start_ns => {
                if time_ns <= last.time_ns {
                    return None;
                }
                // A counter that went down was reset without a new start time.
                let increase = if value >= last.value { value - last.value } else { value };
                *last = point;
                Some(increase)
            }
            Some(last) => {
                *last = point;
                Some(value)
            }
            None => {
                self.last.insert(series.to_owned(), point);
                (start_ns >= self.started_ns).then_some(value)
            }
        }
    }

    fn forget_idle(&mut self, now_ms: i64) {
        self.last.retain(|_, last| last.seen_ms + SERIES_MEMORY_MS > now_ms);
        if self.last.len() > MAX_SERIES {
            let mut seen: Vec<i64> = self.last.values().map(|last| last.seen_ms).collect();
            let cut = self.last.len() - MAX_SERIES;
            let (_, oldest, _) = seen.select_nth_unstable(cut - 1);
            let before = *oldest;
            self.last.retain(|_, last| last.seen_ms > before);
        }
    }
}

fn refuse(counted: &mut Counted, why: &str) {
    counted.rejected += 1;
    if counted.message.is_empty() {
        counted.message = why.to_owned();
    }
}

/// A point's event id: its series and interval, hashed to a fixed length.
fn point_id(series: &str, start_ns: u64, time_ns: u64) -> String {
    let digest = Sha256::digest(format!("{series}\u{1f}{start_ns}\u{1f}{time_ns}").as_bytes());
    format!("otlp:metric:{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as ProtoValue;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };

    const START: u64 = 1_796_630_300_000_000_000;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(ProtoValue::StringValue(value.into())) }),
            ..KeyValue::default()
        }
    }

    fn request(
        temporality: AggregationTemporality,
        points: &[(u64, u64, f64)],
    ) -> ExportMetricsServiceRequest {
        let data_points = points
            .iter()
            .map(|(start, time, value)| NumberDataPoint {
                attributes: vec![
                    kv("model_provider", "deepgram"),
                    kv("model_name", "nova-3"),
                    kv("room_id", "RM_1"),
                ],
                start_time_unix_nano: *start,
                time_unix_nano: *time,
                value: Some(PointValue::AsDouble(*value)),
                ..NumberDataPoint::default()
            })
            .collect();
        let tokens = Metric { name: "lk.agents.usage.llm_input_tokens".into(), ..Metric::default() };
        let audio = Metric {
            name: STT_AUDIO.into(),
            data: Some(Data::Sum(Sum {
                data_points,
                aggregation_temporality: temporality as i32,
                is_monotonic: true,
            })),
            ..Metric::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics { metrics: vec![tokens, audio], ..ScopeMetrics::default() }],
                ..ResourceMetrics::default()
            }],
        }
    }

    fn acme(_: &[KeyValue]) -> Result<(String, Option<String>), String> {
        Ok(("acme".into(), None))
    }

    fn seconds(counted: &Counted) -> Vec<f64> {
        counted.events.iter().map(|e| e.audio_seconds.unwrap()).collect()
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn cumulative_points_count_their_increase_once() {
        let mut counters = Counters::new((START / 1_000_000) as i64 - 1000);
        let first = counters.count(
            &request(AggregationTemporality::Cumulative, &[(START, START + 60 * S, 1.5)]),
            acme,
            0,
        );
        assert_eq!(seconds(&first), [1.5]);
        let event = &first.events[0];
        assert_eq!(
            (event.call_id.as_deref(), event.provider.as_deref(), event.model.as_deref()),
            (Some("RM_1"), Some("deepgram"), Some("nova-3"))
        );
        // The next export, and a retry of it.
        let next = request(AggregationTemporality::Cumulative, &[(START, START + 120 * S, 4.0)]);
        assert_eq!(seconds(&counters.count(&next, acme, 1)), [2.5]);
        assert!(counters.count(&next, acme, 2).events.is_empty());
        // Not stored: the retry counts it again.
        let unstored = counters.count(
            &request(AggregationTemporality::Cumulative, &[(START, START + 180 * S, 5.0)]),
            acme,
            3,
        );
        assert_eq!(seconds(&unstored), [1.0]);
        counters.undo(unstored);
        let retried = counters.count(
            &request(AggregationTemporality::Cumulative, &[(START, START + 180 * S, 5.0)]),
            acme,
            4,
        );
        assert_eq!(seconds(&retried), [1.0]);
        // The counter restarted (a new start time).
        let restarted =
            request(AggregationTemporality::Cumulative, &[(START + 200 * S, START + 260 * S, 0.5)]);
        assert_eq!(seconds(&counters.count(&restarted, acme, 3)), [0.5]);
    }

    #[test]
    fn a_series_older_than_the_process_only_sets_the_baseline() {
        let mut counters = Counters::new((START / 1_000_000) as i64 + 30_000);
        let first = counters.count(
            &request(AggregationTemporality::Cumulative, &[(START, START + 60 * S, 9.0)]),
            acme,
            0,
        );
        assert!(first.events.is_empty(), "counted before the restart, maybe");
        let next = counters.count(
            &request(AggregationTemporality::Cumulative, &[(START, START + 120 * S, 10.0)]),
            acme,
            1,
        );
        assert_eq!(seconds(&next), [1.0]);
    }

    #[test]
    fn delta_points_are_stored_as_they_are_and_a_retry_keeps_its_id() {
        let mut counters = Counters::new(0);
        let body = request(
            AggregationTemporality::Delta,
            &[(START, START + 60 * S, 2.0), (START + 60 * S, START + 120 * S, 1.0)],
        );
        let once = counters.count(&body, acme, 0);
        let again = counters.count(&body, acme, 1);
        assert_eq!(seconds(&once), [2.0, 1.0]);
        let ids = |c: &Counted| c.events.iter().map(|e| e.id.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(ids(&once), ids(&again));
        assert_ne!(ids(&once)[0], ids(&once)[1]);
    }

    #[test]
    fn points_without_a_room_or_tenant_are_refused() {
        let mut counters = Counters::new(0);
        let mut body = request(AggregationTemporality::Delta, &[(START, START + 60 * S, 2.0)]);
        if let Some(Data::Sum(sum)) = &mut body.resource_metrics[0].scope_metrics[0].metrics[1].data {
            sum.data_points[0].attributes.retain(|kv| kv.key != "room_id");
        }
        let counted = counters.count(&body, acme, 0);
        assert_eq!((counted.events.len(), counted.rejected), (0, 1));
        assert!(counted.message.contains("room_id"), "{}", counted.message);
        let body = request(AggregationTemporality::Delta, &[(START, START + 60 * S, 2.0)]);
        let counted = counters.count(&body, |_| Err("name the tenant".into()), 0);
        assert_eq!((counted.rejected, counted.message.as_str()), (1, "name the tenant"));
    }
}

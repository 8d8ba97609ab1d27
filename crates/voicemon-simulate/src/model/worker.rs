//! Workers: the processes that host calls, each sending a heartbeat every 10 s with its
//! memory, CPU and active calls.

use super::random::uniform;
use super::{round1, Happening, TrafficModel};
use rand::rngs::StdRng;
use serde_json::json;
use voicemon_core::event::EventKind;

pub(super) const HEARTBEAT_EVERY_MS: i64 = 10_000;
const MEMORY_LIMIT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

pub(super) struct WorkerSim {
    worker_id: String,
    pub(super) active_calls: u32,
    base_memory_bytes: f64,
}

pub(super) fn build_worker(rng: &mut StdRng, index: usize) -> WorkerSim {
    WorkerSim {
        worker_id: format!("worker-{}", index + 1),
        active_calls: 0,
        base_memory_bytes: uniform(rng, 280.0, 420.0) * MIB,
    }
}

/// The worker with the fewest active calls (the first of those, on a tie).
pub(super) fn least_loaded(workers: &[WorkerSim]) -> usize {
    (0..workers.len()).min_by_key(|&w| (workers[w].active_calls, w)).unwrap_or(0)
}

impl TrafficModel {
    pub(super) fn heartbeat(&mut self, at_ms: i64, tenant: usize, worker: usize) {
        self.schedule(at_ms + HEARTBEAT_EVERY_MS, Happening::Heartbeat { tenant, worker });
        let (worker_id, active_calls, base_memory) = {
            let w = &self.tenants[tenant].workers[worker];
            (w.worker_id.clone(), w.active_calls, w.base_memory_bytes)
        };
        let per_call_mib = uniform(&mut self.rng, 25.0, 35.0);
        let memory = base_memory
            + f64::from(active_calls) * per_call_mib * MIB
            + uniform(&mut self.rng, -8.0, 8.0) * MIB;
        let memory_used_bytes = (memory.max(0.0) as u64).min(MEMORY_LIMIT_BYTES);
        let cpu = 3.0
            + f64::from(active_calls) * uniform(&mut self.rng, 5.0, 8.0)
            + uniform(&mut self.rng, 0.0, 4.0);
        let fields = json!({
            "worker_id": worker_id,
            "memory_used_bytes": memory_used_bytes,
            "memory_limit_bytes": MEMORY_LIMIT_BYTES,
            "cpu_percent": round1(cpu.clamp(0.0, 400.0)),
            "active_calls": active_calls,
        });
        let scope = self.tenant_scope(tenant);
        self.emit(at_ms, EventKind::WorkerHeartbeat, &scope, fields);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{model, MINUTE_MS, START_MS};
    use serde_json::Value;
    use std::collections::HashSet;

    #[test]
    fn heartbeats_report_each_workers_own_active_calls() {
        let mut model = model(19);
        let events = model.events_until(START_MS + 5 * MINUTE_MS);
        let heartbeats: Vec<&Value> = events.iter().filter(|e| e["type"] == "worker.heartbeat").collect();
        let workers: HashSet<(String, String)> =
            heartbeats.iter().map(|e| (e["tenant_id"].to_string(), e["worker_id"].to_string())).collect();
        // Every worker beats every 10 s: 30 beats each in 5 minutes.
        assert_eq!(heartbeats.len(), workers.len() * 30);
        let busiest = heartbeats.iter().filter_map(|e| e["active_calls"].as_u64()).max();
        assert!(busiest.is_some_and(|calls| calls > 0));
        let total_active: u32 = model.tenants.iter().flat_map(|t| &t.workers).map(|w| w.active_calls).sum();
        assert_eq!(total_active as usize, model.active_calls());
    }
}

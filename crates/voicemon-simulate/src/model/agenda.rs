//! The agenda: happenings waiting for their simulated instant, earliest first (ties in
//! the order they were scheduled), and the part of the model each one runs.

use super::fleet::Provider;
use super::TrafficModel;
use std::cmp::Ordering;
use voicemon_core::event::BreakerState;

/// Something that happens at a simulated instant and emits events.
#[derive(Debug, Clone, Copy)]
pub(super) enum Happening {
    CallArrives,
    Turn { call: u64, turn_index: u32, user_speech_s: f64 },
    CallEnds { call: u64 },
    Heartbeat { tenant: usize, worker: usize },
    IncidentStarts,
    BreakerChanges { tenant: usize, provider: Provider, state: BreakerState },
    IncidentEnds,
}

/// A happening in the queue; `seq` keeps ties in the order they were scheduled.
pub(super) struct Scheduled {
    pub(super) at_ms: i64,
    seq: u64,
    pub(super) happening: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Reversed, so the `BinaryHeap` pops the earliest happening first.
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

impl TrafficModel {
    pub(super) fn schedule(&mut self, at_ms: i64, happening: Happening) {
        self.next_seq += 1;
        self.queue.push(Scheduled { at_ms, seq: self.next_seq, happening });
    }

    /// Runs a happening whose time has come.
    pub(super) fn handle(&mut self, at_ms: i64, happening: Happening) {
        match happening {
            Happening::CallArrives => self.call_arrives(at_ms),
            Happening::Turn { call, turn_index, user_speech_s } => {
                self.turn(at_ms, call, turn_index, user_speech_s)
            }
            Happening::CallEnds { call } => self.call_ends(at_ms, call),
            Happening::Heartbeat { tenant, worker } => self.heartbeat(at_ms, tenant, worker),
            Happening::IncidentStarts => self.incident_starts(at_ms),
            Happening::BreakerChanges { tenant, provider, state } => {
                self.breaker_changes(at_ms, tenant, provider, state)
            }
            Happening::IncidentEnds => self.incident_ends(at_ms),
        }
    }
}

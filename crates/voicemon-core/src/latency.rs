//! Latency components and the observations each event contributes to them.

use crate::event::{Body, Envelope, Event};
use hashbrown::{DefaultHashBuilder, HashTable};
use serde::Serialize;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

/// A latency the API answers for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// User stopped speaking → agent started speaking, as the caller hears it.
    TurnE2e,
    Stt,
    /// End-of-utterance decision.
    Eou,
    LlmTtft,
    TtsTtfb,
}

impl Component {
    pub const ALL: [Component; 5] =
        [Component::TurnE2e, Component::Stt, Component::Eou, Component::LlmTtft, Component::TtsTtfb];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::TurnE2e => "turn_e2e",
            Component::Stt => "stt",
            Component::Eou => "eou",
            Component::LlmTtft => "llm_ttft",
            Component::TtsTtfb => "tts_ttfb",
        }
    }

    pub fn parse(text: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// Where an observation came from. `turn.completed` measures each component of one turn;
/// usage events measure one provider request and carry the provider and model.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Turn,
    Usage,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Turn => "turn",
            Source::Usage => "usage",
        }
    }

    pub fn parse(text: &str) -> Option<Source> {
        [Source::Turn, Source::Usage].into_iter().find(|s| s.as_str() == text)
    }
}

/// The dimensions a latency rollup is kept by: one series.
///
/// Interned: every key of the same fields is the same allocation, as long as one of them
/// lives ([`SeriesKey::intern`]). So a key is a pointer: it clones without copying its
/// text, compares equal by address and hashes a number computed once. Derived data holds
/// tens of thousands of (series, minute) entries and folds batches into them many times a
/// second; with six strings a key, comparing and copying them was a fifth of the server's
/// CPU on hour-spread ingest. Keys order by their fields, so rows are still written in one
/// order by every writer.
#[derive(Clone)]
pub struct SeriesKey(Arc<Interned>);

/// What a [`SeriesKey`] names (its fields, read through the key).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesFields {
    pub tenant_id: String,
    pub component: Component,
    pub source: Source,
    /// Empty when the event named none.
    pub agent_id: String,
    pub provider: String,
    pub model: String,
}

impl SeriesFields {
    /// The fields as text, in this order: tenant, component, source, agent, provider,
    /// model (the rollup tables' key columns; the journal's).
    pub fn texts(&self) -> [&str; 6] {
        [
            &self.tenant_id,
            self.component.as_str(),
            self.source.as_str(),
            &self.agent_id,
            &self.provider,
            &self.model,
        ]
    }
}

/// The interned fields: the fields and their hash, computed once.
struct Interned {
    fields: SeriesFields,
    hash: u64,
}

impl SeriesKey {
    /// The key of these fields: the one that lives, or a new one.
    pub fn intern(fields: SeriesKeyRef<'_>) -> SeriesKey {
        INTERNER.intern(fields)
    }

    /// [`SeriesKey::intern`] of owned fields (decoded, or in tests).
    pub fn new(
        tenant_id: &str,
        component: Component,
        source: Source,
        agent_id: &str,
        provider: &str,
        model: &str,
    ) -> SeriesKey {
        SeriesKey::intern(SeriesKeyRef { tenant_id, component, source, agent_id, provider, model })
    }
}

impl std::ops::Deref for SeriesKey {
    type Target = SeriesFields;

    fn deref(&self) -> &SeriesFields {
        &self.0.fields
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &SeriesKey) -> bool {
        // Interned: equal fields are one allocation.
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SeriesKey {}

impl std::hash::Hash for SeriesKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl PartialOrd for SeriesKey {
    fn partial_cmp(&self, other: &SeriesKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SeriesKey {
    fn cmp(&self, other: &SeriesKey) -> std::cmp::Ordering {
        if self == other {
            return std::cmp::Ordering::Equal;
        }
        (**self).cmp(&**other)
    }
}

impl std::fmt::Debug for SeriesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// A [`SeriesKey`]'s fields borrowed from an event: what is looked up to intern one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesKeyRef<'a> {
    pub tenant_id: &'a str,
    pub component: Component,
    pub source: Source,
    /// Empty when the event named none.
    pub agent_id: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
}

impl<'a> SeriesKeyRef<'a> {
    fn of(
        envelope: &'a Envelope,
        component: Component,
        source: Source,
        provider: &'a str,
        model: Option<&'a str>,
    ) -> SeriesKeyRef<'a> {
        SeriesKeyRef {
            tenant_id: &envelope.tenant_id,
            component,
            source,
            agent_id: envelope.agent_id.as_deref().unwrap_or_default(),
            provider,
            model: model.unwrap_or_default(),
        }
    }

    /// The interned key of these fields.
    pub fn to_key(&self) -> SeriesKey {
        SeriesKey::intern(*self)
    }

    /// Whether `fields` are these.
    fn is(&self, fields: &SeriesFields) -> bool {
        self.component == fields.component
            && self.source == fields.source
            && self.tenant_id == fields.tenant_id
            && self.agent_id == fields.agent_id
            && self.provider == fields.provider
            && self.model == fields.model
    }
}

/// The one table of series keys. A key only the table holds (no pending data, no read
/// holds it) is freed by a sweep when the table has doubled since the last one, so it
/// holds at most about twice the live series. (Strong references, not weak ones: a lookup
/// compares fields without touching a reference count.)
static INTERNER: Interner = Interner { table: Mutex::new(None) };

struct Interner {
    table: Mutex<Option<Table>>,
}

struct Table {
    keys: HashTable<Arc<Interned>>,
    hasher: DefaultHashBuilder,
    sweep_at: usize,
}

/// Entries the table holds before its first sweep.
const FIRST_SWEEP: usize = 1024;

impl Interner {
    fn intern(&self, fields: SeriesKeyRef<'_>) -> SeriesKey {
        // The table is left whole by every holder (nothing here panics mid-change).
        let mut guard = self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let table = guard.get_or_insert_with(|| Table {
            keys: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            sweep_at: FIRST_SWEEP,
        });
        let hash = table.hasher.hash_one(fields);
        if let Some(live) = table.keys.find(hash, |live| live.hash == hash && fields.is(&live.fields)) {
            return SeriesKey(Arc::clone(live));
        }
        let key = Arc::new(Interned {
            fields: SeriesFields {
                tenant_id: fields.tenant_id.to_owned(),
                component: fields.component,
                source: fields.source,
                agent_id: fields.agent_id.to_owned(),
                provider: fields.provider.to_owned(),
                model: fields.model.to_owned(),
            },
            hash,
        });
        if table.keys.len() >= table.sweep_at {
            // Under the lock, a key only the table holds cannot be cloned by anyone else.
            table.keys.retain(|key| Arc::strong_count(key) > 1);
            table.sweep_at = (table.keys.len() * 2).max(FIRST_SWEEP);
        }
        table.keys.insert_unique(hash, Arc::clone(&key), |key| key.hash);
        SeriesKey(key)
    }
}

/// One latency value at one time for one series, borrowed from its event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation<'a> {
    pub key: SeriesKeyRef<'a>,
    pub timestamp_ms: i64,
    pub value_ms: f64,
}

/// The latency observations an event contributes (none for most types), without copying
/// any of its text.
pub fn observations(event: &Event) -> impl Iterator<Item = Observation<'_>> {
    let envelope = &event.envelope;
    let make = |component, source, provider, model, value_ms| {
        observation(envelope, SeriesKeyRef::of(envelope, component, source, provider, model), value_ms)
    };
    let turn = |component, value| make(component, Source::Turn, "", None, value);
    // A usage line has one latency; the array keeps a turn's five.
    let usage = |component, provider, model, value| {
        [make(component, Source::Usage, provider, model, value), None, None, None, None]
    };
    let found = match &event.body {
        Body::TurnCompleted(t) => [
            turn(Component::TurnE2e, Some(t.e2e_ms)),
            turn(Component::Stt, t.stt_ms),
            turn(Component::Eou, t.eou_ms),
            turn(Component::LlmTtft, t.llm_ttft_ms),
            turn(Component::TtsTtfb, t.tts_ttfb_ms),
        ],
        Body::SttUsage(u) => usage(Component::Stt, &u.provider, u.model.as_deref(), u.latency_ms),
        Body::LlmUsage(u) => usage(Component::LlmTtft, &u.provider, Some(&u.model), u.ttft_ms),
        Body::TtsUsage(u) => usage(Component::TtsTtfb, &u.provider, u.model.as_deref(), u.ttfb_ms),
        _ => [None; 5],
    };
    found.into_iter().flatten()
}

fn observation<'a>(
    envelope: &Envelope,
    key: SeriesKeyRef<'a>,
    value_ms: Option<f64>,
) -> Option<Observation<'a>> {
    Some(Observation { key, timestamp_ms: envelope.timestamp_ms, value_ms: value_ms? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(tenant_id: &str) -> SeriesKeyRef<'_> {
        SeriesKeyRef {
            tenant_id,
            component: Component::TurnE2e,
            source: Source::Turn,
            agent_id: "support-bot",
            provider: "",
            model: "",
        }
    }

    fn entries(interner: &Interner) -> usize {
        interner.table.lock().unwrap().as_ref().map_or(0, |table| table.keys.len())
    }

    #[test]
    fn equal_fields_are_one_key_whichever_thread_interns_them() {
        let keys: Vec<SeriesKey> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8).map(|_| scope.spawn(|| fields("acme").to_key())).collect();
            threads.into_iter().map(|thread| thread.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|key| Arc::ptr_eq(&key.0, &keys[0].0)), "one allocation");
        let distinct: std::collections::HashSet<SeriesKey> = keys.iter().cloned().collect();
        assert_eq!(distinct.len(), 1);
        assert_eq!(keys[0].tenant_id, "acme");
        assert_ne!(keys[0], fields("globex").to_key());
        let other_component = SeriesKey::new("acme", Component::Stt, Source::Turn, "support-bot", "", "");
        assert_ne!(keys[0], other_component, "every field names the series");
    }

    #[test]
    fn keys_order_by_their_fields() {
        let names = ["t09", "t10", "acme", "globex", "t00"];
        let mut keys: Vec<SeriesKey> = names.iter().map(|name| fields(name).to_key()).collect();
        keys.sort();
        let sorted: Vec<&str> = keys.iter().map(|key| key.tenant_id.as_str()).collect();
        assert_eq!(sorted, ["acme", "globex", "t00", "t09", "t10"]);
        let by_component = |component| SeriesKey::new("acme", component, Source::Usage, "", "p", "m");
        assert!(by_component(Component::TurnE2e) < by_component(Component::Stt), "the fields' order");
    }

    #[test]
    fn a_series_no_one_holds_is_swept_and_a_held_one_stays_the_same_key() {
        let interner = Interner { table: Mutex::new(None) };
        let held = interner.intern(fields("held"));
        let names: Vec<String> = (1..FIRST_SWEEP).map(|n| format!("t{n}")).collect();
        for name in &names {
            drop(interner.intern(fields(name)));
        }
        assert_eq!(entries(&interner), FIRST_SWEEP, "dead entries wait for the sweep");
        let after = interner.intern(fields("after"));
        assert_eq!(entries(&interner), 2, "the sweep kept the held key and added the new one");
        assert!(Arc::ptr_eq(&interner.intern(fields("held")).0, &held.0), "still the one key");
        let again = interner.intern(fields("t1"));
        assert_eq!(again.tenant_id, "t1", "a freed series is interned anew");
        assert_ne!(again, after);
    }
}

//! The published contract agrees with the validator: the examples in `examples/events/`
//! are valid, `schema/events.v1.schema.json` has exactly the fields and required lists
//! that `validate.rs` has, and `docs/events.md` names every type and field.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use voicemon_core::body::{for_each_event, Framing};
use voicemon_core::event::{BreakerState, CallStatus, EndedBy, Event, EventKind, PipelineComponent};
use voicemon_core::validate::{self, allowed_type_fields, parse_event};

/// 2026-11-27T12:00:00Z; the examples are stamped earlier that day.
const NOW_MS: i64 = 1_795_780_800_000;

/// The envelope fields every type allows.
const ENVELOPE: [&str; 9] =
    ["id", "type", "timestamp", "tenant_id", "call_id", "trace_id", "agent_id", "objective", "attributes"];

/// What `validate.rs` requires of each type, envelope included, written out by hand from
/// reading it so that the schema and the validator are both checked against it.
fn required_fields(kind: EventKind) -> &'static [&'static str] {
    match kind {
        EventKind::CallStarted => &["id", "type", "timestamp", "tenant_id", "call_id"],
        EventKind::CallEnded => &["id", "type", "timestamp", "tenant_id", "call_id", "duration_s", "status"],
        EventKind::TurnCompleted => {
            &["id", "type", "timestamp", "tenant_id", "call_id", "turn_index", "e2e_ms"]
        }
        EventKind::SttUsage => {
            &["id", "type", "timestamp", "tenant_id", "call_id", "provider", "audio_seconds"]
        }
        EventKind::LlmUsage => &[
            "id",
            "type",
            "timestamp",
            "tenant_id",
            "call_id",
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
        ],
        EventKind::TtsUsage => &["id", "type", "timestamp", "tenant_id", "call_id", "provider", "characters"],
        EventKind::ProviderRequest => {
            &["id", "type", "timestamp", "tenant_id", "provider", "component", "ok"]
        }
        EventKind::CircuitBreakerChanged => &["id", "type", "timestamp", "tenant_id", "breaker", "state"],
        EventKind::WorkerHeartbeat => &[
            "id",
            "type",
            "timestamp",
            "tenant_id",
            "worker_id",
            "memory_used_bytes",
            "memory_limit_bytes",
            "cpu_percent",
            "active_calls",
        ],
    }
}

fn all_fields(kind: EventKind) -> BTreeSet<&'static str> {
    ENVELOPE.iter().chain(allowed_type_fields(kind)).copied().collect()
}

fn read(relative: &str) -> String {
    let path = format!("{}/../../{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

fn example_text(kind: EventKind) -> String {
    read(&format!("examples/events/{}.json", kind.wire_name()))
}

fn example_object(kind: EventKind) -> Map<String, Value> {
    match serde_json::from_str(&example_text(kind)) {
        Ok(Value::Object(object)) => object,
        other => panic!("the {} example is not a JSON object: {other:?}", kind.wire_name()),
    }
}

fn parse_object(object: &Map<String, Value>) -> Result<Event, validate::EventError> {
    parse_event(&Value::Object(object.clone()).to_string(), NOW_MS)
}

fn schema() -> Value {
    serde_json::from_str(&read("schema/events.v1.schema.json")).expect("the schema is JSON")
}

/// The schema branch for `kind`, found through the top-level `oneOf`.
fn schema_branch(schema: &Value, kind: EventKind) -> Value {
    let branches = schema["oneOf"].as_array().expect("the schema has a oneOf");
    branches
        .iter()
        .map(|branch| resolve(schema, branch))
        .find(|branch| branch["properties"]["type"]["const"] == kind.wire_name())
        .unwrap_or_else(|| panic!("the schema has no branch for {}", kind.wire_name()))
}

fn resolve(schema: &Value, node: &Value) -> Value {
    match node["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            let target = schema.pointer(pointer).unwrap_or_else(|| panic!("dangling {reference}"));
            resolve(schema, target)
        }
        None => node.clone(),
    }
}

fn string_set(value: &Value) -> BTreeSet<String> {
    let items = value.as_array().unwrap_or_else(|| panic!("not an array: {value}"));
    items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect()
}

fn owned(names: impl IntoIterator<Item = &'static str>) -> BTreeSet<String> {
    names.into_iter().map(str::to_owned).collect()
}

#[test]
fn every_type_has_a_valid_example_of_that_type() {
    for kind in EventKind::ALL {
        let event = parse_event(&example_text(kind), NOW_MS)
            .unwrap_or_else(|err| panic!("the {} example is invalid: {err}", kind.wire_name()));
        assert_eq!(event.kind(), kind);
    }
}

#[test]
fn every_example_file_is_named_after_its_type_and_valid() {
    let dir = format!("{}/../../examples/events", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).expect("examples/events exists") {
        let name = entry.expect("a directory entry").file_name().into_string().expect("UTF-8");
        if name.ends_with(".ndjson") {
            continue;
        }
        let wire = name.strip_suffix(".json").unwrap_or_else(|| panic!("stray file {name}"));
        let kind = EventKind::from_wire_name(wire).unwrap_or_else(|| panic!("{name} names no type"));
        let event = parse_event(&read(&format!("examples/events/{name}")), NOW_MS)
            .unwrap_or_else(|err| panic!("{name} is invalid: {err}"));
        assert_eq!(event.kind(), kind, "{name}");
    }
}

#[test]
fn the_ndjson_example_is_one_whole_valid_call() {
    let body = read("examples/events/call.ndjson");
    let mut outcomes = Vec::new();
    for_each_event(body.as_bytes(), Framing::Ndjson, NOW_MS, |outcome| outcomes.push(outcome))
        .expect("the body is NDJSON");
    let events: Vec<Event> = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| outcome.unwrap_or_else(|err| panic!("line {index}: {err}")))
        .collect();
    let ids: BTreeSet<&str> = events.iter().map(|e| e.envelope.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "ids are unique");
    let tenants: BTreeSet<&str> = events.iter().map(|e| e.envelope.tenant_id.as_str()).collect();
    assert_eq!(tenants.len(), 1, "one tenant");
    let calls: BTreeSet<Option<&str>> = events.iter().map(|e| e.envelope.call_id.as_deref()).collect();
    assert_eq!(calls.len(), 1, "one call_id on every event");
    assert!(calls.iter().all(Option::is_some));
    assert_eq!(events.first().map(Event::kind), Some(EventKind::CallStarted));
    assert_eq!(events.last().map(Event::kind), Some(EventKind::CallEnded));
    let count = |kind| events.iter().filter(|e| e.kind() == kind).count();
    assert_eq!(count(EventKind::TurnCompleted), 3);
    for kind in [EventKind::SttUsage, EventKind::LlmUsage, EventKind::TtsUsage] {
        assert_eq!(count(kind), 3, "{}", kind.wire_name());
    }
    assert!(count(EventKind::ProviderRequest) >= 9);
}

#[test]
fn the_schema_has_one_branch_per_type() {
    let schema = schema();
    let branches = schema["oneOf"].as_array().expect("a oneOf");
    assert_eq!(branches.len(), EventKind::ALL.len());
    let consts: BTreeSet<String> = branches
        .iter()
        .map(|branch| resolve(&schema, branch)["properties"]["type"]["const"].as_str().map(str::to_owned))
        .map(|name| name.expect("every branch fixes `type` with const"))
        .collect();
    let wire_names = owned(EventKind::ALL.map(EventKind::wire_name));
    assert_eq!(consts, wire_names);
    assert_eq!(string_set(&schema["properties"]["type"]["enum"]), wire_names);
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

#[test]
fn the_schema_has_exactly_the_fields_the_validator_allows() {
    let schema = schema();
    for kind in EventKind::ALL {
        let branch = schema_branch(&schema, kind);
        let properties = branch["properties"].as_object().expect("properties");
        let names: BTreeSet<String> = properties.keys().cloned().collect();
        assert_eq!(names, owned(all_fields(kind)), "{}", kind.wire_name());
        assert_eq!(branch["additionalProperties"], Value::Bool(false), "{}", kind.wire_name());
    }
}

#[test]
fn the_schema_requires_exactly_what_the_validator_requires() {
    let schema = schema();
    for kind in EventKind::ALL {
        let branch = schema_branch(&schema, kind);
        let required = string_set(&branch["required"]);
        assert_eq!(required, owned(required_fields(kind).iter().copied()), "{}", kind.wire_name());
    }
}

#[test]
fn each_required_field_left_out_or_null_is_rejected_by_name() {
    for kind in EventKind::ALL {
        let example = example_object(kind);
        for &field in required_fields(kind) {
            assert!(example.contains_key(field), "the {} example lacks {field}", kind.wire_name());
            let mut without = example.clone();
            without.remove(field);
            let mut null = example.clone();
            null.insert(field.to_owned(), Value::Null);
            for event in [without, null] {
                let err = parse_object(&event)
                    .err()
                    .unwrap_or_else(|| panic!("{} without {field} was accepted", kind.wire_name()));
                assert_eq!(err.field.as_deref(), Some(field), "{}: {err}", kind.wire_name());
            }
        }
    }
}

#[test]
fn each_optional_field_may_be_left_out_or_null() {
    for kind in EventKind::ALL {
        let example = example_object(kind);
        let optional = all_fields(kind).into_iter().filter(|f| !required_fields(kind).contains(f));
        for field in optional {
            let mut without = example.clone();
            without.remove(field);
            let mut null = example.clone();
            null.insert(field.to_owned(), Value::Null);
            for event in [without, null] {
                if let Err(err) = parse_object(&event) {
                    panic!("{} without {field} was rejected: {err}", kind.wire_name());
                }
            }
        }
    }
}

#[test]
fn the_schema_enums_and_bounds_match_the_validator() {
    let schema = schema();
    let property = |kind, name: &str| resolve(&schema, &schema_branch(&schema, kind)["properties"][name]);
    let enum_of = |kind, name: &str| -> BTreeSet<String> { string_set(&property(kind, name)["enum"]) };
    assert_eq!(enum_of(EventKind::CallEnded, "status"), owned(CallStatus::ALL.map(CallStatus::as_str)));
    assert_eq!(enum_of(EventKind::CallEnded, "ended_by"), owned(EndedBy::ALL.map(EndedBy::as_str)));
    assert_eq!(
        enum_of(EventKind::ProviderRequest, "component"),
        owned(PipelineComponent::ALL.map(PipelineComponent::as_str))
    );
    assert_eq!(
        enum_of(EventKind::CircuitBreakerChanged, "state"),
        owned(BreakerState::ALL.map(BreakerState::as_str))
    );

    let defs = &schema["$defs"];
    assert_eq!(defs["latency_ms"]["maximum"].as_f64(), Some(validate::MAX_LATENCY_MS));
    assert_eq!(defs["duration_s"]["maximum"].as_f64(), Some(validate::MAX_DURATION_S));
    assert_eq!(defs["id_text"]["maxLength"].as_u64(), Some(validate::MAX_ID_LEN as u64));
    assert_eq!(defs["text"]["maxLength"].as_u64(), Some(validate::MAX_TEXT_LEN as u64));
    assert_eq!(defs["attributes"]["maxProperties"].as_u64(), Some(validate::MAX_ATTRIBUTES as u64));
    assert_eq!(defs["count"]["maximum"].as_u64(), Some(validate::MAX_COUNT));
    let counts = [
        (EventKind::LlmUsage, "input_tokens", "#/$defs/count"),
        (EventKind::LlmUsage, "output_tokens", "#/$defs/count"),
        (EventKind::LlmUsage, "cached_input_tokens", "#/$defs/count_optional"),
        (EventKind::LlmUsage, "audio_input_tokens", "#/$defs/count_optional"),
        (EventKind::LlmUsage, "audio_output_tokens", "#/$defs/count_optional"),
        (EventKind::TtsUsage, "characters", "#/$defs/count"),
    ];
    for (kind, field, definition) in counts {
        let reference = &schema_branch(&schema, kind)["properties"][field]["$ref"];
        assert_eq!(reference, definition, "{}.{field}", kind.wire_name());
    }
    let cpu = property(EventKind::WorkerHeartbeat, "cpu_percent");
    assert_eq!(cpu["maximum"].as_f64(), Some(validate::MAX_CPU_PERCENT));

    // Every latency and duration field points at the shared definitions.
    for kind in EventKind::ALL {
        let branch = schema_branch(&schema, kind);
        for field in allowed_type_fields(kind) {
            let text = branch["properties"][*field].to_string();
            if field.ends_with("_ms") {
                assert!(text.contains("#/$defs/latency_ms"), "{}.{field}: {text}", kind.wire_name());
            }
            if *field == "duration_s" || *field == "audio_seconds" {
                assert!(text.contains("#/$defs/duration_s"), "{}.{field}: {text}", kind.wire_name());
            }
        }
    }
}

#[test]
fn the_docs_name_every_type_and_field() {
    let docs = read("docs/events.md");
    for kind in EventKind::ALL {
        let name = format!("`{}`", kind.wire_name());
        assert!(docs.contains(&name), "docs/events.md never names {name}");
        for field in all_fields(kind) {
            let field = format!("`{field}`");
            assert!(docs.contains(&field), "docs/events.md never names {field}");
        }
    }
}

#[test]
fn the_docs_give_the_count_limit_the_validator_applies() {
    let docs = read("docs/events.md");
    assert_eq!(validate::MAX_COUNT, 100_000_000, "the docs write the limit as 10^8");
    for field in ["input_tokens", "output_tokens", "characters"] {
        let row = docs
            .lines()
            .find(|line| line.starts_with(&format!("| `{field}` |")))
            .unwrap_or_else(|| panic!("docs/events.md has no row for `{field}`"));
        assert!(row.trim_end().ends_with("| 0..10^8 |"), "{row}");
    }
    assert!(!docs.contains("tokens, `characters`, bytes: 64-bit"), "counts are not 64-bit");
    assert!(docs.contains(&validate::MAX_COUNT.to_string()), "docs/events.md states the limit in full");
}

#[test]
fn the_docs_show_each_example_file_as_it_is() {
    let docs = read("docs/events.md");
    for kind in EventKind::ALL {
        let example = example_text(kind);
        assert!(
            docs.contains(example.trim()),
            "docs/events.md does not show examples/events/{}.json as it is",
            kind.wire_name()
        );
    }
}

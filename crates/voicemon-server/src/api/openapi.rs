//! The published contract of the HTTP API: `GET /openapi.json`, an OpenAPI 3.1 document
//! generated from the handlers' `#[utoipa::path]` attributes and the `ToSchema` derives
//! of the types they read and serialise, so that the document cannot drift from the code.
//!
//! `tests/api/openapi.rs` compares the routes of [`super::router`] with the document's
//! paths; `scripts/schemathesis.sh` (run by `.ci/run`) fuzzes the real binary against it.

use crate::api::error::{ErrorBody, ErrorCode, ErrorDetail};
use crate::api::{alerts, calls, cost, explorer, health, ingest, latency, otlp, page, probes, stream};
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::LazyLock;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{IntoResponses, Modify, OpenApi};

/// The name of the bearer-key security scheme in the document (`security(...)` attributes
/// spell it as a literal: they take no constants).
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "voicemon",
        description = "Production monitoring for voice AI agents: ingest of contract-v1 events, \
                       latency, calls, cost, health and alerts. Errors are \
                       `{\"error\": {\"code\", \"message\"}}`; a 503 carries `Retry-After`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        ingest::post_events,
        otlp::post_traces,
        otlp::post_metrics,
        latency::get_latency,
        calls::get_calls,
        explorer::get_calls,
        explorer::get_call,
        cost::get_cost,
        health::get_health,
        alerts::get_alerts,
        alerts::get_history,
        alerts::get_silences,
        alerts::post_silence,
        alerts::delete_silence,
        stream::stream,
        page::index,
        page::asset,
        probes::prometheus,
        probes::healthz,
        probes::readyz,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    modifiers(&BearerKeys, &TrimmedQueryValues, &QueryRateLimit),
    security(("bearer" = [])),
    tags(
        (name = "ingest", description = "Events from voice workers."),
        (name = "metrics", description = "Latency, calls, cost and health, read from the store."),
        (name = "alerts", description = "Active alerts, their history, and silences."),
        (name = "live", description = "The live view: a WebSocket stream and the page that draws it."),
        (name = "operations", description = "Probes, the Prometheus exposition and this document."),
    )
)]
pub struct ApiDoc;

/// The bearer-key scheme and what each role may do.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(ROLES.to_owned());
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

const ROLES: &str = "An API key made with `voicemon keys create`, sent as `Authorization: Bearer <key>`. \
    Roles: `ingest` sends events (`POST /v1/events`) for its tenant only and reads nothing; \
    `read` reads metrics and alerts (of its tenant when it has one) and sends nothing; \
    `admin` does both, and an admin key without a tenant also manages silences and scrapes \
    `GET /metrics`. A missing, unknown or revoked key is a 401, a key outside its role or \
    tenant a 403. With no active key the server runs open on loopback only and every call \
    is allowed without a header.";

/// `Params<T>` trims query values and takes an empty one as absent (`?agent_id=` is no
/// filter): every query parameter's patterns admit white space around the value, and its
/// schema also admits text that is only white space.
struct TrimmedQueryValues;

/// Unicode `White_Space`, what `str::trim` removes.
const WHITE_SPACE: &str =
    "[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

impl Modify for TrimmedQueryValues {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let operations = openapi.paths.paths.values_mut().flat_map(operations_of);
        let parameters = operations.flat_map(|operation| operation.parameters.iter_mut().flatten());
        for parameter in parameters.filter(|parameter| parameter.parameter_in == ParameterIn::Query) {
            if let Some(mut schema) = parameter.schema.take() {
                pad_patterns(&mut schema);
                let blank =
                    ObjectBuilder::new().schema_type(Type::String).pattern(Some(format!("^{WHITE_SPACE}*$")));
                parameter.schema = Some(AnyOfBuilder::new().item(schema).item(blank).into());
            }
        }
    }
}

/// `^x$` → `^\s*(?:x)\s*$` (with [`WHITE_SPACE`]) in `schema` and the schemas it joins.
fn pad_patterns(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(object)) => {
            if let Some(pattern) = object.pattern.take() {
                let core = pattern.trim_start_matches('^').trim_end_matches('$');
                object.pattern = Some(format!("^{WHITE_SPACE}*(?:{core}){WHITE_SPACE}*$"));
            }
        }
        RefOr::T(Schema::OneOf(one_of)) => one_of.items.iter_mut().for_each(pad_patterns),
        RefOr::T(Schema::AnyOf(any_of)) => any_of.items.iter_mut().for_each(pad_patterns),
        _ => {}
    }
}

fn operations_of(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// The paths of `query_routes` (`api/mod.rs`): each draws from its caller's query bucket.
const QUERY_LIMITED: [&str; 10] = [
    "/metrics/latency",
    "/metrics/calls",
    "/calls",
    "/calls/{call_id}",
    "/metrics/cost",
    "/metrics/health",
    "/alerts",
    "/alerts/history",
    "/alerts/silences",
    "/alerts/silences/{id}",
];

/// Every operation of [`QUERY_LIMITED`] answers 429 with `Retry-After` when its caller's
/// query bucket is empty (ingest documents its own 429, counted in events).
struct QueryRateLimit;

impl Modify for QueryRateLimit {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let limited =
            openapi.paths.paths.iter_mut().filter(|(path, _)| QUERY_LIMITED.contains(&path.as_str()));
        for (_, item) in limited {
            for operation in operations_of(item) {
                let responses = RateLimited::responses();
                operation.responses.responses.extend(responses);
            }
        }
    }
}

/// The answer of a caller over its query rate limit (only its derived responses are used).
#[derive(IntoResponses)]
#[allow(dead_code)]
enum RateLimited {
    /// The caller's query bucket is empty; retry after `Retry-After` seconds.
    #[response(status = 429, headers(("Retry-After" = u64, description = "seconds to wait")))]
    TooManyRequests(ErrorBody),
}

/// The errors of every route that takes a key and query parameters.
#[derive(IntoResponses)]
pub enum ReadErrors {
    /// A query parameter is invalid; the message names it.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No key, or an unknown or revoked one.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key's role or tenant does not allow this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Storage is unavailable; retry after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u64, description = "seconds to wait")))]
    Unavailable(ErrorBody),
}

/// The document, built once.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_pretty_json().expect("the generated document serialises to JSON"));

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

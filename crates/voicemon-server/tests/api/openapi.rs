//! `GET /openapi.json`: the published contract names every route the router serves, and
//! the bugs schemathesis found against it stay fixed.

use crate::helpers::{assert_error, spawn_app, status_and_json, TestApp};
use serde_json::Value;
use std::collections::BTreeSet;

/// (method, path) as the document writes them: `GET /assets/{path}`.
type Route = (String, String);

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("the document is JSON")
}

fn documented_routes(document: &Value) -> BTreeSet<Route> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item").keys();
            methods.map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// The routes `api::router` declares, read from its source: each `.route("path", …)`
/// with the methods its method router chains (`get(…)`, `.post(…)`, `delete(…)`).
fn routed(source: &str) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for call in source.split(".route(\"").skip(1) {
        let (path, rest) = call.split_once('"').expect("a quoted path");
        let arguments = &rest[..closing_paren(rest)];
        let path = path.replace("{*", "{");
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = arguments.match_indices(&format!("{method}(")).any(|(at, _)| {
                at == 0
                    || !arguments.as_bytes()[at - 1].is_ascii_alphanumeric()
                        && arguments.as_bytes()[at - 1] != b'_'
            });
            if called {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The index of the parenthesis that closes the `.route(` call `text` is inside of.
fn closing_paren(text: &str) -> usize {
    let mut depth = 1;
    for (at, byte) in text.bytes().enumerate() {
        match byte {
            b'(' => depth += 1,
            b')' if depth == 1 => return at,
            b')' => depth -= 1,
            _ => {}
        }
    }
    panic!("an unclosed .route( call");
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_names_exactly_the_routes_of_the_router() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");

    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/mod.rs"))
        .expect("the router's source");
    let routed = routed(&source);
    assert!(routed.len() >= 17, "the router's routes are read: {routed:?}");
    let documented = documented_routes(&document);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routes missing from /openapi.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler_rather_than_the_fallbacks() {
    let app = spawn_app().await;
    for (method, path) in documented_routes(&document(&app).await) {
        let concrete = path.replace("{path}", "live.js").replace("{id}", "s-unknown");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let response = app.client.request(method.clone(), app.url(&concrete)).send().await.expect("sent");
        let status = response.status().as_u16();
        let body = response.text().await.expect("a body");
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(!body.contains("no route for"), "{method} {path} fell through to the 404 fallback: {body}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn bearer_keys_and_their_roles_are_documented_and_probes_and_the_page_need_none() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let roles = scheme["description"].as_str().expect("a description");
    for role in ["`ingest`", "`read`", "`admin`"] {
        assert!(roles.contains(role), "the role {role} is described: {roles}");
    }
    assert_eq!(document["security"], serde_json::json!([{ "bearer": [] }]));
    for open in ["/healthz", "/readyz", "/", "/assets/{path}", "/openapi.json"] {
        assert_eq!(document["paths"][open]["get"]["security"], serde_json::json!([{}]), "{open}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn ingest_documents_its_three_framings_and_the_stream_its_upgrade() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let ingest = &document["paths"]["/v1/events"]["post"];
    let content = &ingest["requestBody"]["content"];
    let json_framings = content["application/json"]["schema"]["$ref"].as_str().expect("a body schema");
    let body = &document["components"]["schemas"][json_framings.trim_start_matches("#/components/schemas/")];
    assert_eq!(body["oneOf"].as_array().map(Vec::len), Some(2), "one event or an array: {body}");
    assert!(content.get("application/x-ndjson").is_some(), "NDJSON: {content}");
    for status in ["202", "400", "401", "403", "413", "415", "422", "503"] {
        assert!(ingest["responses"].get(status).is_some(), "ingest answers {status}");
    }
    let stream = &document["paths"]["/metrics/stream"]["get"]["responses"];
    for status in ["101", "401"] {
        assert!(stream.get(status).is_some(), "the upgrade answers {status}: {stream}");
    }
    let metrics = &document["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(metrics
        .as_object()
        .expect("content")
        .keys()
        .all(|t| t.starts_with("application/openmetrics-text")));
    app.shutdown().await;
}

#[tokio::test]
async fn every_query_parameter_admits_blank_text_because_params_takes_it_as_absent() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let mut checked = 0;
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("a path item").values() {
            let parameters = operation["parameters"].as_array().into_iter().flatten();
            for parameter in parameters.filter(|parameter| parameter["in"] == "query") {
                let alternatives = parameter["schema"]["anyOf"].as_array().expect("anyOf");
                let blank = alternatives.last().and_then(|last| last["pattern"].as_str()).unwrap_or_default();
                assert!(blank.starts_with("^[\\t\\n") && blank.ends_with("]*$"), "{parameter}");
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked} query parameters");
    let (status, body) = app.get_json("/metrics/latency?component=%20&step=%09&from=", None).await;
    assert_eq!(status, 200, "blank values are absent: {body}");
    app.shutdown().await;
}

// Found by schemathesis (scripts/schemathesis.sh): answers that broke the document.

#[tokio::test]
async fn a_plain_get_of_the_stream_is_a_json_400_rather_than_axum_s_plain_text() {
    let app = spawn_app().await;
    let response = app.get("/metrics/stream", None).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let (status, body) = status_and_json(response).await;
    assert_error(status, &body, 400, "bad_request");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.ends_with("connect with a WebSocket client"), "{message}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_silence_sent_without_a_json_content_type_is_a_json_415() {
    let app = spawn_app().await;
    let body = r#"{"matchers":["rule=x"],"duration":"1h","comment":"c","author":"a"}"#;
    let response = app.client.post(app.url("/alerts/silences")).body(body).send().await.expect("sent");
    let (status, body) = status_and_json(response).await;
    assert_error(status, &body, 415, "unsupported_media_type");
    app.shutdown().await;
}

#[tokio::test]
async fn a_silence_body_that_is_not_the_documented_object_is_a_json_400_naming_the_field() {
    let app = spawn_app().await;
    for (body, expected) in [
        (r#"{"matchers": "rule=x"}"#, "matchers"),
        (
            r#"{"matchers": ["rule=x"], "duration": "1h", "comment": "c", "author": "a", "colour": 1}"#,
            "colour",
        ),
        ("{not json", "json"),
    ] {
        let response = app
            .client
            .post(app.url("/alerts/silences"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
        let (status, answer) = status_and_json(response).await;
        assert_error(status, &answer, 400, "bad_request");
        let message = answer["error"]["message"].as_str().expect("a message");
        assert!(message.to_lowercase().contains(expected), "{body}: {message}");
        assert!(message.starts_with(char::is_lowercase), "{message}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_time_that_is_not_plain_unix_seconds_is_a_400_rather_than_a_float_rust_happens_to_read() {
    let app = spawn_app().await;
    let refused = [
        ("1.2044296466521708e-08", "1.2044296466521708e-08"),
        ("1e9", "1e9"),
        ("%2B1795780800", "+1795780800"),
        (".5", ".5"),
    ];
    for (sent, read) in refused {
        let (status, body) = app.get_json(&format!("/alerts/history?to={sent}"), None).await;
        assert_error(status, &body, 400, "bad_request");
        let message = body["error"]["message"].as_str().expect("a message");
        assert!(message.contains(&format!("`{read}` is neither an RFC 3339 time")), "{message}");
    }
    let (status, body) = app.get_json("/alerts/history?to=1795780800.25", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["to"], "2026-11-27T12:00:00.250Z");
    app.shutdown().await;
}

#[tokio::test]
async fn cost_refuses_a_month_together_with_from_or_to_instead_of_ignoring_them() {
    let app = spawn_app().await;
    for query in ["month=2026-11&from=garbage", "month=2026-11&to=1795780800"] {
        let (status, body) = app.get_json(&format!("/metrics/cost?{query}"), None).await;
        assert_error(status, &body, 400, "bad_request");
        assert_eq!(body["error"]["message"], "give either `month` or `from` / `to`, not both", "{query}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn types_that_share_a_rust_name_keep_schemas_of_their_own() {
    // The kind of a refused event and a health reason are both `Reason` in Rust; utoipa
    // keys schemas by name, so one silently replaced the other until one was renamed.
    let app = spawn_app().await;
    let document = document(&app).await;
    let schemas = &document["components"]["schemas"];
    let kinds = schemas["RejectionReason"]["enum"].as_array().expect("the rejection kinds are an enum");
    assert!(kinds.iter().any(|kind| kind == "unknown_field"), "{kinds:?}");
    assert_eq!(schemas["Reason"]["type"], "object", "a health reason: {}", schemas["Reason"]);
    app.shutdown().await;
}

#[tokio::test]
async fn every_rate_limited_route_documents_its_429() {
    let app = spawn_app().await;
    let document = document(&app).await;
    let router =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/mod.rs")).expect("mod.rs");
    let query_routes = router.split("fn query_routes").nth(1).expect("the query routes");
    let query_routes = query_routes.split("\n}").next().unwrap_or_default();
    let paths: Vec<&str> =
        query_routes.split(".route(\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    assert!(paths.len() >= 8, "{paths:?}");
    for path in paths.into_iter().chain(["/v1/events"]) {
        let item = document["paths"][path].as_object().unwrap_or_else(|| panic!("{path} is documented"));
        for (method, operation) in item {
            let answer = &operation["responses"]["429"];
            assert!(
                answer["headers"].get("Retry-After").is_some(),
                "{method} {path} documents its 429: {answer}"
            );
        }
    }
    app.shutdown().await;
}

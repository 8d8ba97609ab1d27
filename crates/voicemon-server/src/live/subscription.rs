//! What a client may ask for: its messages, and the scope a subscription resolves to.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use voicemon_core::latency::Component;

pub const DEFAULT_INTERVAL_S: u64 = 5;
pub const MIN_INTERVAL_S: u64 = 1;
pub const MAX_INTERVAL_S: u64 = 300;
pub const DEFAULT_WINDOW_S: u64 = 300;
pub const MIN_WINDOW_S: u64 = 60;
pub const MAX_WINDOW_S: u64 = 3600;

/// A message from the client (JSON text).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Authenticates a connection opened without an `Authorization` header.
    Auth { api_key: String },
    /// Starts or changes the subscription (and may authenticate at the same time).
    Subscribe(SubscribeRequest),
}

/// The fields of a `subscribe` message; each may be left out for its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    pub api_key: Option<String>,
    /// `null` or absent: the key's own tenant, or every tenant for an admin key.
    pub tenant_id: Option<String>,
    /// Latency components; default all five.
    pub components: Option<Vec<String>>,
    /// Seconds between snapshots, 1 to 300; default 5.
    pub interval_s: Option<u64>,
    /// The sliding window, whole minutes from 60 to 3600 seconds; default 300.
    pub window_s: Option<u64>,
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<ClientMessage, String> {
        serde_json::from_str(text).map_err(|err| {
            format!("not a message voicemon understands ({err}); send {{\"type\": \"subscribe\", …}}")
        })
    }
}

/// What one snapshot feed computes: shared by every subscriber that asks the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Scope {
    /// `None`: every tenant.
    pub tenant_id: Option<String>,
    /// In the canonical order of [`Component::ALL`], without repeats.
    pub components: Vec<Component>,
    pub interval_s: u64,
    pub window_s: u64,
}

impl Scope {
    /// The default subscription of a caller confined to `tenant_id` (or not).
    pub fn default_for(tenant_id: Option<String>) -> Scope {
        Scope {
            tenant_id,
            components: Component::ALL.to_vec(),
            interval_s: DEFAULT_INTERVAL_S,
            window_s: DEFAULT_WINDOW_S,
        }
    }

    /// Validates a request whose tenant has already been checked against the caller.
    pub fn from_request(tenant_id: Option<String>, request: &SubscribeRequest) -> Result<Scope, String> {
        let components = match &request.components {
            None => Component::ALL.to_vec(),
            Some(names) => components(names)?,
        };
        let interval_s = request.interval_s.unwrap_or(DEFAULT_INTERVAL_S);
        if !(MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&interval_s) {
            return Err(format!(
                "interval_s must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S} seconds, not {interval_s}"
            ));
        }
        let window_s = request.window_s.unwrap_or(DEFAULT_WINDOW_S);
        if !(MIN_WINDOW_S..=MAX_WINDOW_S).contains(&window_s) || !window_s.is_multiple_of(60) {
            return Err(format!(
                "window_s must be whole minutes between {MIN_WINDOW_S} and {MAX_WINDOW_S} seconds, not {window_s}"
            ));
        }
        Ok(Scope { tenant_id, components, interval_s, window_s })
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_s)
    }

    pub fn window_ms(&self) -> i64 {
        self.window_s as i64 * 1000
    }
}

fn components(names: &[String]) -> Result<Vec<Component>, String> {
    if names.is_empty() {
        return Err("components must name at least one of turn_e2e, stt, eou, llm_ttft, tts_ttfb".into());
    }
    let mut wanted = Vec::with_capacity(names.len());
    for name in names {
        let component = Component::parse(name.trim()).ok_or_else(|| {
            format!("unknown component `{name}`; expected turn_e2e, stt, eou, llm_ttft or tts_ttfb")
        })?;
        wanted.push(component);
    }
    Ok(Component::ALL.into_iter().filter(|c| wanted.contains(c)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> SubscribeRequest {
        match ClientMessage::parse(text) {
            Ok(ClientMessage::Subscribe(request)) => request,
            other => panic!("a subscribe message, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_subscribe_asks_for_the_defaults() {
        let scope = Scope::from_request(None, &request(r#"{"type":"subscribe"}"#)).expect("valid");
        assert_eq!(scope, Scope::default_for(None));
        assert_eq!((scope.interval_s, scope.window_s), (5, 300));
    }

    #[test]
    fn components_are_put_in_canonical_order_without_repeats() {
        let text = r#"{"type":"subscribe","components":["tts_ttfb","turn_e2e","tts_ttfb"]}"#;
        let scope = Scope::from_request(None, &request(text)).expect("valid");
        assert_eq!(scope.components, vec![Component::TurnE2e, Component::TtsTtfb]);
    }

    #[test]
    fn out_of_range_or_unknown_fields_are_refused_with_the_reason() {
        let refused = |text: &str| Scope::from_request(None, &request(text)).expect_err(text);
        assert!(refused(r#"{"type":"subscribe","interval_s":0}"#).contains("interval_s"));
        assert!(refused(r#"{"type":"subscribe","interval_s":301}"#).contains("interval_s"));
        assert!(refused(r#"{"type":"subscribe","window_s":90}"#).contains("window_s"));
        assert!(refused(r#"{"type":"subscribe","components":[]}"#).contains("components"));
        assert!(refused(r#"{"type":"subscribe","components":["ttfb"]}"#).contains("ttfb"));
        let unknown = ClientMessage::parse(r#"{"type":"subscribe","intervall_s":5}"#).expect_err("unknown");
        assert!(unknown.contains("intervall_s"), "{unknown}");
        assert!(ClientMessage::parse(r#"{"type":"unsubscribe"}"#).is_err());
    }

    #[test]
    fn auth_carries_the_key() {
        match ClientMessage::parse(r#"{"type":"auth","api_key":"vm_x"}"#) {
            Ok(ClientMessage::Auth { api_key }) => assert_eq!(api_key, "vm_x"),
            other => panic!("an auth message, got {other:?}"),
        }
    }
}

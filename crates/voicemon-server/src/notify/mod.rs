//! Receivers and delivery: the outbox dispatcher sends each stored message to its
//! receiver (Slack, a generic JSON webhook, Prometheus Alertmanager), honouring 429
//! `Retry-After`, backing off with jitter on 5xx and network errors up to a deadline,
//! giving up at once on other 4xx (and marking the receiver broken), and sending at most
//! one message per second to one Slack webhook. Messages live in the store until sent,
//! so a restart resumes them.

pub mod alertmanager;
pub mod payload;
pub mod slack;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use voicemon_core::clock::Clock;
use voicemon_store::{AlertStore, Delivery, OutboxItem};

use self::payload::NoticePayload;
use crate::telemetry::Telemetry;

/// A URL that may hold a secret (Slack's webhook URL carries it in its path): printed
/// as its scheme and host only; the whole URL only through [`SecretUrl::expose`].
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(SecretString::from(url.into()))
    }

    /// The whole URL, to send a request to.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// `https://hooks.slack.com/…`: enough to tell receivers apart, nothing secret.
    pub fn redacted(&self) -> String {
        let shown = self.expose().split('/').take(3).collect::<Vec<_>>().join("/");
        let shown = match shown.rsplit_once('@') {
            Some((scheme_and_credentials, host)) => {
                format!("{}//{host}", scheme_and_credentials.split("//").next().unwrap_or_default())
            }
            None => shown,
        };
        format!("{shown}/…")
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl PartialEq for SecretUrl {
    fn eq(&self, other: &SecretUrl) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretUrl {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    /// A Slack incoming webhook: Block Kit messages.
    Slack,
    /// Any HTTP endpoint: the notice as JSON.
    Webhook,
    /// A Prometheus Alertmanager: `POST {url}/api/v2/alerts`.
    Alertmanager,
}

impl ReceiverKind {
    pub fn parse(text: &str) -> Option<ReceiverKind> {
        match text {
            "slack" => Some(ReceiverKind::Slack),
            "webhook" => Some(ReceiverKind::Webhook),
            "alertmanager" => Some(ReceiverKind::Alertmanager),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
    pub url: SecretUrl,
}

/// A warning for each receiver that sends in clear text over a network (`http://` to a
/// host that is not loopback): its messages, and Slack's secret URL, can be read on the way.
pub fn cleartext_warnings(receivers: &[Receiver]) -> Vec<String> {
    receivers
        .iter()
        .filter(|receiver| crate::outbound::is_plain_http_off_machine(receiver.url.expose()))
        .map(|receiver| {
            format!(
                "receiver `{}` sends alerts over plain http:// to {}, which is not this machine: \
                 use https:// so they cannot be read or forged on the way",
                receiver.name,
                receiver.url.redacted()
            )
        })
        .collect()
}

/// Delivery settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryConfig {
    /// A message not delivered this long after it was queued is given up.
    pub deadline: Duration,
    /// First back-off after a 5xx or network error; doubles per attempt.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// At most one message per this interval to one Slack webhook.
    pub slack_interval: Duration,
    pub request_timeout: Duration,
}

/// Messages claimed per dispatch round.
const CLAIM_AT_MOST: usize = 100;

impl DeliveryConfig {
    /// How long a round's messages are claimed: long enough for several sends, each of
    /// which a lane starts only with a whole request timeout of claim left.
    fn claim(&self) -> Duration {
        (self.request_timeout * 3).max(Duration::from_secs(60))
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            deadline: Duration::from_secs(3600),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            slack_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What one HTTP attempt returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Status { code: u16, retry_after: Option<Duration>, body: String },
    Network(String),
}

/// Decides what an attempt means for the message.
pub fn classify(
    attempt: &Attempt,
    item: &OutboxItem,
    now_ms: i64,
    config: &DeliveryConfig,
    jitter: f64,
) -> Delivery {
    let past_deadline = |next_ms: i64| next_ms - item.created_ms > config.deadline.as_millis() as i64;
    let retry = |wait: Duration, error: String| {
        let next_attempt_ms = now_ms + wait.as_millis() as i64;
        if past_deadline(next_attempt_ms) {
            Delivery::Failed {
                at_ms: now_ms,
                error: format!("gave up after the deadline: {error}"),
                broken: false,
            }
        } else {
            Delivery::Retry { at_ms: now_ms, next_attempt_ms, error }
        }
    };
    let backoff = || {
        let doubling = config.base_backoff.as_secs_f64() * 2f64.powi(item.attempts.min(16) as i32);
        Duration::from_secs_f64(doubling.min(config.max_backoff.as_secs_f64()) * jitter)
    };
    match attempt {
        Attempt::Status { code, .. } if (200..300).contains(code) => Delivery::Sent { at_ms: now_ms },
        Attempt::Status { code: 429, retry_after, .. } => {
            retry(retry_after.unwrap_or(config.base_backoff), "429 too many requests".into())
        }
        Attempt::Status { code, body, .. } if *code >= 500 => {
            retry(backoff(), format!("{code}: {}", short(body)))
        }
        Attempt::Status { code, body, .. } => {
            Delivery::Failed { at_ms: now_ms, error: format!("{code}: {}", short(body)), broken: true }
        }
        Attempt::Network(error) => retry(backoff(), error.clone()),
    }
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Reads `Retry-After` as seconds (the form Slack and most APIs send).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

/// Sends outbox messages until `shutdown` turns true; `wake` makes it look at once.
/// Each read of the outbox is counted in `telemetry` by what it found.
pub fn spawn_dispatcher(
    store: Arc<dyn AlertStore>,
    receivers: Vec<Receiver>,
    config: DeliveryConfig,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    telemetry: Telemetry,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let receivers: BTreeMap<String, Receiver> = receivers.into_iter().map(|r| (r.name.clone(), r)).collect();
    tokio::spawn(async move {
        let client = match crate::outbound::client(config.request_timeout) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build the notification HTTP client; no alerts will be sent");
                return;
            }
        };
        let mut last_sent: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.changed() => return,
            }
            let now_ms = clock.now_ms();
            let claim = config.claim();
            let claim_ends = Instant::now() + claim;
            let due = match store.claim_outbox(now_ms, CLAIM_AT_MOST, claim.as_millis() as i64).await {
                Ok(due) => due,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the notification outbox");
                    telemetry.dispatch_round("error");
                    continue;
                }
            };
            if due.is_empty() {
                telemetry.dispatch_round("idle");
                continue;
            }
            // Receivers are served side by side, so a slow one (up to the request timeout
            // per message) never holds up the others; each one's messages go in order.
            let mut by_receiver: BTreeMap<String, Vec<OutboxItem>> = BTreeMap::new();
            for item in due {
                by_receiver.entry(item.receiver.clone()).or_default().push(item);
            }
            let mut sending = tokio::task::JoinSet::new();
            for (name, items) in by_receiver {
                let Some(receiver) = receivers.get(&name).cloned() else {
                    for item in items {
                        let error = format!("receiver `{name}` is no longer configured");
                        record(&store, &item, Delivery::Failed { at_ms: now_ms, error, broken: false }).await;
                    }
                    continue;
                };
                let lane = Lane {
                    store: Arc::clone(&store),
                    client: client.clone(),
                    clock: Arc::clone(&clock),
                    config,
                    last_sent: last_sent.get(&name).copied(),
                    claim_ends,
                };
                sending.spawn(lane.deliver(receiver, items));
            }
            let mut not_attempted = Vec::new();
            while let Some(done) = sending.join_next().await {
                if let Ok(done) = done {
                    if let Some(at) = done.last_sent {
                        last_sent.insert(done.receiver, at);
                    }
                    not_attempted.extend(done.not_attempted);
                }
            }
            // Messages a lane did not reach (Slack pacing, a claim about to run out) are
            // given back, due again at once for whichever instance claims first.
            if !not_attempted.is_empty() {
                if let Err(err) = store.unclaim_outbox(&not_attempted).await {
                    tracing::warn!(error = %err, "cannot give back claimed messages; they are due when the claim ends");
                }
            }
            telemetry.dispatch_round("sending");
        }
    })
}

/// One receiver's share of a dispatch round.
struct Lane {
    store: Arc<dyn AlertStore>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    /// When this receiver was last sent to (Slack pacing).
    last_sent: Option<Instant>,
    /// When the claim on the round's messages ends: no send may still run then, or
    /// another instance could claim and send the same message.
    claim_ends: Instant,
}

/// What a lane did with its share of a round.
struct LaneDone {
    receiver: String,
    last_sent: Option<Instant>,
    /// Messages it did not attempt, to give back.
    not_attempted: Vec<i64>,
}

impl Lane {
    /// Sends `items` in order; a Slack webhook gets at most one per `slack_interval`, the
    /// rest waiting for a later round. Stops before a send that could outlast the claim.
    async fn deliver(mut self, receiver: Receiver, items: Vec<OutboxItem>) -> LaneDone {
        let mut items = items.into_iter();
        while let Some(item) = items.next() {
            let paced = receiver.kind == ReceiverKind::Slack;
            let paced_out =
                paced && self.last_sent.is_some_and(|at| at.elapsed() < self.config.slack_interval);
            let claim_short = Instant::now() + self.config.request_timeout >= self.claim_ends;
            if paced_out || claim_short {
                let not_attempted = std::iter::once(item).chain(items).map(|item| item.id).collect();
                return LaneDone { receiver: receiver.name, last_sent: self.last_sent, not_attempted };
            }
            let attempt = send(&self.client, &receiver, &item.payload).await;
            if paced {
                self.last_sent = Some(Instant::now());
            }
            let jitter = rand::rng().random_range(0.5..1.5);
            let delivery = classify(&attempt, &item, self.clock.now_ms(), &self.config, jitter);
            log_delivery(&receiver, &item, &delivery);
            record(&self.store, &item, delivery).await;
        }
        LaneDone { receiver: receiver.name, last_sent: self.last_sent, not_attempted: Vec::new() }
    }
}

fn log_delivery(receiver: &Receiver, item: &OutboxItem, delivery: &Delivery) {
    match delivery {
        Delivery::Sent { .. } => {
            tracing::info!(receiver = %receiver.name, rule = %item.rule, "alert notification sent")
        }
        Delivery::Retry { error, next_attempt_ms, .. } => tracing::warn!(
            receiver = %receiver.name, rule = %item.rule, %error, next_attempt_ms, "alert notification will be retried"
        ),
        Delivery::Failed { error, broken, .. } => tracing::error!(
            receiver = %receiver.name, rule = %item.rule, %error, broken, "alert notification failed"
        ),
    }
}

async fn record(store: &Arc<dyn AlertStore>, item: &OutboxItem, delivery: Delivery) {
    if let Err(err) = store.record_delivery(item, delivery).await {
        tracing::warn!(error = %err, "cannot record a delivery; it will be attempted again");
    }
}

/// One HTTP attempt for one message.
async fn send(client: &reqwest::Client, receiver: &Receiver, payload: &str) -> Attempt {
    let notice: NoticePayload = match serde_json::from_str(payload) {
        Ok(notice) => notice,
        Err(err) => {
            return Attempt::Status {
                code: 400,
                retry_after: None,
                body: format!("bad stored payload: {err}"),
            }
        }
    };
    let (url, body) = match receiver.kind {
        ReceiverKind::Slack => (receiver.url.expose().to_owned(), slack::message(&notice)),
        ReceiverKind::Webhook => {
            (receiver.url.expose().to_owned(), serde_json::to_value(&notice).unwrap_or_default())
        }
        ReceiverKind::Alertmanager => (
            format!("{}/api/v2/alerts", receiver.url.expose().trim_end_matches('/')),
            alertmanager::alerts(&notice),
        ),
    };
    match client.post(url).json(&body).send().await {
        Ok(response) => {
            let code = response.status().as_u16();
            let retry_after = retry_after(response.headers());
            let body = response.text().await.unwrap_or_default();
            Attempt::Status { code, retry_after, body }
        }
        // The whole cause chain (a certificate error sits three levels down), never the URL.
        Err(err) => Attempt::Network(crate::outbound::describe_error(err)),
    }
}

/// The back-off and give-up decisions, on explicit times and jitter: no clock, no sleep.
#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-27T12:00:00Z.
    const NOW_MS: i64 = 1_795_780_800_000;

    /// A message queued a minute ago, tried `attempts` times.
    fn item(attempts: u32) -> OutboxItem {
        OutboxItem {
            id: 1,
            receiver: "hook".into(),
            rule: "worker_memory_high".into(),
            payload: "{}".into(),
            created_ms: NOW_MS - 60_000,
            next_attempt_ms: NOW_MS,
            attempts,
        }
    }

    fn status(code: u16) -> Attempt {
        Attempt::Status { code, retry_after: None, body: "nope".into() }
    }

    /// When the next attempt of `item` after `attempt` is due, with no jitter.
    fn next_attempt_ms(attempt: &Attempt, item: &OutboxItem) -> i64 {
        match classify(attempt, item, NOW_MS, &DeliveryConfig::default(), 1.0) {
            Delivery::Retry { next_attempt_ms, .. } => next_attempt_ms,
            other => panic!("a retry, not {other:?}"),
        }
    }

    #[test]
    fn a_2xx_is_sent() {
        let delivery = classify(&status(204), &item(0), NOW_MS, &DeliveryConfig::default(), 1.0);
        assert_eq!(delivery, Delivery::Sent { at_ms: NOW_MS });
    }

    #[test]
    fn a_5xx_backs_off_doubling_per_attempt_up_to_the_maximum() {
        let waits: Vec<i64> = [0, 1, 2, 5, 6, 20]
            .into_iter()
            .map(|n| next_attempt_ms(&status(503), &item(n)) - NOW_MS)
            .collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 32_000, 60_000, 60_000]);
    }

    #[test]
    fn a_network_error_backs_off_as_a_5xx_does() {
        let refused = Attempt::Network("connection refused".into());
        assert_eq!(next_attempt_ms(&refused, &item(3)), NOW_MS + 8_000);
    }

    #[test]
    fn jitter_scales_the_back_off() {
        let config = DeliveryConfig::default();
        for (jitter, wait_ms) in [(0.5, 2_000), (1.5, 6_000)] {
            let delivery = classify(&status(500), &item(2), NOW_MS, &config, jitter);
            assert!(
                matches!(delivery, Delivery::Retry { next_attempt_ms, .. } if next_attempt_ms == NOW_MS + wait_ms)
            );
        }
    }

    #[test]
    fn a_429_waits_as_long_as_retry_after_says_or_the_base_back_off() {
        let told =
            Attempt::Status { code: 429, retry_after: Some(Duration::from_secs(7)), body: String::new() };
        assert_eq!(next_attempt_ms(&told, &item(4)), NOW_MS + 7_000);
        assert_eq!(next_attempt_ms(&status(429), &item(4)), NOW_MS + 1_000, "not the doubled back-off");
    }

    #[test]
    fn a_retry_that_would_fall_past_the_deadline_gives_up() {
        let config = DeliveryConfig::default();
        let old = OutboxItem { created_ms: NOW_MS - config.deadline.as_millis() as i64 + 500, ..item(0) };
        let delivery = classify(&status(502), &old, NOW_MS, &config, 1.0);
        let Delivery::Failed { error, broken, .. } = delivery else { panic!("given up: {delivery:?}") };
        assert!(error.starts_with("gave up after the deadline: 502"), "{error}");
        assert!(!broken, "the receiver may work again");
    }

    #[test]
    fn another_4xx_gives_up_at_once_and_marks_the_receiver_broken() {
        let delivery = classify(&status(404), &item(0), NOW_MS, &DeliveryConfig::default(), 1.0);
        assert_eq!(delivery, Delivery::Failed { at_ms: NOW_MS, error: "404: nope".into(), broken: true });
    }
}

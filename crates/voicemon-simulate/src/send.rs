//! Sending: NDJSON batches POSTed to `{base_url}/v1/events`, transient failures (503,
//! 5xx, 429, connection errors) retried for [`RETRY_BUDGET`], voicemon's answers read.

use super::{SimulateError, SimulateOptions};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;
use voicemon_tls::http;

/// How long one batch is retried (503, 5xx, connection errors) before it counts as failed.
pub const RETRY_BUDGET: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// voicemon's answer to `POST /v1/events`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct IngestAnswer {
    #[serde(default)]
    pub(super) accepted: u64,
    #[serde(default)]
    pub(super) duplicates: u64,
    /// The first refused events (voicemon lists 100 at most).
    #[serde(default)]
    pub(super) rejected: Vec<RejectedEvent>,
    /// Every refused event, listed or not.
    #[serde(default)]
    pub(super) rejected_count: Option<u64>,
}

impl IngestAnswer {
    /// How many events voicemon refused: its count, or the list of an older voicemon.
    pub(super) fn rejected_count(&self) -> u64 {
        self.rejected_count.unwrap_or(self.rejected.len() as u64)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RejectedEvent {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    field: Option<String>,
    #[serde(default, alias = "message")]
    error: String,
}

impl RejectedEvent {
    pub(super) fn describe(&self) -> String {
        match &self.field {
            Some(field) => format!("event {}: {field}: {}", self.index, self.error),
            None => format!("event {}: {}", self.index, self.error),
        }
    }
}

/// voicemon's error body: `{error: {code, message}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// voicemon answered a batch: what it took, and whether it refused every event (422).
pub(super) struct Answered {
    pub(super) answer: IngestAnswer,
    pub(super) all_rejected: bool,
}

/// How one batch went, once retries are over.
pub(super) enum Delivery {
    Answered(Answered),
    GaveUp { reason: String },
}

/// How one attempt went.
enum Attempt {
    Answered(Answered),
    Retry { after: Option<Duration>, reason: String },
    Fatal(SimulateError),
}

pub(super) struct Sender {
    client: reqwest::Client,
    pub(super) events_url: String,
    health_url: String,
    api_key: Option<String>,
}

impl Sender {
    pub(super) fn new(options: &SimulateOptions) -> Result<Self, SimulateError> {
        let client = http::client(REQUEST_TIMEOUT).map_err(SimulateError::Client)?;
        let base = options.base_url.trim_end_matches('/');
        Ok(Sender {
            client,
            events_url: format!("{base}/v1/events"),
            health_url: format!("{base}/healthz"),
            api_key: options.api_key.clone(),
        })
    }

    /// Any HTTP answer from `/healthz` will do: it only proves something listens.
    pub(super) async fn check_reachable(&self) -> Result<(), SimulateError> {
        let request = self.client.get(&self.health_url).timeout(REACHABILITY_TIMEOUT);
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) => Err(SimulateError::Unreachable {
                url: self.health_url.clone(),
                reason: http::describe_error(err),
            }),
        }
    }

    /// POSTs one batch, retrying transient failures for [`RETRY_BUDGET`]. A batch that
    /// got an answer is never sent again.
    pub(super) async fn deliver(&self, lines: &[String]) -> Result<Delivery, SimulateError> {
        let mut body = lines.join("\n");
        body.push('\n');
        let give_up_at = Instant::now() + RETRY_BUDGET;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (after, reason) = match self.attempt(&body).await {
                Attempt::Answered(answered) => return Ok(Delivery::Answered(answered)),
                Attempt::Fatal(err) => return Err(err),
                Attempt::Retry { after, reason } => (after, reason),
            };
            let wait = after.unwrap_or(backoff);
            if Instant::now() + wait > give_up_at {
                return Ok(Delivery::GaveUp { reason });
            }
            let wait_ms = wait.as_millis() as u64;
            tracing::warn!(%reason, wait_ms, "simulate: batch not taken, retrying");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn attempt(&self, body: &str) -> Attempt {
        let mut request = self
            .client
            .post(&self.events_url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body.to_owned());
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        match request.send().await {
            Ok(response) => self.classify(response).await,
            Err(err) => Attempt::Retry { after: None, reason: http::describe_error(err) },
        }
    }

    async fn classify(&self, response: reqwest::Response) -> Attempt {
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => return Attempt::Retry { after: None, reason: http::describe_error(err) },
        };
        match status {
            200..=299 | 422 => self.read_answer(status, &text),
            401 | 403 => Attempt::Fatal(SimulateError::AuthRefused { status, message: error_message(&text) }),
            429 | 500 | 502 | 503 | 504 => {
                Attempt::Retry { after: retry_after, reason: format!("{status}: {}", error_message(&text)) }
            }
            413 => {
                let message = format!("{}; lower batch_max_events", error_message(&text));
                Attempt::Fatal(self.unexpected(status, message))
            }
            _ => Attempt::Fatal(self.unexpected(status, error_message(&text))),
        }
    }

    fn read_answer(&self, status: u16, text: &str) -> Attempt {
        match serde_json::from_str::<IngestAnswer>(text) {
            Ok(answer) => Attempt::Answered(Answered { answer, all_rejected: status == 422 }),
            Err(err) => Attempt::Fatal(
                self.unexpected(status, format!("not an ingest answer ({err}): {}", excerpt(text))),
            ),
        }
    }

    fn unexpected(&self, status: u16, message: String) -> SimulateError {
        SimulateError::UnexpectedAnswer { status, url: self.events_url.clone(), message }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The message of a `{error: {code, message}}` body, or the start of the raw body.
fn error_message(text: &str) -> String {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) if body.error.code.is_empty() => body.error.message,
        Ok(body) => format!("{}: {}", body.error.code, body.error.message),
        Err(_) => excerpt(text),
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

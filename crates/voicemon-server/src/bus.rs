//! The event bus: events from a NATS JetStream stream, with the same contract as
//! `POST /v1/events` (one event, or NDJSON, per message).
//!
//! Every instance binds the same durable pull consumer, so JetStream spreads the messages
//! among them. A message is acknowledged only after the group commit that stores its events
//! is durable; a crash before that redelivers it, and idempotent event ids make the
//! redelivery harmless. While the store is unavailable a message is refused (`nak`) with a
//! back-off, so it comes again later. A message that can never be stored (not the contract,
//! or no valid event in it) goes to the dead-letter subject with its reasons in headers and
//! is not delivered again; valid events beside invalid ones are stored, and the message is
//! also dead-lettered so the invalid ones are not lost from sight.
//!
//! The bus is trusted like an admin ingest key: its events may be of any tenant.

use crate::ingest::writer::BatchWriter;
use crate::telemetry::Telemetry;
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, message::AckKind};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use voicemon_core::body::{parse_body, Framing, ParsedBody, Rejections};
use voicemon_core::clock::Clock;
use voicemon_core::pricing::PriceBook;
use voicemon_store::{IngestEvent, StoreError};

/// `[nats]`: where the events come from.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `nats://host:4222` (`tls://` for TLS); may hold credentials.
    pub url: SecretString,
    /// The JetStream stream, created with `subjects` when it does not exist.
    pub stream: String,
    /// Subjects the stream holds (when voicemon creates it) and the consumer reads.
    pub subjects: Vec<String>,
    /// The durable consumer every instance shares.
    pub consumer: String,
    /// Where messages that can never be stored go, with their reasons.
    pub dead_letter_subject: String,
    /// Messages being stored at once by this instance (JetStream's `max_ack_pending`).
    pub max_in_flight: usize,
}

impl BusConfig {
    /// The defaults for `url`.
    pub fn new(url: SecretString) -> BusConfig {
        BusConfig {
            url,
            stream: "VOICEMON_EVENTS".into(),
            subjects: vec!["voicemon.events.>".into()],
            consumer: "voicemon".into(),
            dead_letter_subject: "voicemon.dead".into(),
            max_in_flight: 1024,
        }
    }
}

/// Outcomes of a message (the `outcome` label of `voicemon_bus_messages_total`).
pub const MESSAGE_OUTCOMES: [&str; 3] = ["stored", "dead_lettered", "retried"];

/// How long JetStream waits for an acknowledgement before it redelivers: what a crash
/// delays the messages it held. A commit slower than this makes a duplicate, stored once.
const ACK_WAIT: Duration = Duration::from_secs(15);
/// Back-off of a message refused while the store is unavailable: doubling from 1 s to this.
const MAX_NAK_DELAY: Duration = Duration::from_secs(60);
/// Reasons kept in a dead letter's header, so one message cannot make a huge header.
const MAX_REASONS: usize = 20;

/// What handling a message needs; cheap to clone.
#[derive(Clone)]
struct Ingest {
    writer: BatchWriter,
    prices: Arc<PriceBook>,
    clock: Arc<dyn Clock>,
    telemetry: Telemetry,
    client: async_nats::Client,
    dead_letter_subject: String,
}

/// Consumes until `shutdown`, connecting again (with a pause) whenever the connection or
/// the consumer fails. Messages being stored when shutdown comes are finished first.
pub fn spawn(
    config: BusConfig,
    writer: BatchWriter,
    prices: Arc<PriceBook>,
    clock: Arc<dyn Clock>,
    telemetry: Telemetry,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            let parts = (writer.clone(), Arc::clone(&prices), Arc::clone(&clock), telemetry.clone());
            match consume(&config, parts, shutdown.clone()).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "event bus: consuming stopped; connecting again in {pause:?}")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    })
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn consume(
    config: &BusConfig,
    (writer, prices, clock, telemetry): (BatchWriter, Arc<PriceBook>, Arc<dyn Clock>, Telemetry),
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Failure> {
    let client = async_nats::ConnectOptions::new()
        .name("voicemon")
        .connection_timeout(Duration::from_secs(10))
        .connect(config.url.expose_secret())
        .await?;
    let context = jetstream::new(client.clone());
    let stream = context
        .get_or_create_stream(jetstream::stream::Config {
            name: config.stream.clone(),
            subjects: config.subjects.clone(),
            ..Default::default()
        })
        .await?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &config.consumer,
            pull::Config {
                durable_name: Some(config.consumer.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: config.max_in_flight as i64,
                // One subject works with every JetStream server; several need NATS 2.10.
                filter_subject: match &config.subjects[..] {
                    [one] => one.clone(),
                    _ => String::new(),
                },
                filter_subjects: match &config.subjects[..] {
                    [_] => Vec::new(),
                    several => several.to_vec(),
                },
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    tracing::info!(stream = %config.stream, consumer = %config.consumer, "event bus: consuming");
    let ingest = Ingest {
        writer,
        prices,
        clock,
        telemetry,
        client,
        dead_letter_subject: config.dead_letter_subject.clone(),
    };
    let room = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut in_flight = tokio::task::JoinSet::new();
    let outcome = loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = shutdown.changed() => break Ok(()),
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(err)) => break Err(err.into()),
            None => break Err("the consumer's message stream ended".into()),
        };
        let permit = Arc::clone(&room).acquire_owned().await.expect("the semaphore is never closed");
        let ingest = ingest.clone();
        in_flight.spawn(async move {
            ingest.handle(message).await;
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    };
    // Finish what was taken: its events commit and its messages are acknowledged.
    while in_flight.join_next().await.is_some() {}
    outcome
}

impl Ingest {
    async fn handle(&self, message: jetstream::Message) {
        let content_type = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Content-Type"))
            .map(|value| value.as_str().to_owned());
        // One event or NDJSON unless the publisher says it sends a JSON array.
        let framing = Framing::from_content_type(content_type.as_deref()).unwrap_or(Framing::Ndjson);
        let parsed = match parse_body(&message.payload, framing, self.clock.now_ms()) {
            Ok(parsed) => parsed,
            Err(err) => {
                let rejections = Rejections::whole_body(&err);
                return self.dead_letter(&message, &rejections, AckKind::Term).await;
            }
        };
        let ParsedBody { events, rejections } = parsed;
        let events: Vec<IngestEvent> = events
            .into_iter()
            .map(|event| IngestEvent { costing: self.prices.cost(&event), event })
            .collect();
        self.telemetry.events("rejected", rejections.total);
        if events.is_empty() {
            return self.dead_letter(&message, &rejections, AckKind::Term).await;
        }
        match self.writer.submit(events).await {
            Ok(outcome) => {
                self.telemetry.ingested(&outcome, 0);
                if rejections.total == 0 {
                    self.acknowledge(&message, AckKind::Ack, "stored").await;
                } else {
                    self.dead_letter(&message, &rejections, AckKind::Ack).await;
                }
            }
            Err(err) => self.retry_later(&message, &err).await,
        }
    }

    /// Publishes `message` to the dead-letter subject with its `rejections` as reasons,
    /// then acknowledges it with `ack`; if the dead letter cannot be sent, it comes again.
    async fn dead_letter(&self, message: &jetstream::Message, rejections: &Rejections, ack: AckKind) {
        let mut headers = async_nats::HeaderMap::new();
        let first = rejections.listed.first().map_or_else(
            || "no event in the message".to_owned(),
            |r| match &r.field {
                Some(field) => format!("{field}: {}", r.error),
                None => r.error.clone(),
            },
        );
        headers.insert("Voicemon-Reason", single_line(&first));
        let kept = &rejections.listed[..rejections.listed.len().min(MAX_REASONS)];
        headers.insert("Voicemon-Rejected", serde_json::to_string(kept).unwrap_or_default());
        headers.insert("Voicemon-Rejected-Count", rejections.total.to_string());
        headers.insert("Voicemon-Subject", message.subject.as_str());
        if let Ok(info) = message.info() {
            headers.insert("Voicemon-Stream-Sequence", info.stream_sequence.to_string());
        }
        let sent = async {
            let subject = self.dead_letter_subject.clone();
            self.client.publish_with_headers(subject, headers, message.payload.clone()).await?;
            self.client.flush().await.map_err(Failure::from)
        };
        match sent.await {
            Ok(()) => {
                tracing::warn!(subject = %message.subject, reason = %first, rejected = rejections.total,
                    "event bus: message dead-lettered");
                self.acknowledge(message, ack, "dead_lettered").await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "event bus: cannot publish a dead letter; the message comes again");
                self.acknowledge(message, AckKind::Nak(Some(Duration::from_secs(5))), "retried").await;
            }
        }
    }

    /// Refuses the message for now (the store is unavailable): JetStream delivers it again
    /// after a back-off that doubles with each delivery.
    async fn retry_later(&self, message: &jetstream::Message, err: &StoreError) {
        let delivered = message.info().map(|info| info.delivered).unwrap_or(1).clamp(1, 16) as u32;
        let delay = (Duration::from_secs(1) * 2u32.pow(delivered - 1)).min(MAX_NAK_DELAY);
        tracing::warn!(error = %err, delivered, ?delay, "event bus: events not stored; the message comes again");
        self.acknowledge(message, AckKind::Nak(Some(delay)), "retried").await;
    }

    async fn acknowledge(&self, message: &jetstream::Message, kind: AckKind, outcome: &'static str) {
        self.telemetry.bus_message(outcome);
        if let Err(err) = message.ack_with(kind).await {
            // Unacknowledged, it is delivered again after the ack wait; its events are
            // duplicates by then.
            tracing::warn!(error = %err, "event bus: cannot acknowledge a message; it will come again");
        }
    }
}

/// `text` on one line, short enough for a header.
fn single_line(text: &str) -> String {
    voicemon_core::validate::prefix(text, 500).chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

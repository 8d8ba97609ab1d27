//! One `GET /metrics/stream` connection after its upgrade (`api::stream` checks the
//! request): authentication by first message when the header had none,
//! the subscription, heartbeats, and what happens to a client that falls behind.
//!
//! A connection's only buffers are its feed's shared queue and the socket: a client that
//! lags skips messages (counted, logged), one that keeps lagging, whose socket does not
//! take a message within `write_timeout`, or that misses a pong is disconnected.

use super::hub::{error_frame, stopping, ConnectionGuard, Frame, LiveHub, Subscription};
use super::subscription::{ClientMessage, Scope, SubscribeRequest};
use crate::auth::{KeyRing, Principal};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures_util::SinkExt;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use voicemon_core::latency::Component;

/// Largest message a client may send.
const MAX_CLIENT_MESSAGE_BYTES: usize = 16 * 1024;
/// Clients send a few small messages: a small read buffer (the library's default is
/// 128 KiB per connection, which 1 000 subscribers turn into 128 MB).
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// A hard bound on what one connection may hold unsent (each send waits for the socket,
/// so in practice it holds one message).
const MAX_WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// At most this many subscriptions (scope changes) per connection in `SUBSCRIBE_WINDOW`:
/// each may start a feed, whose first snapshot is computed at once.
const SUBSCRIBE_LIMIT: usize = 10;
const SUBSCRIBE_WINDOW: Duration = Duration::from_secs(10);
/// How long a close handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Close codes (see docs/live.md).
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
pub const CLOSE_FORBIDDEN: u16 = 4403;
pub const CLOSE_TOO_SLOW: u16 = 4408;

/// Bounds an upgrade to what a live client needs (see the constants above).
pub fn bounded(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
}

/// Who an upgraded connection belongs to, as far as the upgrade request told.
pub struct Caller {
    /// `None`: the first message must carry a key.
    pub principal: Option<Principal>,
    /// The key of the `Authorization` header, re-checked at every ping.
    pub token: Option<String>,
}

/// Serves one upgraded connection until it ends; `guard` counts it as open meanwhile.
pub async fn serve(socket: WebSocket, hub: LiveHub, keys: KeyRing, caller: Caller, guard: ConnectionGuard) {
    let connection = Connection {
        socket,
        hub,
        keys,
        principal: caller.principal,
        token: caller.token,
        subscription: None,
        last_seq: 0,
        lag_strikes: 0,
        ping_pending: false,
        subscribed_at: VecDeque::with_capacity(SUBSCRIBE_LIMIT),
        _guard: guard,
    };
    connection.run().await
}

/// Why a connection ends.
#[derive(Debug)]
struct Ending {
    /// The close frame to send, if the socket can still take one.
    close: Option<(u16, String)>,
    /// Set when the server disconnects the client for misbehaving: the metric's reason.
    dropped: Option<&'static str>,
    log: Option<String>,
}

impl Ending {
    fn quiet() -> Ending {
        Ending { close: None, dropped: None, log: None }
    }

    fn close(code: u16, reason: impl Into<String>) -> Ending {
        Ending { close: Some((code, reason.into())), dropped: None, log: None }
    }

    fn dropped(reason: &'static str, close: Option<(u16, &str)>, log: String) -> Ending {
        Ending {
            close: close.map(|(code, text)| (code, text.to_owned())),
            dropped: Some(reason),
            log: Some(log),
        }
    }
}

type Step = Result<(), Ending>;

struct Connection {
    socket: WebSocket,
    hub: LiveHub,
    keys: KeyRing,
    principal: Option<Principal>,
    /// The key the caller authenticated with, re-checked at every ping (revocation).
    token: Option<String>,
    subscription: Option<Subscription>,
    /// The last snapshot sent, so the feed's latest is never sent twice.
    last_seq: u64,
    lag_strikes: u32,
    ping_pending: bool,
    /// When the last subscriptions were made, newest last (at most `SUBSCRIBE_LIMIT`).
    subscribed_at: VecDeque<Instant>,
    _guard: ConnectionGuard,
}

#[derive(Serialize)]
struct Hello {
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
    /// `ok`: already authenticated (header, or a server without keys); `required`: send
    /// `{"type": "auth", "api_key": …}` first.
    auth: &'static str,
}

#[derive(Serialize)]
struct Subscribed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    tenant_id: Option<&'a str>,
    components: &'a [Component],
    interval_s: u64,
    window_s: u64,
    /// Tenants this caller may pick (an admin's or open server's list has every tenant
    /// seen in the last hour; a tenant key's has its own).
    tenants: &'a [String],
    all_tenants: bool,
}

async fn next_frame(subscription: &mut Option<Subscription>) -> Result<Frame, RecvError> {
    match subscription {
        Some(subscription) => subscription.frames.recv().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn run(mut self) {
        let config = self.hub.config().clone();
        let mut shutdown = self.hub.shutdown();
        let start = tokio::time::Instant::now();
        let mut pings = tokio::time::interval_at(start + config.ping_every, config.ping_every);
        // After a slow write, the next ping waits a whole period for its pong.
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let auth_deadline = tokio::time::sleep(config.auth_timeout);
        tokio::pin!(auth_deadline);
        let opened = self.open().await;
        let ending = match opened {
            Err(ending) => ending,
            Ok(()) => loop {
                let step = tokio::select! {
                    _ = stopping(&mut shutdown) => {
                        Err(Ending::close(CLOSE_GOING_AWAY, "voicemon is shutting down"))
                    }
                    frame = next_frame(&mut self.subscription) => self.on_frame(frame).await,
                    message = self.socket.recv() => self.on_message(message).await,
                    _ = pings.tick() => self.on_ping().await,
                    _ = &mut auth_deadline, if self.principal.is_none() => Err(Ending::dropped(
                        "auth_timeout",
                        Some((CLOSE_UNAUTHORIZED, "no api key was sent in time")),
                        format!("no api key within {:?}", config.auth_timeout),
                    )),
                };
                if let Err(ending) = step {
                    break ending;
                }
            },
        };
        self.finish(ending).await;
    }

    async fn open(&mut self) -> Step {
        let auth = if self.principal.is_some() { "ok" } else { "required" };
        let hello = Hello { kind: "hello", version: 1, auth };
        self.write_json(&hello).await?;
        match self.principal.is_some() {
            true => self.subscribe_default().await,
            false => Ok(()),
        }
    }

    async fn finish(mut self, ending: Ending) {
        if let Some(reason) = ending.dropped {
            self.hub.metrics().dropped(reason);
            let why = ending.log.as_deref().unwrap_or(reason);
            tracing::info!(reason, "live: disconnected a client: {why}");
        }
        if let Some((code, reason)) = ending.close {
            let frame = CloseFrame { code, reason: Utf8Bytes::from(reason) };
            if let Ok(Ok(())) =
                tokio::time::timeout(CLOSE_WAIT, self.socket.send(Message::Close(Some(frame)))).await
            {
                // Give the client a moment to answer the close, then let go either way.
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while let Some(Ok(message)) = self.socket.recv().await {
                        if matches!(message, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
            }
        }
    }

    async fn on_frame(&mut self, frame: Result<Frame, RecvError>) -> Step {
        match frame {
            Ok(frame) => self.send_frame(frame).await,
            Err(RecvError::Lagged(skipped)) => {
                self.hub.metrics().skipped(skipped);
                self.lag_strikes += 1;
                let max = self.hub.config().max_lag_strikes;
                tracing::info!(skipped, strikes = self.lag_strikes, "live: a slow client skipped messages");
                if self.lag_strikes >= max {
                    return Err(Ending::dropped(
                        "lagging",
                        Some((CLOSE_TOO_SLOW, "too slow: the client kept falling behind")),
                        format!("fell behind {max} times in a row"),
                    ));
                }
                Ok(())
            }
            Err(RecvError::Closed) => Err(Ending::close(CLOSE_GOING_AWAY, "voicemon is shutting down")),
        }
    }

    async fn send_frame(&mut self, frame: Frame) -> Step {
        if let Some(seq) = frame.snapshot_seq {
            if seq <= self.last_seq {
                return Ok(());
            }
            self.last_seq = seq;
        }
        self.write(Message::Text(frame.text)).await?;
        let caught_up = self.subscription.as_ref().is_some_and(|s| s.frames.is_empty());
        if caught_up {
            self.lag_strikes = 0;
        }
        Ok(())
    }

    async fn on_message(&mut self, message: Option<Result<Message, axum::Error>>) -> Step {
        match message {
            None | Some(Err(_)) => Err(Ending::quiet()),
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await,
            Some(Ok(Message::Binary(_))) => self.send_error("bad_request", "send JSON text messages").await,
            Some(Ok(Message::Pong(_))) => {
                self.ping_pending = false;
                Ok(())
            }
            // Answered by the WebSocket layer; the answer goes out with the next write.
            Some(Ok(Message::Ping(_))) => self.flush().await,
            Some(Ok(Message::Close(_))) => {
                let _ = self.flush().await;
                Err(Ending::quiet())
            }
        }
    }

    async fn on_ping(&mut self) -> Step {
        if self.ping_pending {
            let every = self.hub.config().ping_every;
            return Err(Ending::dropped(
                "no_pong",
                Some((CLOSE_TOO_SLOW, "no pong to the last ping")),
                format!("no pong within {every:?}"),
            ));
        }
        if self.principal.is_some() {
            if let Err(err) = self.keys.authenticate_token(self.token.as_deref()).await {
                return Err(Ending::close(CLOSE_UNAUTHORIZED, err.to_string()));
            }
        }
        self.ping_pending = true;
        self.write(Message::Ping(axum::body::Bytes::from_static(b"voicemon"))).await
    }

    async fn on_text(&mut self, text: &str) -> Step {
        let message = match ClientMessage::parse(text) {
            Ok(message) => message,
            Err(reason) => return self.send_error("bad_request", &reason).await,
        };
        match message {
            ClientMessage::Auth { api_key } => {
                self.authenticate(api_key).await?;
                match self.subscription.is_none() {
                    true => self.subscribe_default().await,
                    false => Ok(()),
                }
            }
            ClientMessage::Subscribe(request) => self.on_subscribe(request).await,
        }
    }

    async fn on_subscribe(&mut self, mut request: SubscribeRequest) -> Step {
        if let Some(key) = request.api_key.take() {
            self.authenticate(key).await?;
        }
        let Some(principal) = &self.principal else {
            return Err(Ending::close(CLOSE_UNAUTHORIZED, "send an api key first"));
        };
        let tenant = match principal.read_scope(request.tenant_id.as_deref()) {
            Ok(tenant) => tenant,
            Err(err) => return self.send_error(err.code(), &err.to_string()).await,
        };
        match Scope::from_request(tenant, &request) {
            Ok(scope) => self.subscribe(scope).await,
            Err(reason) => self.send_error("bad_request", &reason).await,
        }
    }

    /// Checks a key sent in a message; a key that may not read ends the connection.
    async fn authenticate(&mut self, key: String) -> Step {
        let principal = match self.keys.authenticate_token(Some(&key)).await {
            Ok(principal) => principal,
            Err(err) => return Err(Ending::close(CLOSE_UNAUTHORIZED, err.to_string())),
        };
        if let Err(err) = principal.read_scope(None) {
            return Err(Ending::close(CLOSE_FORBIDDEN, err.to_string()));
        }
        // A new key keeps the subscription only if it may read the same tenants.
        let keeps = self.subscription.as_ref().is_none_or(|s| {
            principal.read_scope(s.scope.tenant_id.as_deref()).ok() == Some(s.scope.tenant_id.clone())
        });
        self.principal = Some(principal);
        self.token = Some(key);
        match keeps {
            true => Ok(()),
            false => self.subscribe_default().await,
        }
    }

    async fn subscribe_default(&mut self) -> Step {
        let Some(principal) = &self.principal else { return Ok(()) };
        match principal.read_scope(None) {
            Ok(tenant) => self.subscribe(Scope::default_for(tenant)).await,
            Err(err) => Err(Ending::close(CLOSE_FORBIDDEN, err.to_string())),
        }
    }

    async fn subscribe(&mut self, scope: Scope) -> Step {
        if self.subscribed_at.len() >= SUBSCRIBE_LIMIT {
            let oldest = self.subscribed_at.front().copied();
            if oldest.is_some_and(|at| at.elapsed() < SUBSCRIBE_WINDOW) {
                let message = format!(
                    "at most {SUBSCRIBE_LIMIT} subscriptions per {} s; the current one stays",
                    SUBSCRIBE_WINDOW.as_secs()
                );
                return self.send_error("too_many_requests", &message).await;
            }
            self.subscribed_at.pop_front();
        }
        self.subscribed_at.push_back(Instant::now());
        let all_tenants = self.principal.as_ref().is_some_and(|p| p.tenant().is_none());
        let tenants = match (all_tenants, &scope.tenant_id) {
            (true, _) => self.hub.tenants().await.as_ref().clone(),
            (false, Some(own)) => vec![own.clone()],
            (false, None) => Vec::new(),
        };
        let subscription = self.hub.subscribe(scope);
        let latest = subscription.latest.clone();
        let scope = subscription.scope.clone();
        self.subscription = Some(subscription);
        self.last_seq = 0;
        self.lag_strikes = 0;
        let ack = Subscribed {
            kind: "subscribed",
            tenant_id: scope.tenant_id.as_deref(),
            components: &scope.components,
            interval_s: scope.interval_s,
            window_s: scope.window_s,
            tenants: &tenants,
            all_tenants,
        };
        self.write_json(&ack).await?;
        match latest {
            Some(frame) => self.send_frame(frame).await,
            None => Ok(()),
        }
    }

    async fn send_error(&mut self, code: &str, message: &str) -> Step {
        self.write(Message::Text(error_frame(code, message).text)).await
    }

    async fn write_json(&mut self, value: &impl Serialize) -> Step {
        let text = serde_json::to_string(value).map_err(|_| Ending::quiet())?;
        self.write(Message::Text(text.into())).await
    }

    /// Sends one message; a socket that does not take it in time drops the client.
    async fn write(&mut self, message: Message) -> Step {
        let limit = self.hub.config().write_timeout;
        match tokio::time::timeout(limit, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::quiet()),
            Err(_) => Err(Ending::dropped(
                "write_timeout",
                None,
                format!("its socket did not take a message within {limit:?}"),
            )),
        }
    }

    async fn flush(&mut self) -> Step {
        let limit = self.hub.config().write_timeout;
        match tokio::time::timeout(limit, self.socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::quiet()),
            Err(_) => Err(Ending::dropped(
                "write_timeout",
                None,
                format!("its socket did not take a message within {limit:?}"),
            )),
        }
    }
}

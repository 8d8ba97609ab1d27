//! The HTTP listener's connections: the accept loop under the router, with a cap on
//! connections open at once, a deadline for each request head, an idle timeout, and the
//! process's open-file limit raised to what the system allows.
//!
//! Why: without these, sockets that send nothing (or half a request, or stay kept alive)
//! hold a file descriptor each for ever, and a thousand of them under the common limit of
//! 1024 open files stop every real request. Here a silent or idle connection is closed
//! after `idle_timeout`, a request head must be complete within `header_read_timeout`,
//! and at the cap new connections wait in the kernel's queue until one closes (logged),
//! so the file descriptors voicemon needs for its store and its own clients stay free.
//!
//! Shutdown: the listener closes, every connection is asked to finish (an idle one closes
//! at once, one with a request in flight after its answer), and [`serve`] returns once the
//! last one has. An upgraded connection (the live WebSocket) leaves this loop when it
//! upgrades: the live hub counts and closes those.

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How the HTTP server bounds its connections (`[server]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head (request line and headers) must be complete within this long of the
    /// server starting to wait for it: on a new connection, or after the previous answer.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long: one that sends
    /// nothing, or a kept-alive one between requests.
    pub idle_timeout: Duration,
    /// Connections open at once, at most; lowered at start to fit the open-file limit.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(15),
            max_connections: 10_000,
        }
    }
}

/// File descriptors kept for everything but HTTP connections (the store, outbound
/// clients, Redis, the live WebSockets' first moments), at most.
const RESERVED_FILES: u64 = 256;

/// How often the "connection limit reached" line may be logged.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long the accept loop pauses after an error that is not the client's (out of file
/// descriptors, say), so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(250);

/// The process's open-file limit: the soft limit before and after raising it, and the
/// hard limit it was raised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and logs what it became.
pub fn raise_open_file_limit() -> std::io::Result<OpenFiles> {
    let (before, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let now = rlimit::increase_nofile_limit(hard)?;
    let files = OpenFiles { before, now, hard };
    if now > before {
        tracing::info!(before, now, hard, "open-file limit raised from {before} to {now} (the hard limit)");
    } else {
        tracing::info!(now, hard, "open-file limit is {now} (the hard limit is {hard})");
    }
    Ok(files)
}

/// The connection cap that fits `open_files`: the configured one, or fewer so that a
/// quarter of the limit (at most [`RESERVED_FILES`]) stays for everything else.
pub fn fitting_cap(configured: usize, open_files: u64) -> usize {
    let reserved = (open_files / 4).min(RESERVED_FILES);
    let fits = usize::try_from(open_files.saturating_sub(reserved)).unwrap_or(usize::MAX);
    configured.min(fits).max(1)
}

/// Serves `router` on `listener` until `signal` completes, then lets every connection
/// finish and returns. `limits.max_connections` is the cap as it is (see [`fitting_cap`]).
pub async fn serve<Io>(
    listener: TcpListener,
    wrap: fn(TcpStream) -> Io,
    router: Router,
    limits: ConnectionLimits,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cap = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(cap));
    let (stop, stopping) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut full = FullLog::default();
    let mut signal = pin!(signal);
    loop {
        let permit = tokio::select! {
            permit = admit(&permits, cap, &mut full) => permit,
            () = &mut signal => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let connection = Connection { builder: builder.clone(), idle_timeout: limits.idle_timeout };
        tokio::spawn(connection.run(wrap(stream), router.clone(), permit, stopping.clone()));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it ends: all of them back means all ended.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

/// A permit for one more connection; at the cap, waits for one to close (and says so).
async fn admit(permits: &Arc<Semaphore>, cap: usize, full: &mut FullLog) -> OwnedSemaphorePermit {
    if let Ok(permit) = Arc::clone(permits).try_acquire_owned() {
        return permit;
    }
    full.note(cap);
    Arc::clone(permits).acquire_owned().await.expect("the connection semaphore is never closed")
}

/// Logs the cap being reached at most every [`FULL_LOG_EVERY`], with how often since.
#[derive(Default)]
struct FullLog {
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl FullLog {
    fn note(&mut self, cap: usize) {
        self.unlogged += 1;
        if self.logged_at.is_some_and(|at| at.elapsed() < FULL_LOG_EVERY) {
            return;
        }
        tracing::warn!(
            max_connections = cap,
            times = self.unlogged,
            "connection limit reached: {cap} connections are open; new connections wait until one \
             closes (server.max_connections, server.idle_timeout)"
        );
        self.logged_at = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// A client that gave up before it was accepted is its own business; anything else
/// (out of file descriptors) is logged and the loop pauses briefly.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %err, "cannot accept a connection; pausing");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// One accepted connection and how it is served.
struct Connection {
    builder: http1::Builder,
    idle_timeout: Duration,
}

impl Connection {
    /// Serves the connection until it ends; idle for `idle_timeout` or told to stop, it
    /// is shut down gracefully (a request in flight is answered first).
    async fn run<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self,
        stream: Io,
        router: Router,
        permit: OwnedSemaphorePermit,
        mut stopping: watch::Receiver<bool>,
    ) {
        let (activity, watched) = watch::channel(Activity { in_flight: 0, since: Instant::now() });
        let service = Tracked { inner: TowerToHyperService::new(router), activity: Arc::new(activity) };
        let mut connection =
            pin!(self.builder.serve_connection(TokioIo::new(stream), service).with_upgrades());
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    break;
                }
                () = idle_for(watched.clone(), self.idle_timeout), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = stopping.wait_for(|stop| *stop), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
        drop(permit);
    }
}

/// Requests in flight on a connection, and since when the count last changed.
#[derive(Debug, Clone, Copy)]
struct Activity {
    in_flight: usize,
    since: Instant,
}

/// Resolves once the connection has had no request in flight for `idle`.
async fn idle_for(mut activity: watch::Receiver<Activity>, idle: Duration) {
    loop {
        let now = *activity.borrow_and_update();
        if now.in_flight > 0 {
            if activity.changed().await.is_err() {
                return std::future::pending().await;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep_until(now.since + idle) => return,
            changed = activity.changed() => if changed.is_err() {
                return std::future::pending().await;
            },
        }
    }
}

/// The router as hyper calls it, counting the requests in flight.
#[derive(Clone)]
struct Tracked {
    inner: TowerToHyperService<Router>,
    activity: Arc<watch::Sender<Activity>>,
}

type Answer = Result<Response<axum::body::Body>, std::convert::Infallible>;

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<axum::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::begin(Arc::clone(&self.activity));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        })
    }
}

/// One request in flight; the count goes down when it is dropped (answered or cancelled).
struct InFlight(Arc<watch::Sender<Activity>>);

impl InFlight {
    fn begin(activity: Arc<watch::Sender<Activity>>) -> InFlight {
        activity.send_modify(|now| {
            now.in_flight += 1;
            now.since = Instant::now();
        });
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|now| {
            now.in_flight = now.in_flight.saturating_sub(1);
            now.since = Instant::now();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_quarter_of_a_small_open_file_limit_free() {
        assert_eq!(fitting_cap(10_000, 1024), 768);
        assert_eq!(fitting_cap(10_000, 256), 192);
    }

    #[test]
    fn the_cap_leaves_at_most_256_files_of_a_large_limit_and_never_exceeds_the_configured_one() {
        assert_eq!(fitting_cap(10_000, 1_048_576), 10_000);
        assert_eq!(fitting_cap(100_000, 65_536), 65_280);
        assert_eq!(fitting_cap(0, 1024), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_once_its_last_request_ended_that_long_ago() {
        let (activity, watched) = watch::channel(Activity { in_flight: 0, since: Instant::now() });
        let activity = Arc::new(activity);
        let started = Instant::now();
        let request = InFlight::begin(Arc::clone(&activity));
        let idle = tokio::spawn(idle_for(watched, Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!idle.is_finished(), "a request in flight keeps the connection busy");
        drop(request);
        idle.await.expect("the idle wait ends");
        assert_eq!(started.elapsed(), Duration::from_secs(65));
    }
}

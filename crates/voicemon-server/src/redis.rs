//! The platform's Redis cache, watched by polling `INFO` (a few lines of RESP over TCP;
//! no client library is needed for one read-only command).
//!
//! The hit rate is computed from the change of `keyspace_hits` / `keyspace_misses`
//! between two polls, not from their lifetime totals, so it shows the cache as it is now.
//! An unreachable Redis is a reported state, never an error of voicemon.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use utoipa::ToSchema;
use voicemon_core::clock::Clock;

/// How long one poll may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the Redis is: `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for
/// TLS (verified against the system trust store, as every outbound connection is).
#[derive(Debug, Clone)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

impl RedisTarget {
    /// Parses a `redis://` or `rediss://` URL. Errors never quote the URL (it may hold a
    /// password).
    pub fn parse(url: &str) -> Result<RedisTarget, String> {
        let (tls, rest) = match (url.strip_prefix("rediss://"), url.strip_prefix("redis://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err("not a redis:// or rediss:// URL".to_owned()),
        };
        let rest = rest.split('/').next().unwrap_or(rest);
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        let (username, password) = match credentials.map(|c| c.split_once(':').unwrap_or(("", c))) {
            Some((user, password)) => (
                (!user.is_empty()).then(|| percent_decode(user)),
                (!password.is_empty()).then(|| SecretString::from(percent_decode(password))),
            ),
            None => (None, None),
        };
        let (host, port) = split_host_port(address)?;
        if host.is_empty() {
            return Err("the redis URL has no host".into());
        }
        Ok(RedisTarget { host: host.to_owned(), port, tls, username, password })
    }

    /// The password, to authenticate with.
    pub fn password(&self) -> Option<&str> {
        self.password.as_ref().map(|password| password.expose_secret())
    }

    /// `host:port` (`[v6]:port`), never the password.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl PartialEq for RedisTarget {
    fn eq(&self, other: &RedisTarget) -> bool {
        (&self.host, self.port, self.tls, &self.username, self.password())
            == (&other.host, other.port, other.tls, &other.username, other.password())
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 6379.
fn split_host_port(address: &str) -> Result<(&str, u16), String> {
    let bad_port = || "the redis URL has a port that is not a number".to_owned();
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| "unclosed [ in the redis URL".to_owned())?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, port.parse().map_err(|_| bad_port())?)),
            None if after.is_empty() => Ok((host, 6379)),
            None => Err("unexpected text after ] in the redis URL".into()),
        };
    }
    match address.rsplit_once(':') {
        Some((host, port)) => Ok((host, port.parse().map_err(|_| bad_port())?)),
        None => Ok((address, 6379)),
    }
}

/// Decodes `%XX` escapes (user names and passwords in URLs).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// What `/metrics/health` shows of Redis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct RedisHealth {
    pub configured: bool,
    pub address: Option<String>,
    pub reachable: Option<bool>,
    /// Hits / (hits + misses) between the last two polls; `null` with no lookups.
    pub hit_rate: Option<f64>,
    pub ops_per_second: Option<f64>,
    pub used_memory_bytes: Option<u64>,
    pub last_error: Option<String>,
    /// When it was last polled (unix ms).
    pub checked_ms: Option<i64>,
}

/// The counters one poll reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InfoCounters {
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub total_commands_processed: u64,
    pub used_memory: u64,
}

impl InfoCounters {
    /// Reads the fields voicemon needs from `INFO` text (`name:value` lines).
    pub fn parse(info: &str) -> InfoCounters {
        let mut counters = InfoCounters::default();
        for line in info.lines() {
            let Some((name, value)) = line.trim().split_once(':') else { continue };
            let Ok(value) = value.trim().parse::<u64>() else { continue };
            match name {
                "keyspace_hits" => counters.keyspace_hits = value,
                "keyspace_misses" => counters.keyspace_misses = value,
                "total_commands_processed" => counters.total_commands_processed = value,
                "used_memory" => counters.used_memory = value,
                _ => {}
            }
        }
        counters
    }
}

/// Hit rate and ops/s between two polls `elapsed_ms` apart. A counter that went down
/// (Redis restarted or `CONFIG RESETSTAT`) yields no rate for that interval.
pub fn rates(before: &InfoCounters, after: &InfoCounters, elapsed_ms: i64) -> (Option<f64>, Option<f64>) {
    let hits = after.keyspace_hits.checked_sub(before.keyspace_hits);
    let misses = after.keyspace_misses.checked_sub(before.keyspace_misses);
    let hit_rate = match (hits, misses) {
        (Some(hits), Some(misses)) if hits + misses > 0 => Some(hits as f64 / (hits + misses) as f64),
        _ => None,
    };
    let ops = after.total_commands_processed.checked_sub(before.total_commands_processed);
    let ops_per_second = ops.filter(|_| elapsed_ms > 0).map(|ops| ops as f64 * 1000.0 / elapsed_ms as f64);
    (hit_rate, ops_per_second)
}

/// Polls Redis in the background and keeps the latest [`RedisHealth`].
#[derive(Debug, Clone, Default)]
pub struct RedisMonitor {
    health: Arc<RwLock<RedisHealth>>,
}

impl RedisMonitor {
    /// A monitor reporting Redis as not configured.
    pub fn disabled() -> RedisMonitor {
        RedisMonitor::default()
    }

    pub fn health(&self) -> RedisHealth {
        self.health.read().map(|h| h.clone()).unwrap_or_default()
    }

    /// Starts polling `target` every `every` until `shutdown` turns true.
    pub fn spawn(
        target: RedisTarget,
        every: Duration,
        clock: Arc<dyn Clock>,
        mut shutdown: watch::Receiver<bool>,
    ) -> RedisMonitor {
        let monitor = RedisMonitor::default();
        monitor.set(RedisHealth {
            configured: true,
            address: Some(target.address()),
            ..RedisHealth::default()
        });
        let polling = monitor.clone();
        tokio::spawn(async move {
            let mut previous: Option<(i64, InfoCounters)> = None;
            let mut ticks = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let now_ms = clock.now_ms();
                let outcome = tokio::time::timeout(POLL_TIMEOUT, poll(&target)).await;
                let result = outcome.unwrap_or_else(|_| Err(timed_out(&target)));
                previous = polling.update(&target, now_ms, result, previous);
            }
        });
        monitor
    }

    fn set(&self, health: RedisHealth) {
        if let Ok(mut current) = self.health.write() {
            *current = health;
        }
    }

    fn update(
        &self,
        target: &RedisTarget,
        now_ms: i64,
        result: Result<InfoCounters, String>,
        previous: Option<(i64, InfoCounters)>,
    ) -> Option<(i64, InfoCounters)> {
        let base = RedisHealth {
            configured: true,
            address: Some(target.address()),
            checked_ms: Some(now_ms),
            ..RedisHealth::default()
        };
        match result {
            Ok(counters) => {
                let (hit_rate, ops_per_second) = previous
                    .map(|(at, before)| rates(&before, &counters, now_ms - at))
                    .unwrap_or((None, None));
                self.set(RedisHealth {
                    reachable: Some(true),
                    hit_rate,
                    ops_per_second,
                    used_memory_bytes: Some(counters.used_memory),
                    ..base
                });
                Some((now_ms, counters))
            }
            Err(error) => {
                if self.health().last_error.as_ref() != Some(&error) {
                    tracing::warn!(%error, address = %target.address(), "the platform's Redis cannot be polled");
                }
                self.set(RedisHealth { reachable: Some(false), last_error: Some(error), ..base });
                None
            }
        }
    }
}

fn timed_out(target: &RedisTarget) -> String {
    let hint = if target.tls { " (a rediss:// URL needs a port that speaks TLS)" } else { "" };
    format!("no answer from {} within {}s{hint}", target.address(), POLL_TIMEOUT.as_secs())
}

/// One `INFO stats` + `INFO memory` round trip, over TLS for `rediss://`.
pub async fn poll(target: &RedisTarget) -> Result<InfoCounters, String> {
    let address = target.address();
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    if !target.tls {
        return exchange(BufReader::new(tcp), target).await;
    }
    let config = voicemon_tls::client_config().map_err(|err| err.to_string())?;
    let name = ServerName::try_from(target.host.clone())
        .map_err(|_| format!("`{}` is not a host name TLS can verify", target.host))?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|err| format!("TLS handshake with {address} failed: {}", voicemon_tls::error_chain(&err)))?;
    exchange(BufReader::new(stream), target).await
}

/// `AUTH` when a password is given, then the two `INFO` sections.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: BufReader<S>,
    target: &RedisTarget,
) -> Result<InfoCounters, String> {
    if let Some(password) = target.password() {
        let mut auth = vec!["AUTH"];
        if let Some(user) = &target.username {
            auth.push(user);
        }
        auth.push(password);
        command(&mut stream, &auth).await?;
    }
    let stats = command(&mut stream, &["INFO", "stats"]).await?;
    let memory = command(&mut stream, &["INFO", "memory"]).await?;
    let mut counters = InfoCounters::parse(&stats);
    counters.used_memory = InfoCounters::parse(&memory).used_memory;
    Ok(counters)
}

/// Sends one command and reads a simple-string, error or bulk-string reply.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    parts: &[&str],
) -> Result<String, String> {
    let mut request = format!("*{}\r\n", parts.len());
    for part in parts {
        request.push_str(&format!("${}\r\n{part}\r\n", part.len()));
    }
    stream.get_mut().write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    read_reply(stream).await
}

/// The largest bulk reply read: `INFO` sections are a few KiB, and a length is what the
/// other end claims, not what it sends.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Reads one simple-string, error or bulk-string reply.
pub async fn read_reply<R: AsyncBufRead + Unpin>(stream: &mut R) -> Result<String, String> {
    let mut header = String::new();
    stream.read_line(&mut header).await.map_err(|e| e.to_string())?;
    let header = header.trim_end();
    match header.as_bytes().first() {
        Some(b'+') => Ok(header[1..].to_owned()),
        Some(b'-') => Err(format!("redis answered: {}", &header[1..])),
        Some(b'$') => {
            let length: usize = header[1..].parse().map_err(|_| format!("bad reply header `{header}`"))?;
            if length > MAX_REPLY_BYTES {
                return Err(format!(
                    "a reply of {length} bytes is more than {MAX_REPLY_BYTES}; is this Redis?"
                ));
            }
            let mut body = vec![0u8; length + 2];
            stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
            body.truncate(length);
            String::from_utf8(body).map_err(|_| "reply is not UTF-8".into())
        }
        _ => Err(format!("unexpected reply `{header}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzing (`fuzz/fuzz_targets/redis_reply.rs`) found that a bulk reply claiming
    /// 777 777 777 777 777 bytes made voicemon allocate them before reading one (and a
    /// length of `usize::MAX` overflowed `length + 2`). Whatever answers at `REDIS_URL`
    /// may say anything: a reply over a mebibyte is refused unread.
    #[tokio::test]
    async fn a_bulk_reply_claiming_more_than_a_mebibyte_is_refused_before_anything_is_allocated() {
        for header in ["$777777777777777\r\n", "$18446744073709551615\r\n"] {
            let mut reader = BufReader::new(header.as_bytes());
            let refused = read_reply(&mut reader).await.expect_err("refused");
            assert!(refused.contains("is more than"), "{refused}");
        }
    }

    #[tokio::test]
    async fn a_bulk_reply_is_read_whole_and_its_crlf_dropped() {
        let mut reader = BufReader::new(&b"$5\r\nhello\r\n"[..]);
        assert_eq!(read_reply(&mut reader).await, Ok("hello".to_owned()));
    }
}

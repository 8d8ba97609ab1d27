//! The platform's Redis, watched through `INFO`: URL parsing, counter parsing and rates
//! (pure), then against a real Redis given by `VOICEMON_TEST_REDIS_URL`
//! (e.g. `redis://127.0.0.1:6379`); without it those tests say so and pass.
//!
//! Keyspace hits and misses are server-wide counters, so the tests that make lookups
//! take `REDIS_TRAFFIC` (no two of them run at once) and expect the Redis to be otherwise
//! idle, as a local test Redis is. Another client making lookups meanwhile would make
//! the exact hit-rate assertions fail, and their messages say so.

use super::{health, health_until, number};
use crate::helpers::spawn_app_with;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use voicemon_server::redis::{poll, rates, InfoCounters, RedisTarget};

const REDIS_URL_VARIABLE: &str = "VOICEMON_TEST_REDIS_URL";

/// Serialises the tests that make lookups on the real Redis.
static REDIS_TRAFFIC: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The real Redis to test against, or `None` after saying how to enable the test.
fn real_redis_url(test: &str) -> Option<String> {
    match std::env::var(REDIS_URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            println!(
                "skipped {test}: it needs a real Redis; set {REDIS_URL_VARIABLE}=redis://127.0.0.1:6379 to run it"
            );
            None
        }
    }
}

fn target(host: &str, port: u16, username: Option<&str>, password: Option<&str>) -> RedisTarget {
    RedisTarget {
        host: host.to_owned(),
        port,
        tls: false,
        username: username.map(str::to_owned),
        password: password.map(|password| password.to_owned().into()),
    }
}

/// A key only this test process uses.
fn test_key(name: &str) -> String {
    format!("voicemon-test:{}:{name}", std::process::id())
}

// ---------------------------------------------------------------------------------------
// A minimal RESP client, to make real lookups.

#[derive(Debug, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<String>),
}

struct RespClient {
    stream: BufReader<TcpStream>,
}

impl RespClient {
    /// Connects, authenticates as the URL says and selects database 15, away from data.
    async fn connect(target: &RedisTarget) -> RespClient {
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .unwrap_or_else(|err| panic!("cannot connect to redis at {}: {err}", target.address()));
        let mut client = RespClient { stream: BufReader::new(stream) };
        if let Some(password) = target.password() {
            let mut auth = vec!["AUTH"];
            if let Some(user) = &target.username {
                auth.push(user);
            }
            auth.push(password);
            client.expect_ok(&auth).await;
        }
        client.expect_ok(&["SELECT", "15"]).await;
        client
    }

    async fn command(&mut self, parts: &[&str]) -> Reply {
        let mut request = format!("*{}\r\n", parts.len());
        for part in parts {
            request.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        self.stream.get_mut().write_all(request.as_bytes()).await.expect("the command is sent");
        let mut header = String::new();
        self.stream.read_line(&mut header).await.expect("a reply");
        let header = header.trim_end();
        let (kind, rest) = header.split_at(1);
        match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Integer(rest.parse().expect("an integer reply")),
            "$" if rest == "-1" => Reply::Bulk(None),
            "$" => {
                let length: usize = rest.parse().expect("a bulk length");
                let mut body = vec![0u8; length + 2];
                self.stream.read_exact(&mut body).await.expect("a bulk body");
                body.truncate(length);
                Reply::Bulk(Some(String::from_utf8(body).expect("UTF-8")))
            }
            _ => panic!("unexpected reply {header:?}"),
        }
    }

    async fn expect_ok(&mut self, parts: &[&str]) {
        assert_eq!(self.command(parts).await, Reply::Status("OK".into()), "{}", parts[0]);
    }

    /// `hits` GETs of `key` (which holds "cached") and `misses` GETs of keys that do not exist.
    async fn lookups(&mut self, key: &str, hits: usize, misses: usize) {
        for _ in 0..hits {
            assert_eq!(self.command(&["GET", key]).await, Reply::Bulk(Some("cached".into())));
        }
        for i in 0..misses {
            let missing = format!("{key}:missing:{i}");
            assert_eq!(self.command(&["GET", &missing]).await, Reply::Bulk(None));
        }
    }
}

// ---------------------------------------------------------------------------------------
// RedisTarget::parse.

#[test]
fn redis_urls_give_host_port_and_optional_credentials() {
    let cases = [
        ("redis://127.0.0.1:6379", target("127.0.0.1", 6379, None, None)),
        ("redis://localhost", target("localhost", 6379, None, None)),
        ("redis://cache.internal:6380/2", target("cache.internal", 6380, None, None)),
        ("redis://:s3cret@cache.internal:6380/0", target("cache.internal", 6380, None, Some("s3cret"))),
        (
            "redis://monitor:s3cret@cache.internal",
            target("cache.internal", 6379, Some("monitor"), Some("s3cret")),
        ),
        ("redis://monitor:@cache.internal", target("cache.internal", 6379, Some("monitor"), None)),
        ("redis://:p@ss@cache.internal:7000", target("cache.internal", 7000, None, Some("p@ss"))),
        ("redis://[::1]:6380", target("::1", 6380, None, None)),
    ];
    for (url, expected) in cases {
        assert_eq!(RedisTarget::parse(url), Ok(expected), "{url}");
    }
}

#[test]
fn a_rediss_url_asks_for_tls_with_the_same_parts() {
    let parsed = RedisTarget::parse("rediss://monitor:s3cret@cache.internal:6380/0").expect("a valid URL");
    assert!(parsed.tls);
    assert_eq!(
        parsed,
        RedisTarget { tls: true, ..target("cache.internal", 6380, Some("monitor"), Some("s3cret")) }
    );
    assert!(!RedisTarget::parse("redis://cache.internal").expect("a valid URL").tls);
}

#[test]
fn an_ipv6_redis_url_without_a_port_uses_the_default_port() {
    assert_eq!(RedisTarget::parse("redis://[::1]"), Ok(target("::1", 6379, None, None)));
    assert_eq!(RedisTarget::parse("redis://[::1]/0"), Ok(target("::1", 6379, None, None)));
}

#[test]
fn percent_encoded_credentials_are_decoded() {
    // A password with `@`, `/` or `#` must be percent-encoded in a URL (RFC 3986, 3.2.1);
    // AUTH needs the password itself.
    assert_eq!(
        RedisTarget::parse("redis://:p%40ss%2Fw%23rd@cache.internal:6379"),
        Ok(target("cache.internal", 6379, None, Some("p@ss/w#rd")))
    );
}

#[test]
fn the_address_shown_is_host_and_port_never_the_password() {
    let parsed = RedisTarget::parse("redis://monitor:s3cret@cache.internal:6380").expect("a valid URL");
    assert_eq!(parsed.address(), "cache.internal:6380");
}

#[test]
fn urls_that_are_not_redis_or_lack_a_host_or_a_port_number_are_refused() {
    let cases = [
        ("http://cache.internal:6379", "not a redis:// or rediss:// URL"),
        ("cache.internal:6379", "not a redis:// or rediss:// URL"),
        ("", "not a redis:// or rediss:// URL"),
        ("rediss://", "no host"),
        ("redis://", "no host"),
        ("redis://:6379", "no host"),
        ("redis://:s3cret@", "no host"),
        ("redis://cache.internal:", "port that is not a number"),
        ("redis://cache.internal:63a9", "port that is not a number"),
        ("redis://cache.internal:70000", "port that is not a number"),
    ];
    for (url, expected) in cases {
        let error = RedisTarget::parse(url).expect_err(url);
        assert!(error.contains(expected), "{url}: {error:?} does not say {expected:?}");
    }
}

#[test]
fn a_refused_redis_url_is_never_quoted_with_its_password() {
    // The message ends up in logs and in the start-up error (StartError::Redis).
    for url in ["redis://:s3cret@cache.internal:63a9", "redis://monitor:s3cret@:6379"] {
        let error = RedisTarget::parse(url).expect_err(url);
        assert!(!error.contains("s3cret"), "the password is in the error: {error:?}");
    }
}

// ---------------------------------------------------------------------------------------
// InfoCounters::parse and rates.

const INFO_STATS: &str = "# Stats\r\ntotal_connections_received:7\r\ntotal_commands_processed:1234\r\n\
    instantaneous_ops_per_sec:3\r\nkeyspace_hits:900\r\nkeyspace_misses:100\r\nevicted_keys:0\r\n";
const INFO_MEMORY: &str = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\
    used_memory_rss:2097152\r\nused_memory_peak:3145728\r\nused_memory_peak_human:3.00M\r\n";

#[test]
fn info_counters_are_read_from_name_value_lines() {
    assert_eq!(
        InfoCounters::parse(INFO_STATS),
        InfoCounters {
            keyspace_hits: 900,
            keyspace_misses: 100,
            total_commands_processed: 1_234,
            used_memory: 0
        }
    );
    assert_eq!(InfoCounters::parse(INFO_MEMORY).used_memory, 1_048_576, "used_memory, not its look-alikes");
}

#[test]
fn missing_or_unreadable_info_fields_are_zero() {
    assert_eq!(InfoCounters::parse(""), InfoCounters::default());
    let odd = "keyspace_hits:lots\r\nno colon here\r\n  keyspace_misses:  12  \r\n:5\r\nused_memory:-1\r\n";
    assert_eq!(InfoCounters::parse(odd), InfoCounters { keyspace_misses: 12, ..InfoCounters::default() });
}

fn counters(hits: u64, misses: u64, commands: u64) -> InfoCounters {
    InfoCounters {
        keyspace_hits: hits,
        keyspace_misses: misses,
        total_commands_processed: commands,
        used_memory: 0,
    }
}

#[test]
fn the_hit_rate_and_ops_come_from_the_change_between_two_polls() {
    let before = counters(100, 50, 1_000);
    // 30 hits and 10 misses since, 60 commands in 2 s.
    assert_eq!(rates(&before, &counters(130, 60, 1_060), 2_000), (Some(0.75), Some(30.0)));
    // Lifetime totals (100 of 150) would say 0.67 here; the interval says all misses.
    assert_eq!(rates(&before, &counters(100, 60, 1_010), 1_000), (Some(0.0), Some(10.0)));
}

#[test]
fn no_lookups_between_polls_give_no_hit_rate_and_no_elapsed_time_no_ops() {
    let before = counters(100, 50, 1_000);
    assert_eq!(rates(&before, &counters(100, 50, 1_005), 1_000), (None, Some(5.0)));
    assert_eq!(rates(&before, &counters(130, 60, 1_060), 0), (Some(0.75), None));
    assert_eq!(rates(&before, &counters(130, 60, 1_060), -1_000), (Some(0.75), None));
}

#[test]
fn a_counter_that_went_down_yields_no_rate_for_that_interval() {
    let before = counters(100, 50, 1_000);
    // Redis restarted: everything from zero.
    assert_eq!(rates(&before, &counters(3, 1, 10), 1_000), (None, None));
    // CONFIG RESETSTAT between polls, only some counters seen lower.
    assert_eq!(rates(&before, &counters(130, 10, 1_060), 2_000), (None, Some(30.0)));
    assert_eq!(rates(&before, &counters(20, 60, 1_060), 2_000), (None, Some(30.0)));
    assert_eq!(rates(&before, &counters(130, 60, 5), 2_000), (Some(0.75), None));
}

// ---------------------------------------------------------------------------------------
// Against the real Redis.

#[tokio::test]
async fn two_polls_around_real_lookups_give_their_exact_hit_rate() {
    let Some(url) = real_redis_url("two_polls_around_real_lookups_give_their_exact_hit_rate") else { return };
    let target = RedisTarget::parse(&url).expect("VOICEMON_TEST_REDIS_URL is a redis:// URL");
    let _only_us = REDIS_TRAFFIC.lock().await;
    let mut client = RespClient::connect(&target).await;
    let key = test_key("hit-rate");
    client.expect_ok(&["SET", &key, "cached"]).await;

    let before = poll(&target).await.expect("the real redis answers INFO");
    client.lookups(&key, 30, 10).await;
    let after = poll(&target).await.expect("the real redis answers INFO");
    assert_eq!(client.command(&["DEL", &key]).await, Reply::Integer(1));

    let idle = "(is another client making lookups on this redis?)";
    assert_eq!(after.keyspace_hits - before.keyspace_hits, 30, "hits {idle}");
    assert_eq!(after.keyspace_misses - before.keyspace_misses, 10, "misses {idle}");
    let (hit_rate, ops_per_second) = rates(&before, &after, 2_000);
    assert_eq!(hit_rate, Some(30.0 / 40.0), "{idle}");
    let ops_per_second = ops_per_second.expect("ops over 2 s");
    assert!(ops_per_second >= 20.0, "40 GETs in 2 s at least: {ops_per_second}");
    assert!(after.used_memory > 0, "{after:?}");
}

#[tokio::test]
async fn polling_with_a_wrong_password_reports_what_redis_answered() {
    let Some(url) = real_redis_url("polling_with_a_wrong_password_reports_what_redis_answered") else {
        return;
    };
    let mut target = RedisTarget::parse(&url).expect("VOICEMON_TEST_REDIS_URL is a redis:// URL");
    target.password = Some("voicemon-test-wrong-password".into());
    let error = poll(&target).await.expect_err("AUTH with a wrong password fails");
    assert!(error.starts_with("redis answered: "), "{error:?}");
}

#[tokio::test]
async fn polling_an_address_where_nothing_listens_is_an_error_not_a_panic() {
    let error = poll(&target("127.0.0.1", 1, None, None)).await.expect_err("nothing listens on port 1");
    assert!(!error.is_empty());
}

#[tokio::test]
async fn the_server_reports_a_reachable_redis_with_the_hit_rate_between_its_polls() {
    let Some(url) =
        real_redis_url("the_server_reports_a_reachable_redis_with_the_hit_rate_between_its_polls")
    else {
        return;
    };
    let target = RedisTarget::parse(&url).expect("VOICEMON_TEST_REDIS_URL is a redis:// URL");
    let _only_us = REDIS_TRAFFIC.lock().await;
    let mut client = RespClient::connect(&target).await;
    let key = test_key("server");
    client.expect_ok(&["SET", &key, "cached"]).await;
    let app = spawn_app_with(|config| {
        config.health.redis_url = Some(url.clone().into());
        config.health.redis_poll = Duration::from_millis(100);
    })
    .await;

    // Only hits are made, and the manual clock moves so the monitor sees time pass.
    let mut redis = Value::Null;
    for _ in 0..200 {
        client.lookups(&key, 5, 0).await;
        app.clock.advance(100);
        redis = health(&app, None).await["redis"].clone();
        if redis["reachable"] == true && redis["hit_rate"].is_number() && redis["ops_per_second"].is_number()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.command(&["DEL", &key]).await, Reply::Integer(1));
    assert_eq!(redis["reachable"], true, "{redis}");
    assert_eq!(redis["configured"], true, "{redis}");
    assert_eq!(redis["address"], target.address(), "{redis}");
    assert_eq!(
        number(&redis["hit_rate"]),
        1.0,
        "only hits were made between the polls (is another client making lookups?): {redis}"
    );
    assert!(number(&redis["ops_per_second"]) > 0.0, "{redis}");
    assert!(redis["used_memory_bytes"].as_u64().is_some_and(|bytes| bytes > 0), "{redis}");
    assert!(redis["checked_ms"].is_i64(), "{redis}");
    assert_eq!(redis["last_error"], Value::Null, "{redis}");

    let body = health(&app, None).await;
    assert_eq!(body["status"], "ok", "a reachable redis is no reason: {body}");
    app.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_redis_degrades_the_status_and_the_server_keeps_answering() {
    let app = spawn_app_with(|config| {
        config.health.redis_url = Some("redis://127.0.0.1:1".into());
        config.health.redis_poll = Duration::from_millis(100);
    })
    .await;
    let body =
        health_until(&app, "/metrics/health", None, 200, |body| body["redis"]["reachable"] == false).await;
    let redis = &body["redis"];
    assert_eq!(redis["reachable"], false, "{body}");
    assert_eq!(redis["configured"], true, "{redis}");
    assert_eq!(redis["address"], "127.0.0.1:1", "{redis}");
    assert!(!redis["last_error"].as_str().unwrap_or_default().is_empty(), "an error is given: {redis}");
    assert_eq!((redis["hit_rate"].clone(), redis["ops_per_second"].clone()), (Value::Null, Value::Null));
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(
        body["reasons"],
        serde_json::json!([{"severity": "degraded", "message": "redis at 127.0.0.1:1 is unreachable"}]),
        "{body}"
    );

    let (status, ready) = app.get_json("/readyz", None).await;
    assert_eq!(status, 200, "voicemon's own readiness does not depend on redis: {ready}");
    let (status, alive) = app.get_json("/healthz", None).await;
    assert_eq!(status, 200, "{alive}");
    let again = health(&app, None).await;
    assert_eq!(again["redis"]["reachable"], false, "{again}");
    app.shutdown().await;
}

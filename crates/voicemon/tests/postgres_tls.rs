//! TLS to PostgreSQL with the real binary: `sslmode` decides whether the pool's
//! connections are encrypted (as the server itself reports in `pg_stat_ssl`), the
//! `verify-*` modes check the server's certificate against `sslrootcert` (the test
//! server's self-signed certificate, `SHOW ssl_cert_file`, serves as its own root), a
//! refusal says why, and a password in `DATABASE_URL` is never printed.
//!
//! Every run gets an empty `HOME` (so no `~/.postgresql/root.crt` applies unless a test
//! puts one there) and, for the one-shot runs, none of the runner's `PGSSLMODE`,
//! `PGSSLROOTCERT`, `SSL_CERT_FILE`, `SSL_CERT_DIR`.

use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{postgres_url, time_from_now, Server, TestSchema, BIN};

const SUITE: &str = "the PostgreSQL TLS tests";
const PASSWORD: &str = "hunter2-secret";
/// How long a refused start may take: a config error or a failed handshake is immediate,
/// well under the store's 5 s connect timeout.
const QUICK: Duration = Duration::from_secs(4);

/// What a `voicemon` run that stopped by itself printed, and how it ended.
struct Ran {
    status: ExitStatus,
    took: Duration,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Asserts the run failed within [`QUICK`] and returns its stderr.
    fn refused(&self) -> &str {
        assert!(!self.status.success(), "voicemon was expected to refuse, but: {}", self.output());
        assert!(self.took < QUICK, "the refusal took {:?}: {}", self.took, self.output());
        &self.stderr
    }
}

/// Runs `voicemon <args>` with `DATABASE_URL=url` (plus `env`) from an empty directory
/// that is also `HOME` (or `home` when given), with the TLS variables of the runner's
/// environment removed and the data directory inside it; kills it and fails the test if
/// it has not stopped within `limit`.
fn run(args: &[&str], url: &str, env: &[(&str, &str)], home: Option<&Path>, limit: Duration) -> Ran {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("PGSSLMODE")
        .env_remove("PGSSLROOTCERT")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("VOICEMON_CONFIG")
        .env_remove("METRICS_API_PORT")
        .env_remove("REDIS_URL")
        .env_remove("SLACK_WEBHOOK_URL")
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        // info: the start-up lines that name the database are printed too.
        .env("RUST_LOG", "info")
        .env("HOME", home.unwrap_or(dir.path()))
        .env("VOICEMON_DATA_DIR", dir.path().join("data"))
        .env("DATABASE_URL", url)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("voicemon starts");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("voicemon's status") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let (stdout, stderr) = (stdout.join().expect("stdout"), stderr.join().expect("stderr"));
    let Some(status) = status else {
        panic!("voicemon {args:?} was still running after {limit:?}; stdout: {stdout}\nstderr: {stderr}");
    };
    Ran { status, took, stdout, stderr }
}

/// `url` with its host replaced by `host` (the certificate names `localhost` only).
fn with_host(url: &str, host: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (format!("{user}@"), host_port),
        None => (String::new(), authority),
    };
    let port = host_port.rsplit_once(':').map(|(_, port)| format!(":{port}")).unwrap_or_default();
    format!("{scheme}://{user}{host}{port}{path}")
}

/// `url` with `user:password@` in place of its user.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let host_start = rest.find('@').map(|at| at + 1).unwrap_or(0);
    let user = rest[..host_start].trim_end_matches('@').split(':').next().unwrap_or_default();
    let user = if user.is_empty() { "postgres" } else { user };
    format!("{scheme}://{user}:{password}@{}", &rest[host_start..])
}

/// The test server's certificate file, after checking the server has TLS on.
fn server_certificate(schema: &TestSchema) -> PathBuf {
    let on: String = schema.query("SHOW ssl")[0].get(0);
    assert_eq!(
        on, "on",
        "{SUITE} need the test PostgreSQL to have ssl = on (Debian's snakeoil certificate will do)"
    );
    let file: String = schema.query("SHOW ssl_cert_file")[0].get(0);
    let path = PathBuf::from(&file);
    assert!(
        path.is_absolute() && path.exists(),
        "{SUITE} read the server's certificate as their root; ssl_cert_file = {file} is not readable here"
    );
    path
}

/// Whether each connection of `application_name` to the test database is encrypted,
/// as the server sees it.
fn encrypted_connections(schema: &TestSchema, application_name: &str) -> Vec<bool> {
    schema
        .query(&format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = '{application_name}' AND a.datname = current_database()"
        ))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A name for this test's server's connections: no other test's match it.
fn application_name(schema: &TestSchema, tag: &str) -> String {
    format!("vm_tls_{tag}_{}", schema.name.trim_start_matches("vm_e2e_"))
}

/// Starts `voicemon serve` on `url` with an empty `HOME`.
fn serve(dir: &Path, url: &str) -> Server {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("the home directory");
    let home = home.to_str().expect("a UTF-8 path").to_owned();
    Server::start_with_env(&dir.join("data"), None, &[], &[("DATABASE_URL", url), ("HOME", &home)])
}

/// One whole call of `tenant`, started a minute ago and ended 10 s ago.
fn a_call(tenant: &str, call_id: &str) -> Value {
    json!([
        {"id": format!("{call_id}-started"), "type": "call.started", "timestamp": time_from_now(-60_000),
         "tenant_id": tenant, "call_id": call_id, "objective": "book_appointment", "channel": "phone"},
        {"id": format!("{call_id}-turn-1"), "type": "turn.completed", "timestamp": time_from_now(-50_000),
         "tenant_id": tenant, "call_id": call_id, "turn_index": 1, "e2e_ms": 905.0, "stt_ms": 212.5,
         "eou_ms": 320.0, "llm_ttft_ms": 410.2, "tts_ttfb_ms": 148.7, "interrupted": false, "tool_calls": 0},
        {"id": format!("{call_id}-ended"), "type": "call.ended", "timestamp": time_from_now(-10_000),
         "tenant_id": tenant, "call_id": call_id, "objective": "book_appointment", "duration_s": 50.0,
         "status": "completed", "ended_reason": "goal_reached", "ended_by": "user"}
    ])
}

/// Ingests three calls (concurrently) and reads them back with concurrent queries, so
/// that the pool has opened several connections.
async fn ingest_and_query(server: &Server) {
    let client = reqwest::Client::new();
    let tenant = "tls-tenant";
    let posts = (0..3).map(|n| {
        let request = client.post(server.url("/v1/events")).json(&a_call(tenant, &format!("tls-call-{n}")));
        async move {
            let response = request.send().await.expect("the server answers");
            let status = response.status();
            let answer: Value = response.json().await.expect("a JSON answer");
            assert_eq!(status, 202, "{answer}");
            assert_eq!(answer["accepted"], 3, "{answer}");
        }
    });
    futures_util::future::join_all(posts).await;
    let queries = (0..6).map(|n| {
        let path = match n % 2 {
            0 => format!("/metrics/calls?tenant_id={tenant}"),
            _ => format!("/metrics/latency?tenant_id={tenant}&component=turn_e2e"),
        };
        let request = client.get(server.url(&path));
        async move {
            let response = request.send().await.expect("the server answers");
            let status = response.status();
            let answer: Value = response.json().await.expect("a JSON answer");
            assert_eq!(status, 200, "{path}: {answer}");
            answer
        }
    });
    let answers = futures_util::future::join_all(queries).await;
    assert_eq!(answers[0]["total"], 3, "the three calls were stored and read back: {}", answers[0]);
    assert_eq!(answers[0]["completed"], 3, "{}", answers[0]);
}

/// Serves with the test schema reached through `host` and `options` (`&`-joined, where
/// `{root}` stands for the server's own certificate), ingests and queries through the
/// pool, and says for each of the server's connections whether it uses TLS.
async fn tls_of_connections(tag: &str, host: &str, options: &str) -> Option<Vec<bool>> {
    let admin_url = postgres_url(SUITE)?;
    let schema = TestSchema::create(&admin_url);
    let root = server_certificate(&schema);
    let name = application_name(&schema, tag);
    let options = options.replace("{root}", &root.display().to_string());
    let url = format!("{}&application_name={name}&{options}", with_host(&schema.url(), host));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = serve(dir.path(), &url);
    ingest_and_query(&server).await;
    let encrypted = encrypted_connections(&schema, &name);
    assert!(!encrypted.is_empty(), "the server's connections are seen by PostgreSQL");
    Some(encrypted)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_sslmode_require_every_connection_of_the_pool_is_encrypted() {
    let Some(encrypted) = tls_of_connections("require", "127.0.0.1", "sslmode=require").await else { return };
    assert!(encrypted.iter().all(|&ssl| ssl), "every connection uses TLS: {encrypted:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_sslmode_disable_the_same_check_sees_plain_text_connections() {
    let Some(encrypted) = tls_of_connections("disable", "127.0.0.1", "sslmode=disable").await else { return };
    assert!(encrypted.iter().all(|&ssl| !ssl), "no connection uses TLS: {encrypted:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_accepts_the_server_when_the_url_names_the_host_its_certificate_was_issued_for() {
    let options = "sslmode=verify-full&sslrootcert={root}";
    let Some(encrypted) = tls_of_connections("verify_full", "localhost", options).await else { return };
    assert!(encrypted.iter().all(|&ssl| ssl), "{encrypted:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_ca_checks_the_chain_only_so_a_host_the_certificate_does_not_name_is_accepted() {
    let options = "sslmode=verify-ca&sslrootcert={root}";
    let Some(encrypted) = tls_of_connections("verify_ca", "127.0.0.1", options).await else { return };
    assert!(encrypted.iter().all(|&ssl| ssl), "{encrypted:?}");
}

#[test]
fn a_root_certificate_in_the_home_directory_is_used_when_the_url_names_none() {
    let Some(admin_url) = postgres_url(SUITE) else { return };
    let schema = TestSchema::create(&admin_url);
    let root = server_certificate(&schema);
    let home = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir_all(home.path().join(".postgresql")).expect("~/.postgresql");
    std::fs::copy(&root, home.path().join(".postgresql/root.crt")).expect("~/.postgresql/root.crt");
    let url = format!("{}&sslmode=verify-full", with_host(&schema.url(), "localhost"));
    let ran = run(&["migrate"], &url, &[], Some(home.path()), Duration::from_secs(30));
    assert!(ran.status.success(), "{}", ran.output());
    assert!(ran.stdout.contains("(sslmode=verify-full)"), "{}", ran.output());
}

#[test]
fn verify_full_refuses_a_certificate_that_does_not_name_the_host_and_says_so() {
    let Some(admin_url) = postgres_url(SUITE) else { return };
    let schema = TestSchema::create(&admin_url);
    let root = server_certificate(&schema);
    let url = format!(
        "{}&sslmode=verify-full&sslrootcert={}",
        with_host(&schema.url(), "127.0.0.1"),
        root.display()
    );
    for command in [&["migrate"][..], &["serve", "--port", "0"]] {
        let ran = run(command, &url, &[], None, Duration::from_secs(30));
        let stderr = ran.refused();
        assert!(stderr.contains("TLS handshake"), "{command:?}: {stderr}");
        assert!(stderr.contains("not valid for name \"127.0.0.1\""), "{command:?}: {stderr}");
    }
}

#[test]
fn verify_full_without_a_root_certificate_is_refused_before_connecting() {
    let Some(admin_url) = postgres_url(SUITE) else { return };
    let schema = TestSchema::create(&admin_url);
    let url = format!("{}&sslmode=verify-full", with_host(&schema.url(), "localhost"));
    for command in [&["migrate"][..], &["serve", "--port", "0"]] {
        let ran = run(command, &url, &[], None, Duration::from_secs(30));
        let stderr = ran.refused();
        assert!(stderr.contains("sslmode=verify-full needs a root certificate"), "{command:?}: {stderr}");
        assert!(!stderr.contains("TLS handshake"), "refused before any connection: {stderr}");
    }
    // The same with a server that would not even answer: nothing was tried.
    let ran = run(&["migrate"], "postgres://postgres@127.0.0.1:1/test?sslmode=verify-ca", &[], None, QUICK);
    let stderr = ran.refused();
    assert!(stderr.contains("sslmode=verify-ca needs a root certificate"), "{stderr}");
}

/// A system trust store that does not hold the server's self-signed certificate: the
/// distribution's CA bundle alone (Debian also links every PEM of /etc/ssl/certs, the
/// snakeoil certificate included, into the directory OpenSSL and rustls-native-certs
/// scan, so the default store would trust it), or a CA made here where there is none.
fn a_system_store_without(server_certificate: &Path, dir: &Path) -> PathBuf {
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    let pem_body = |text: &str| text.lines().filter(|line| !line.starts_with("-----")).collect::<String>();
    let server = pem_body(&std::fs::read_to_string(server_certificate).expect("the server's certificate"));
    if let Ok(bundle_text) = std::fs::read_to_string(bundle) {
        let bundle_body = pem_body(&bundle_text);
        assert!(!bundle_body.contains(&server), "{} holds the server's certificate", bundle.display());
        return bundle.to_owned();
    }
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let path = dir.join("system-ca.pem");
    std::fs::write(&path, params.self_signed(&key).expect("a CA").pem()).expect("the CA file");
    path
}

#[test]
fn verify_full_with_the_system_trust_store_refuses_a_self_signed_certificate_it_does_not_hold() {
    let Some(admin_url) = postgres_url(SUITE) else { return };
    let schema = TestSchema::create(&admin_url);
    let root = server_certificate(&schema);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = a_system_store_without(&root, dir.path());
    let store = store.to_str().expect("a UTF-8 path");
    // localhost: the name is right, so only the issuer can be wrong.
    let url = format!("{}&sslmode=verify-full&sslrootcert=system", with_host(&schema.url(), "localhost"));
    for command in [&["migrate"][..], &["serve", "--port", "0"]] {
        let ran = run(command, &url, &[("SSL_CERT_FILE", store)], None, Duration::from_secs(30));
        let stderr = ran.refused();
        assert!(stderr.contains("TLS handshake"), "{command:?}: {stderr}");
        assert!(stderr.contains("UnknownIssuer"), "{command:?}: {stderr}");
    }
}

#[test]
fn a_password_in_the_database_url_is_never_printed() {
    let Some(admin_url) = postgres_url(SUITE) else { return };
    let schema = TestSchema::create(&admin_url);
    let root = server_certificate(&schema);
    let with_secret = with_password(&schema.url(), PASSWORD);
    let refused = [
        // A configuration error, before any connection.
        format!("{with_secret}&sslmode=verify-full"),
        // Nothing listening.
        format!("{}?sslmode=require", with_password("postgres://postgres@127.0.0.1:1/test", PASSWORD)),
        // A failed handshake.
        format!(
            "{}&sslmode=verify-full&sslrootcert={}",
            with_host(&with_secret, "127.0.0.1"),
            root.display()
        ),
        // Not a sslmode.
        format!("{with_secret}&sslmode=strict"),
    ];
    for url in &refused {
        for command in [&["migrate"][..], &["serve", "--port", "0"]] {
            let ran = run(command, url, &[], None, Duration::from_secs(30));
            assert!(!ran.status.success(), "{command:?} on {url}: {}", ran.output());
            assert!(!ran.output().is_empty(), "{command:?} says why it stopped");
            assert!(!ran.output().contains(PASSWORD), "{command:?} printed the password: {}", ran.output());
        }
    }
    // And when it works (the test server trusts the connection, so the password is unused).
    let ran =
        run(&["migrate"], &format!("{with_secret}&sslmode=require"), &[], None, Duration::from_secs(30));
    assert!(ran.status.success(), "{}", ran.output());
    assert!(ran.stdout.contains("postgres://"), "the server is named: {}", ran.output());
    assert!(!ran.output().contains(PASSWORD), "migrate printed the password: {}", ran.output());
}

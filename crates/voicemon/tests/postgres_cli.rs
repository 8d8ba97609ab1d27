//! The commands that open the store, on PostgreSQL: `migrate`, `keys`, and `serve`
//! using keys created there.

use std::process::{Command, Output};

mod common;

use common::{postgres_url, Server, TestSchema, BIN};

fn voicemon(args: &[&str], database_url: &str) -> Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env_remove("VOICEMON_CONFIG")
        .output()
        .expect("voicemon runs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn migrate_applies_the_schema_once_and_says_where() {
    let Some(admin_url) = postgres_url("the PostgreSQL CLI tests") else { return };
    let schema = TestSchema::create(&admin_url);
    for _ in 0..2 {
        let said = stdout(&voicemon(&["migrate"], &schema.url()));
        assert!(said.contains("postgresql postgres://"), "{said}");
        let latest = voicemon_store::postgres::latest_version();
        assert!(said.contains(&format!("schema at version {latest}, nothing pending")), "{said}");
        assert!(!said.contains('@') && !said.contains("options"), "only the server is named: {said}");
    }
    let versions = schema.query("SELECT version FROM voicemon_migrations");
    assert_eq!(
        versions.len(),
        voicemon_store::postgres::latest_version() as usize,
        "each migration is recorded once"
    );
    let partitions = schema.query(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'turns'",
    );
    assert!(partitions[0].get::<_, i64>(0) >= 4, "yesterday, today and the days ahead exist");
}

#[test]
fn a_database_url_that_is_not_postgresql_is_refused_with_a_clear_message() {
    let output = voicemon(&["migrate"], "mysql://root@localhost/voicemon");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL must start with postgres://"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_created_in_postgresql_let_a_postgresql_server_in() {
    let Some(admin_url) = postgres_url("the PostgreSQL CLI tests") else { return };
    let schema = TestSchema::create(&admin_url);
    let url = schema.url();
    let secret = stdout(&voicemon(&["keys", "create", "--role", "read", "--tenant", "acme"], &url));
    let secret = secret.trim().to_owned();
    assert!(stdout(&voicemon(&["keys", "list"], &url)).contains("acme"));
    let stored: Vec<String> =
        schema.query("SELECT key_hash FROM api_keys").iter().map(|r| r.get(0)).collect();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], secret, "only the hash is stored");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start_with_env(&dir.path().join("data"), None, &[], &[("DATABASE_URL", &url)]);
    let client = reqwest::Client::new();
    let path = server.url("/metrics/calls?tenant_id=acme");
    let denied = client.get(&path).send().await.expect("an answer");
    assert_eq!(denied.status(), 401);
    let allowed = client.get(&path).bearer_auth(&secret).send().await.expect("an answer");
    assert_eq!(allowed.status(), 200);
}

/// Runs `voicemon args` in `dir`, where a `voicemon.toml` may be, with `DATABASE_URL`.
fn voicemon_in(dir: &std::path::Path, args: &[&str], database_url: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env_remove("VOICEMON_CONFIG")
        .output()
        .expect("voicemon runs")
}

/// Day partitions of `turns` in `schema`.
fn turn_partitions(schema: &TestSchema) -> i64 {
    let rows = schema.query("SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass('turns')");
    rows[0].get(0)
}

#[test]
fn migrate_and_keys_read_the_postgres_section_of_the_configuration_file_in_the_working_directory() {
    let Some(admin_url) = postgres_url("the PostgreSQL CLI tests") else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("voicemon.toml"),
        "[postgres]\npartitions_ahead = 9\ntimescaledb = false\n",
    )
    .expect("config written");
    let (migrated, keyed) = (TestSchema::create(&admin_url), TestSchema::create(&admin_url));

    stdout(&voicemon_in(dir.path(), &["migrate"], &migrated.url()));
    stdout(&voicemon_in(dir.path(), &["keys", "create", "--role", "admin", "--name", "ops"], &keyed.url()));

    // Yesterday, today and nine days ahead: the file's `partitions_ahead`, not the default 3.
    assert_eq!(turn_partitions(&migrated), 11, "migrate read [postgres]");
    assert_eq!(turn_partitions(&keyed), 11, "keys read [postgres]");
}

/// Starts `voicemon args` against `schema` while this test holds the migration lock, ends
/// voicemon's connection from the server side as it waits (as a FATAL error does), and
/// returns what voicemon printed when it gave up.
async fn start_with_its_connection_terminated(schema: &TestSchema, args: &[&str]) -> Output {
    let name = format!("voicemon_{}", schema.name);
    let url = format!("{}&application_name={name}", schema.url());
    let (holder, connection) =
        tokio_postgres::connect(&schema.url(), tokio_postgres::NoTls).await.expect("connects");
    tokio::spawn(connection);
    let lock = "SELECT pg_advisory_lock(hashtext('voicemon.migrate.' || current_schema()))";
    holder.batch_execute(lock).await.expect("the migration lock is held");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let child = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .env_remove("VOICEMON_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("voicemon starts");
    let waiting = "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pid: i32 = loop {
        if let Some(row) = holder.query_opt(waiting, &[&name]).await.expect("pg_stat_activity reads") {
            break row.get(0);
        }
        assert!(std::time::Instant::now() < deadline, "voicemon never waited for the migration lock");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    holder.query("SELECT pg_terminate_backend($1)", &[&pid]).await.expect("terminated");
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("voicemon exits"))
        .await
        .expect("joined")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_whose_connection_the_server_ends_fails_and_every_cause_it_prints_has_text() {
    let Some(admin_url) = postgres_url("the PostgreSQL CLI tests") else { return };
    for args in [&["migrate"][..], &["serve", "--port", "0"][..]] {
        let schema = TestSchema::create(&admin_url);

        let output = start_with_its_connection_terminated(&schema, args).await;

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} cannot start: {stderr}");
        let causes: Vec<&str> =
            stderr.split("Caused by:").nth(1).unwrap_or_default().lines().skip(1).collect();
        assert!(!causes.is_empty(), "{args:?} prints its causes:\n{stderr}");
        for cause in &causes {
            let line = cause.trim();
            let numbered =
                line.split_once(':').filter(|(index, _)| index.chars().all(|c| c.is_ascii_digit()));
            let text = numbered.map_or(line, |(_, text)| text);
            assert!(!text.trim().is_empty(), "{args:?}: a cause without text:\n{stderr}");
        }
        assert!(
            stderr.contains("57P01: terminating connection due to administrator command"),
            "{args:?} names what the server said:\n{stderr}"
        );
    }
}

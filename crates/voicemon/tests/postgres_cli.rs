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

//! A full disk is reported, not only refused: the real binary's SQLite store lives on a
//! small tmpfs filesystem of its own, a file fills what is left, and then every write gets
//! 503 saying the disk is full, `/metrics/health` names the cause as a critical reason and
//! `/metrics` counts the failed commits by cause. Freeing the space heals it.
//!
//! The filesystem is real (`mount -t tmpfs -o size=…`), so SQLite meets ENOSPC as it would
//! on a full disk. Mounting needs root (as CI runs); where it is refused the test says so
//! and skips.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{metric, time_from_now, Server};

/// A tmpfs mounted on a directory of its own; unmounted on drop (after the server that
/// uses it has been stopped: drop the server first).
struct SmallFilesystem {
    path: PathBuf,
}

impl SmallFilesystem {
    fn mount(path: &Path, size: &str) -> Option<SmallFilesystem> {
        std::fs::create_dir_all(path).expect("the mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("mount runs");
        if !mounted.status.success() {
            let why = String::from_utf8_lossy(&mounted.stderr);
            let _ = writeln!(std::io::stderr(), "skipping the full-disk test: cannot mount a tmpfs ({why})");
            return None;
        }
        Some(SmallFilesystem { path: path.to_owned() })
    }

    /// Writes zeros into `filler` until the filesystem has no space left.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("the filler file");
        let block = vec![0u8; 4096];
        loop {
            match file.write_all(&block).and_then(|()| file.sync_all()) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(28) => return filler, // ENOSPC
                Err(err) => panic!("filling the filesystem failed: {err}"),
            }
        }
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

async fn post_turns(client: &reqwest::Client, server: &Server, batch: usize) -> reqwest::Response {
    let body: String = (0..50)
        .map(|i| {
            let event = json!({
                "id": format!("full-{batch}-{i}"), "type": "turn.completed", "timestamp": time_from_now(-1_000),
                "tenant_id": "disk", "call_id": format!("call-{batch}-{i}"), "turn_index": 0, "e2e_ms": 700.0
            });
            format!("{event}\n")
        })
        .collect();
    client
        .post(server.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("ingest answers")
}

async fn health(client: &reqwest::Client, server: &Server) -> Value {
    let response = client.get(server.url("/metrics/health")).send().await.expect("health answers");
    response.json().await.expect("health answers JSON")
}

const DISK_FULL_REASON: &str = "voicemon's database (sqlite) cannot store writes: the disk is full";

#[tokio::test]
async fn a_full_disk_is_named_in_the_503_in_health_and_in_metrics_and_heals_once_space_is_freed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let Some(disk) = SmallFilesystem::mount(&data, "4m") else { return };
    let server = Server::start(&data, None, &[]);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
    assert_eq!(post_turns(&client, &server, 0).await.status(), 202, "stored while there is room");

    let filler = disk.fill();
    let started = Instant::now();
    let mut batch = 1;
    let refused = loop {
        let response = post_turns(&client, &server, batch).await;
        match response.status().as_u16() {
            202 => batch += 1,
            503 => break response,
            other => panic!("ingest answered {other} on a full disk; only 202 or 503 are right"),
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{batch} batches stored on a full disk");
    };

    assert!(refused.headers().contains_key("retry-after"), "a 503 says when to retry");
    let body: Value = refused.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(body["error"]["message"], "storage is unavailable: the disk is full; retry later", "{body}");
    let report = health(&client, &server).await;
    assert_eq!(report["status"], "critical", "{report}");
    assert!(
        report["reasons"]
            .as_array()
            .expect("reasons")
            .contains(&json!({"severity": "critical", "message": DISK_FULL_REASON})),
        "{report}"
    );
    assert_eq!(report["database"]["pool"]["fault"], "disk_full", "{report}");
    let counted = metric(&client, &server, "voicemon_store_write_errors_total{cause=\"disk_full\"}").await;
    assert!(counted >= 1.0, "failed commits are counted by cause: {counted}");

    std::fs::remove_file(&filler).expect("space is freed");
    let healed = Instant::now();
    while post_turns(&client, &server, batch).await.status() != 202 {
        assert!(healed.elapsed() < Duration::from_secs(60), "writes did not resume once space was freed");
        batch += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = health(&client, &server).await;
    assert!(!report["reasons"].to_string().contains("disk is full"), "the fault is gone: {report}");
    assert_eq!(report["database"]["pool"]["fault"], Value::Null, "{report}");
    drop(server);
    drop(disk);
}

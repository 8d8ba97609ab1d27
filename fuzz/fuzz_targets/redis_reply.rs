//! What the platform's Redis (or whatever listens at `REDIS_URL`) answers to a command,
//! and the `INFO` text voicemon reads its counters from; and `REDIS_URL` itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use voicemon_server::redis::{read_reply, InfoCounters, RedisTarget};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime")
});

fuzz_target!(|data: &[u8]| {
    let mut reader = tokio::io::BufReader::new(data);
    if let Ok(reply) = RUNTIME.block_on(read_reply(&mut reader)) {
        let _ = InfoCounters::parse(&reply);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = InfoCounters::parse(text);
        if let Ok(target) = RedisTarget::parse(text) {
            let _ = (target.address(), target.password());
        }
    }
});

//! A message of a `/metrics/stream` client and the scope a subscription resolves to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voicemon_server::live::subscription::{ClientMessage, Scope};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(ClientMessage::Subscribe(request)) = ClientMessage::parse(text) else { return };
    for tenant in [None, Some("acme".to_owned())] {
        if let Ok(scope) = Scope::from_request(tenant, &request) {
            let _ = (scope.interval(), scope.window_ms());
        }
    }
});

//! `voicemon.toml`: the file's tree, its validation into settings, and what
//! `config check` prints of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use voicemon_server::config::{Layers, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(layers) = Layers::new().file_text(text, Path::new("voicemon.toml")) else { return };
    if let Ok(settings) = Settings::try_from(layers) {
        let _ = settings.summary();
        let _ = settings.effective();
    }
});

//! A `derived_journal` row as the next owner reads it after a crash: whatever it decodes
//! to must encode back to bytes that decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voicemon_store::derived::Derived;

fuzz_target!(|data: &[u8]| {
    let Ok(derived) = Derived::decode(data) else { return };
    let encoded = derived.encode();
    let again = Derived::decode(&encoded).expect("an encoding decodes");
    assert_eq!(again.canonical(), derived.canonical(), "decode and encode agree");
});

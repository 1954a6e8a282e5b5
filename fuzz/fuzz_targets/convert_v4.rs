//! fingerprint.com v4 answers (events, search pages) → protobuf: never panics, on any bytes.
#![no_main]
use fingerprint_gateway::{config::Generation, convert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) {
        let _ = convert::event(Generation::V4, map.clone());
        let _ = convert::list::search_page(Generation::V4, map);
    }
});

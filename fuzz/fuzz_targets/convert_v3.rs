//! fingerprint.com v3 answers (events, visits, webhooks, search pages) → protobuf.
#![no_main]
use fingerprint_gateway::{config::Generation, convert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = convert::any_event(json.clone());
        if let serde_json::Value::Object(map) = json {
            let _ = convert::event(Generation::V3, map.clone());
            let _ = convert::v3::from_webhook(map.clone());
            let _ = convert::v3::from_visit(map.clone(), "visitor");
            let _ = convert::list::visits_page_v3(map.clone(), "visitor");
            let _ = convert::list::search_page(Generation::V3, map);
        }
    }
});

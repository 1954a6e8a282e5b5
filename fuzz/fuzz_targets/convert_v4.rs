//! fingerprint.com v4 answers (events, search pages) → protobuf: never panics, on any
//! bytes, and an event the typed reader takes converts exactly as the general one does.
#![no_main]
use fingerprint_gateway::convert::typed::{Shape, V4Event};
use fingerprint_gateway::{config::Generation, convert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let typed = V4Event::read(data).map(V4Event::into_event);
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) {
        let general = convert::event(Generation::V4, map.clone());
        if let Some(typed) = typed {
            assert_eq!(typed, general, "the typed and general readers differ");
        }
        let _ = convert::list::search_page(Generation::V4, map);
    } else {
        assert!(typed.is_none(), "the typed reader took what is not a JSON object");
    }
});

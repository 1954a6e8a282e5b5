//! fingerprint.com v4 answers (events, search pages) → protobuf: never panics, on any
//! bytes, and an event or search page the typed readers take converts exactly as the
//! general readers convert it.
#![no_main]
use fingerprint_gateway::convert::typed::{Shape, V4Event, V4Page};
use fingerprint_gateway::{config::Generation, convert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let typed = V4Event::read(data).map(V4Event::into_event);
    let typed_page = V4Page::read(data).map(V4Page::into_page);
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) {
        let general = convert::event(Generation::V4, map.clone());
        if let Some(typed) = typed {
            assert_eq!(typed, general, "the typed and general readers differ");
        }
        let general_page = convert::list::search_page(Generation::V4, map);
        if let Some(typed_page) = typed_page {
            assert_eq!(typed_page, general_page, "the page readers differ");
        }
    } else {
        assert!(typed.is_none(), "the typed reader took what is not a JSON object");
        assert!(typed_page.is_none(), "the page reader took what is not a JSON object");
    }
});

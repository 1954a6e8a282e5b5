//! fingerprint.com v4 answers (events, search pages) → protobuf: never panics, on any
//! bytes, and an event or search page the typed readers take converts exactly as the
//! general readers convert it; an event the wire reader takes (what GetEvent answers)
//! decodes to that same event.
#![no_main]
use fingerprint_gateway::convert::typed::{Shape, V4Event, V4Page, wire::EncodedEvent};
use fingerprint_gateway::{config::Generation, convert, proto::v1::Event};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let encoded = EncodedEvent::read(data);
    let typed = V4Event::read(data).map(V4Event::into_event);
    let typed_page = V4Page::read(data).map(V4Page::into_page);
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(data) {
        let general = convert::event(Generation::V4, map.clone());
        if let Some(typed) = typed {
            assert_eq!(typed, general, "the typed and general readers differ");
        }
        if let Some(encoded) = encoded {
            let decoded = Event::decode(encoded.bytes).expect("the wire reader's bytes decode");
            assert_eq!(decoded, general, "the wire and general readers differ");
            assert_eq!(encoded.event_id, general.event_id);
            let visitor = general.identification.as_ref().map(|i| i.visitor_id.clone());
            assert_eq!(encoded.visitor_id, visitor);
        }
        let general_page = convert::list::search_page(Generation::V4, map);
        if let Some(typed_page) = typed_page {
            assert_eq!(typed_page, general_page, "the page readers differ");
        }
    } else {
        assert!(typed.is_none(), "the typed reader took what is not a JSON object");
        assert!(encoded.is_none(), "the wire reader took what is not a JSON object");
        assert!(typed_page.is_none(), "the page reader took what is not a JSON object");
    }
});

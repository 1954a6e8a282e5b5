//! The typed readers of v4 events and search pages (and the wire reader that writes
//! GetEvent's encoding straight from the JSON) against the general JSON reader: over
//! the sandbox's whole world of example events, and over every off-shape body, either
//! the typed path declines or both paths give the same answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fingerprint_gateway::config::Generation;
use fingerprint_gateway::convert::event::from_v4;
use fingerprint_gateway::convert::list::search_page;
use fingerprint_gateway::convert::page::EventPage;
use fingerprint_gateway::convert::typed::{Shape, V4Event, V4Page, wire};
use fingerprint_gateway::proto::v1::Event;
use fingerprint_gateway::sandbox::data;
use serde_json::{Value as Json, json};

type Mutation = Box<dyn Fn(&mut Json)>;

/// The typed reading of `body`, checked against the general one: when the typed
/// path takes an answer, both give the same `Event`.
fn both(body: &Json) -> (Option<Event>, Event) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let typed = V4Event::read(&bytes).map(V4Event::into_event);
    let general = from_v4(body.as_object().cloned().unwrap_or_default());
    if let Some(typed) = &typed {
        assert_eq!(typed, &general, "the paths differ for {body}");
    }
    encoded_matches(&bytes, typed.is_some(), &general);
    (typed, general)
}

/// The wire reader takes what the typed reader takes, and its bytes decode to the
/// general reader's `Event`, with the same identities kept for the tags.
fn encoded_matches(body: &[u8], typed_took_it: bool, general: &Event) {
    use prost::Message;
    let encoded = wire::EncodedEvent::read(body);
    let text = String::from_utf8_lossy(body);
    assert_eq!(
        encoded.is_some(),
        typed_took_it,
        "the wire and typed readers disagree on {text}"
    );
    if let Some(encoded) = encoded {
        let decoded = Event::decode(encoded.bytes.clone()).expect("the bytes decode");
        assert_eq!(&decoded, general, "the wire reader differs for {text}");
        assert_eq!(encoded.event_id, general.event_id);
        let visitor = general
            .identification
            .as_ref()
            .map(|i| i.visitor_id.clone());
        assert_eq!(encoded.visitor_id, visitor);
    }
}

fn sandbox_event(n: usize) -> Json {
    let id = format!("17700000{n:05}.ev{n}");
    let visitor = data::visitor_id_for(&id);
    data::event_v4(&id, &visitor, data::timestamp_of(&id))
}

#[test]
fn sandbox_events_take_the_typed_path_and_match() {
    for n in 0..300 {
        let (typed, _) = both(&sandbox_event(n));
        assert!(typed.is_some(), "sandbox event {n} fell back");
    }
}

#[test]
fn anything_off_shape_falls_back_to_the_general_path() {
    let base = sandbox_event(7);
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "unknown member",
            Box::new(|e| e["brand_new"] = json!({"x": 1})),
        ),
        (
            "unknown nested member",
            Box::new(|e| e["identification"]["new"] = json!(1)),
        ),
        (
            "string as number",
            Box::new(|e| e["suspect_score"] = json!("5")),
        ),
        (
            "fraction as integer",
            Box::new(|e| e["suspect_score"] = json!(1.5)),
        ),
        (
            "integer beyond i64",
            Box::new(|e| e["suspect_score"] = json!(u64::MAX)),
        ),
        (
            "time out of range",
            Box::new(|e| e["timestamp"] = json!(i64::MAX)),
        ),
        (
            "time as text",
            Box::new(|e| e["timestamp"] = json!("2026-01-01")),
        ),
        ("object as list", Box::new(|e| e["sdk"] = json!([1]))),
        (
            "list element not an object",
            Box::new(|e| e["triggered_by"] = json!([1, {"id": "r"}])),
        ),
        (
            "camel-case velocity",
            Box::new(|e| e["velocity"]["distinctIp"] = json!({"5_minutes": 1})),
        ),
    ];
    for (name, mutate) in mutations {
        let mut event = base.clone();
        mutate(&mut event);
        let (typed, general) = both(&event);
        assert!(typed.is_none(), "{name}: the typed path took it");
        assert!(
            general.unmapped.is_some(),
            "{name}: nothing reached unmapped"
        );
    }
}

#[test]
fn what_only_the_general_path_reads_falls_back() {
    // v3-era spellings the general reader accepts for v4 too.
    let mut event = sandbox_event(3);
    event["ip_info"]["v4"]["asn"] = json!(64500);
    let (typed, general) = both(&event);
    assert!(typed.is_none());
    let asn = general.ip_info.and_then(|i| i.v4).and_then(|d| d.asn);
    assert_eq!(asn.as_deref(), Some("64500"));
}

#[test]
fn nulls_zeros_and_empties_read_alike() {
    let base = sandbox_event(9);
    let mutations: Vec<Mutation> = vec![
        Box::new(|e| e["sdk"] = Json::Null),
        Box::new(|e| e["suspect"] = Json::Null),
        Box::new(|e| e["factory_reset_timestamp"] = json!(0)),
        Box::new(|e| e["factory_reset_timestamp"] = json!(1_700_000_000_000_i64)),
        Box::new(|e| e["velocity"] = json!({})),
        Box::new(|e| e["triggered_by"] = json!([])),
        Box::new(|e| e["tags"] = json!({"a": [1, "b", null], "c": {"d": true}})),
        Box::new(|e| e["bot"] = json!("notDetected")),
        Box::new(|e| e["proxy_ml_score"] = json!(1)),
        Box::new(|e| {
            if let Some(m) = e.as_object_mut() {
                m.clear();
            }
        }),
    ];
    for mutate in mutations {
        let mut event = base.clone();
        mutate(&mut event);
        let (typed, _) = both(&event);
        assert!(typed.is_some(), "fell back on {event}");
    }
}

/// As [`both`], for a search page.
fn both_pages(body: &Json) -> Option<EventPage> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let typed = V4Page::read(&bytes).map(V4Page::into_page);
    let general = search_page(
        Generation::V4,
        body.as_object().cloned().unwrap_or_default(),
    );
    if let Some(typed) = &typed {
        assert_eq!(typed, &general, "the paths differ for {body}");
    }
    typed
}

#[test]
fn search_pages_take_the_typed_path_unless_off_shape() {
    let events: Vec<Json> = (0..20).map(sandbox_event).collect();
    let page = json!({"events": events, "pagination_key": "k1", "total_hits": 40});
    let typed = both_pages(&page).expect("a sandbox page takes the typed path");
    assert_eq!(typed.events.len(), 20);
    assert_eq!(typed.next_key, "k1");
    assert_eq!(typed.total, Some(40));
    assert!(both_pages(&json!({"events": []})).is_some());
    assert!(both_pages(&json!({})).is_some());
    let off_shape = [
        json!({"events": events, "brand_new": 1}),
        json!({"events": [events[0].clone(), 7]}),
        json!({"events": [events[0].clone(), null]}),
        json!({"events": events, "total_hits": "many"}),
        json!({"events": [{"event_id": "e", "new_signal": true}]}),
    ];
    for page in off_shape {
        assert!(both_pages(&page).is_none(), "the typed path took {page}");
    }
}

#[test]
fn duplicate_members_fall_back() {
    for body in [
        &br#"{"event_id":"a","event_id":"b"}"#[..],
        br#"{"identification":{"visitor_id":"a","visitor_id":"b"}}"#,
    ] {
        assert!(V4Event::read(body).is_none());
        assert!(wire::EncodedEvent::read(body).is_none());
    }
}

#[test]
fn long_escaped_and_nested_values_encode_alike() {
    let base = sandbox_event(11);
    let mutations: Vec<Mutation> = vec![
        // A message longer than 127 and than 16,383 bytes: its length takes 2 and 3 bytes.
        Box::new(|e| e["tags"] = json!({"note": "x".repeat(300)})),
        Box::new(|e| e["tags"] = json!({"note": "y".repeat(20_000)})),
        Box::new(|e| e["ip_info"]["v4"]["asn_name"] = json!("z".repeat(200))),
        Box::new(|e| e["url"] = json!("https://a.test/\"quoted\"\n\u{e9}\u{1F600}")),
        Box::new(|e| e["event_id"] = json!("")),
        Box::new(|e| e["identification"]["visitor_id"] = Json::Null),
        Box::new(|e| e["identification"] = Json::Null),
        Box::new(|e| e["bot"] = json!("")),
        Box::new(|e| e["bot"] = json!("bad")),
        Box::new(|e| e["bot"] = json!("something new")),
        Box::new(|e| e["suspect_score"] = json!(-3)),
        Box::new(|e| e["timestamp"] = json!(-1)),
        Box::new(|e| e["proxy_ml_score"] = json!(-0.0)),
        Box::new(
            |e| e["sdk"]["integrations"] = json!([{"name": "a", "subintegration": {"name": "b", "subintegration": {"version": "1"}}}]),
        ),
        Box::new(|e| e["supplementary_id_high_recall"] = json!({"visitor_id": "other"})),
    ];
    for mutate in mutations {
        let mut event = base.clone();
        mutate(&mut event);
        let (typed, _) = both(&event);
        assert!(typed.is_some(), "fell back on {event}");
    }
    // Not JSON, or not an object: neither reader takes it.
    for body in [&b"[]"[..], b"null", b"{", b"{} x", b"\xff"] {
        assert!(wire::EncodedEvent::read(body).is_none());
    }
}

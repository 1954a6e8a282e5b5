//! fingerprint.com list envelopes (search pages, v3 visitor pages) to events plus
//! paging, keeping every envelope member the contract does not model.

use serde_json::{Map, Value as Json};

use super::json::{Obj, timestamp_to_millis};
use super::page::EventPage;
use super::typed::{Answer, V4Page};
use super::{event, v3};
use crate::config::Generation;
use crate::proto::v1::Event;

/// A search page as the upstream client read it: typed (a v4 page of exactly the
/// published shape) or as JSON of the given generation.
pub fn search_answer(generation: Generation, answer: Answer<V4Page>) -> EventPage {
    match answer {
        Answer::Typed(page) => page.into_page(),
        Answer::Json(body) => search_page(generation, body),
    }
}

/// A v4 `GET /v4/events` or v3 `GET /events/search` answer.
pub fn search_page(generation: Generation, body: Map<String, Json>) -> EventPage {
    let mut o = Obj::new(body);
    match generation {
        Generation::V4 => {
            let events = events(&mut o, "events", event::from_v4);
            let next_key = o.str("pagination_key").unwrap_or_default();
            let total = o.i64("total_hits");
            EventPage {
                events,
                next_key,
                total,
                unmapped: o.finish(),
            }
        }
        Generation::V3 => {
            let events = events(&mut o, "events", v3::from_event);
            let next_key = o.str("paginationKey").unwrap_or_default();
            EventPage {
                events,
                next_key,
                total: None,
                unmapped: o.finish(),
            }
        }
    }
}

/// A v3 `GET /visitors/{visitor_id}` answer: the visitor it names, and its visits.
pub fn visits_page_v3(body: Map<String, Json>, asked: &str) -> (String, EventPage) {
    let mut o = Obj::new(body);
    let visitor_id = o.str("visitorId").unwrap_or_else(|| asked.to_owned());
    let events = events(&mut o, "visits", |m| v3::from_visit(m, &visitor_id));
    let next_key = o.str("paginationKey").unwrap_or_default();
    // `lastTimestamp` is v3's deprecated cursor: the last visit's time, which the answer
    // already carries. Kept only when it says something else.
    let last = events
        .last()
        .and_then(|e| e.timestamp.as_ref())
        .map(timestamp_to_millis);
    if let Some(value) = o.take("lastTimestamp")
        && (value.as_i64().is_none() || value.as_i64() != last)
    {
        o.put_back("lastTimestamp", value);
    }
    let page = EventPage {
        events,
        next_key,
        total: None,
        unmapped: o.finish(),
    };
    (visitor_id, page)
}

/// The events of a list member; elements that are not objects stay in the envelope's
/// leftovers at their index (`null` where an event was read).
fn events(o: &mut Obj, key: &str, convert: impl Fn(Map<String, Json>) -> Event) -> Vec<Event> {
    let Some(value) = o.take(key) else {
        return Vec::new();
    };
    let Json::Array(items) = value else {
        o.put_back(key, value);
        return Vec::new();
    };
    let mut events = Vec::with_capacity(items.len());
    let mut left = Vec::new();
    let mut any_left = false;
    for item in items {
        match item {
            Json::Object(map) => {
                events.push(convert(map));
                left.push(Json::Null);
            }
            other => {
                any_left = true;
                left.push(other);
            }
        }
    }
    if any_left {
        o.put_back(key, Json::Array(left));
    }
    events
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn envelope_leftovers_are_kept() {
        let page = search_page(
            Generation::V4,
            map(json!({
                "events": [{"event_id": "a"}, 7],
                "pagination_key": "k",
                "total_hits": "many",
                "brand_new": {"x": 1}
            })),
        );
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.next_key, "k");
        assert_eq!(page.total, None);
        assert_eq!(
            Json::Object(page.unmapped),
            json!({"events": [null, 7], "total_hits": "many", "brand_new": {"x": 1}})
        );
    }

    #[test]
    fn v3_last_timestamp_is_dropped_only_when_it_repeats_the_last_visit() {
        let body = |last: i64| {
            map(json!({
                "visitorId": "v",
                "visits": [{"requestId": "r", "timestamp": 1_708_102_555_327_i64}],
                "lastTimestamp": last,
            }))
        };
        let (_, page) = visits_page_v3(body(1_708_102_555_327), "v");
        assert!(page.unmapped.is_empty(), "{:?}", page.unmapped);
        let (_, page) = visits_page_v3(body(5), "v");
        assert_eq!(page.unmapped.get("lastTimestamp"), Some(&json!(5)));
    }
}

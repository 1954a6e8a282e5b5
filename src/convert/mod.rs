//! Pure conversions from upstream JSON to protobuf messages: events, list envelopes
//! and Stytch answers. Nothing here does I/O; what is not modelled lands in `unmapped`.

pub mod edge;
pub mod event;
pub mod json;
pub mod list;
pub mod page;
pub mod stytch;
pub mod typed;
pub mod v3;

use serde_json::Value as Json;

use crate::config::Generation;
use crate::proto::v1::Event;

/// One event of the given generation (`GET /v4/events/{id}` or `GET /events/{id}`).
pub fn event(generation: Generation, body: serde_json::Map<String, Json>) -> Event {
    match generation {
        Generation::V4 => event::from_v4(body),
        Generation::V3 => v3::from_event(body),
    }
}

/// A v4 event, a v3 event (`products`), or a v3 webhook (flat), told apart by their
/// members; `None` for anything else.
pub fn any_event(json: Json) -> Option<Event> {
    let Json::Object(map) = json else { return None };
    if map.contains_key("event_id") {
        Some(event::from_v4(map))
    } else if map.contains_key("products") {
        Some(v3::from_event(map))
    } else if map.contains_key("requestId") {
        Some(v3::from_webhook(map))
    } else {
        None
    }
}

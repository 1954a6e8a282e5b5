//! One page of events as every reader of a list hands it on: the general JSON reader of
//! either generation (`list`) and the typed reader of a v4 page (`typed`) both make it.

use serde_json::{Map, Value as Json};

use crate::proto::v1::Event;

/// One upstream page of events, converted.
#[derive(Debug, Default, PartialEq)]
pub struct EventPage {
    /// The events, in upstream order.
    pub events: Vec<Event>,
    /// The upstream's key for the next page; empty on the last page.
    pub next_key: String,
    /// v4 `total_hits`, when asked for.
    pub total: Option<i64>,
    /// Envelope members not modelled (new members, members of a wrong type, list
    /// elements that are not objects at their index).
    pub unmapped: Map<String, Json>,
}

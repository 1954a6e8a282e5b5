//! What the benchmark peers share: the fixed event every peer serves, and latency stats.

use std::time::Duration;

use fingerprint_gateway::{
    config::Generation, convert, proto::v1::GetEventResponse, sandbox::data,
};
use prost::Message;

/// The event id every benchmark asks for.
pub const EVENT_ID: &str = "1770000000000.abcdef";

/// The upstream's v4 JSON for [`EVENT_ID`], as the sandbox builds it.
pub fn event_json() -> serde_json::Value {
    let visitor = data::visitor_id_for(EVENT_ID);
    data::event_v4(EVENT_ID, &visitor, data::timestamp_of(EVENT_ID))
}

/// The encoded GetEventResponse the gateway sends for [`EVENT_ID`]: the same bytes.
pub fn event_answer() -> Vec<u8> {
    let map = event_json().as_object().cloned().unwrap_or_default();
    GetEventResponse {
        event: Some(Box::new(convert::event(Generation::V4, map))),
    }
    .encode_to_vec()
}

/// Latency statistics of a run.
pub struct Stats {
    /// Requests per second.
    pub rps: f64,
    /// Mean, median and 99th percentile.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// Statistics of `samples` collected over `elapsed`.
pub fn stats(mut samples: Vec<Duration>, elapsed: Duration) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).copied().unwrap_or_default()
    };
    let total: Duration = samples.iter().sum();
    Stats {
        rps: samples.len() as f64 / elapsed.as_secs_f64(),
        mean: total / u32::try_from(samples.len().max(1)).unwrap_or(u32::MAX),
        p50: at(0.50),
        p99: at(0.99),
    }
}

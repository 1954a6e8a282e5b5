//! The two readers of an upstream answer side by side: `parse [EVENTS] [ROUNDS]` reads
//! one v4 event and one search page of EVENTS sandbox events (default 100), ROUNDS
//! times each (default 2,000), alternating the typed reader (`convert::typed`) and the
//! general one (`serde_json::Value`, then `convert`), and prints the time per read.

use std::time::{Duration, Instant};

use prost::Message;

use fingerprint_gateway::{
    config::Generation,
    convert::{
        self,
        typed::{Shape, V4Event, V4Page, wire::EncodedEvent},
    },
};

fn main() {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let one = fingerprint_gateway_bench::event_json();
    let page = serde_json::json!({
        "events": vec![one.clone(); events],
        "pagination_key": "next",
    });
    let one = serde_json::to_vec(&one).unwrap_or_default();
    let page = serde_json::to_vec(&page).unwrap_or_default();
    let time = |f: &dyn Fn() -> usize| {
        let started = Instant::now();
        let mut n = 0;
        for _ in 0..rounds {
            n += f();
        }
        (started.elapsed() / rounds, n)
    };
    let general_event = || {
        serde_json::from_slice::<serde_json::Value>(&one)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map_or(0, |m| convert::event(Generation::V4, m).event_id.len())
    };
    let typed_event = || V4Event::read(&one).map_or(0, |e| e.into_event().event_id.len());
    let general_page = || {
        serde_json::from_slice::<serde_json::Value>(&page)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map_or(0, |m| {
                convert::list::search_page(Generation::V4, m).events.len()
            })
    };
    let typed_page = || V4Page::read(&page).map_or(0, |p| p.into_page().events.len());
    // What a GetEvent miss does with the body: the typed reader, then prost, against
    // the reader that writes the encoding straight from the JSON.
    let typed_encoded = || V4Event::read(&one).map_or(0, |e| e.into_event().encode_to_vec().len());
    let wire = || EncodedEvent::read(&one).map_or(0, |e| e.bytes.len());
    let mut best = [Duration::MAX; 6];
    for _ in 0..3 {
        for (i, f) in [
            &general_event as &dyn Fn() -> usize,
            &typed_event,
            &general_page,
            &typed_page,
            &typed_encoded,
            &wire,
        ]
        .into_iter()
        .enumerate()
        {
            let (t, n) = time(f);
            assert!(n > 0, "a reader read nothing");
            best[i] = best[i].min(t);
        }
    }
    println!(
        "one event ({} bytes): general {:?}, typed {:?} ({:.2}x)",
        one.len(),
        best[0],
        best[1],
        best[0].as_secs_f64() / best[1].as_secs_f64()
    );
    println!(
        "page of {events} ({} bytes): general {:?}, typed {:?} ({:.2}x)",
        page.len(),
        best[2],
        best[3],
        best[2].as_secs_f64() / best[3].as_secs_f64()
    );
    println!(
        "one event to protobuf: typed + prost {:?}, straight from the JSON {:?} ({:.2}x)",
        best[4],
        best[5],
        best[4].as_secs_f64() / best[5].as_secs_f64()
    );
}

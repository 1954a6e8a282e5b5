//! The gRPC services: validate, then go through the cache, then call the upstream.

pub mod fingerprint;
pub mod page;
pub mod stytch;
pub mod validate;

use std::time::Duration;

use tonic::{Request, Response};

use crate::cache::{Tag, Tags};

/// The caller's deadline (`grpc-timeout`), if it set one.
fn deadline<T>(request: &Request<T>) -> Option<Duration> {
    let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// An answer, with the events and visitors it contains for the cache's invalidation.
fn tagged<T>(message: T, tags: Vec<Tag>) -> Response<T> {
    let mut response = Response::new(message);
    response.extensions_mut().insert(Tags(tags));
    response
}

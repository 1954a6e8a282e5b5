//! The gRPC services: validate, then go through the cache, then call the upstream.

pub mod fingerprint;
pub mod stytch;
pub mod validate;

use std::{future::Future, time::Duration};

use tonic::{Request, Response, Status, metadata::MetadataValue};

use crate::cache::{Cache, CacheStatus, Key, Tagged};
use crate::error::Error;

/// Whether the caller asked to skip the cache (`cache-control: no-cache`).
fn wants_bypass<T>(request: &Request<T>) -> bool {
    request
        .metadata()
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store")
        })
}

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

/// The read path every read RPC shares: through the cache to `fetch`, then the answer
/// with its `x-cache` metadata, or the error as a status.
async fn read_through<T, F>(
    cache: &Cache,
    key: Key,
    ttl: Duration,
    not_found_ttl: Duration,
    bypass: bool,
    fetch: F,
) -> Result<Response<T>, Status>
where
    T: prost::Message + Tagged + Clone + Send + Sync + 'static,
    F: Future<Output = Result<T, Error>>,
{
    let rpc = key.rpc();
    let (answer, status) = cache
        .get_or_fetch(key, ttl, not_found_ttl, bypass, fetch)
        .await
        .map_err(|e| e.to_status())?;
    crate::metrics::METRICS.cache(rpc, status.as_str());
    Ok(respond(answer, status))
}

/// Wraps an answer, telling the caller where it came from.
fn respond<T>(message: T, status: CacheStatus) -> Response<T> {
    let mut response = Response::new(message);
    response
        .metadata_mut()
        .insert("x-cache", MetadataValue::from_static(status.as_str()));
    response
}

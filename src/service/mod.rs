//! The gRPC services: validate, then go through the cache, then call the upstream.

pub mod fingerprint;
pub mod page;
pub mod stytch;
pub mod validate;

use std::{future::Future, time::Duration};

use tonic::{Request, Response, Status, metadata::MetadataValue};

use crate::cache::{Cache, CacheMode, CacheStatus, Key, Tagged};
use crate::error::Error;

/// How the caller lets this call use the cache (`cache-control` request metadata):
/// `no-store` wins over `no-cache`.
fn cache_mode<T>(request: &Request<T>) -> CacheMode {
    let mut mode = CacheMode::Normal;
    for directive in request
        .metadata()
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if directive.eq_ignore_ascii_case("no-store") {
            return CacheMode::NoStore;
        }
        if directive.eq_ignore_ascii_case("no-cache") {
            mode = CacheMode::NoCache;
        }
    }
    mode
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

/// The read path every cached read RPC shares: through the cache to `fetch`, then the
/// answer with its `x-cache` metadata, or the error as a status.
async fn read_through<T, F>(
    cache: &Cache,
    key: Key,
    ttl: Duration,
    not_found_ttl: Duration,
    mode: CacheMode,
    fetch: F,
) -> Result<Response<T>, Status>
where
    T: prost::Message + Tagged + Clone + Send + Sync + 'static,
    F: Future<Output = Result<T, Error>>,
{
    let rpc = key.rpc();
    let (answer, status) = cache
        .get_or_fetch(key, ttl, not_found_ttl, mode, fetch)
        .await
        .map_err(|e| e.to_status())?;
    crate::metrics::METRICS.cache(rpc.name(), status.as_str());
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

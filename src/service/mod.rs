//! The gRPC services: validate, then go through the cache, then call the upstream.

mod filter;
pub mod fingerprint;
pub mod page;
pub mod stream;
pub mod stytch;
pub mod validate;

use std::time::Duration;

use tonic::{Request, Response};

use crate::entry::{Tag, Tags};

/// The caller's deadline (`grpc-timeout`), if it set one.
fn deadline<T>(request: &Request<T>) -> Option<Duration> {
    let raw = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    crate::resilience::parse_grpc_timeout(raw)
}

/// An answer, with the events and visitors it contains for the cache's invalidation.
fn tagged<T>(message: T, tags: Vec<Tag>) -> Response<T> {
    let mut response = Response::new(message);
    response.extensions_mut().insert(Tags(tags));
    response
}

//! fingerprint-gateway: one gRPC service in front of fingerprint.com's Server API and
//! Stytch Device Fingerprinting.
//!
//! # Layout
//!
//! The modules stand on floors, listed top to bottom. A module uses only modules on
//! floors below its own; modules that share a floor do not use each other. Inside a
//! module, its submodules never use each other in a circle (a module and its own
//! submodules are one room and may use each other). `tests/architecture.rs` reads this
//! list and fails, naming the file, the line and both modules, on any `crate::`,
//! `super::` or `self::` path that breaks it. To move a module, change its floor here,
//! in the same commit, and say why.
//!
//! 1. [`server`]: the tonic server: wires every module below, serves health,
//!    reflection and the metrics endpoint, rotates secrets, drains on shutdown.
//! 2. [`sandbox`]: the embedded emulator of both upstreams (`--sandbox`), started by
//!    `server`; it uses nothing of the gateway but `convert`'s published Stytch rule
//!    list and `cidr`.
//! 3. [`edge`]: the one tower layer in front of the services: span, metrics, caller
//!    identity and policy, the audit of mutations, deadlines, the cache.
//! 4. [`service`], [`screen`]: the RPC handlers (validate, page, call the upstream,
//!    convert, tag the answer and invalidate after writes); and the edge bot defense
//!    (Envoy ext_authz and HTTP forward-auth decisions from `/v4/edge` and its policy),
//!    which calls the fingerprint.com client itself, as the handlers do, and shares
//!    nothing with them.
//! 5. [`cache`]: the answer cache (moka, L1) and the layer that answers hits from
//!    stored frames and coalesces misses, over the shared level when there is one.
//! 6. [`auth`]: caller identity (mTLS, mesh headers, keys), the policy and per-caller
//!    limits.
//! 7. [`audit`]: the trail of mutations.
//! 8. [`upstream`]: the HTTP clients of fingerprint.com and Stytch; they return JSON
//!    (or, for a v4 event or search page of exactly the published shape, what
//!    `convert`'s typed readers made of it: a typed mirror, or a v4 event encoded).
//! 9. [`resilience`]: deadlines, retry policy and budget, circuit breakers, quota
//!    limiters, the in-flight and connection bounds.
//! 10. [`shared`]: what replicas share on Redis (opt-in): the second cache level,
//!     invalidations and the lease on the first, cross-replica locks, the quota. It
//!     reaches the first level through its own `Local` trait, which `cache` implements.
//! 11. [`entry`]: what the cache keeps, at both levels: keys, entries, tags and
//!     invalidations.
//! 12. [`sealed`], [`webhook`]: local verification (sealed results, webhook
//!     signatures).
//! 13. [`convert`]: upstream JSON to protobuf messages (events, lists, Stytch answers),
//!     and the typed reading of v4 events and search pages that skips
//!     `serde_json::Value` (GetEvent's event is written straight into its protobuf
//!     encoding).
//! 14. [`telemetry`] (logs, traces), [`metrics`] (Prometheus), [`tls`] (the listener's
//!     TLS and mTLS, and what a connection tells of its peer).
//! 15. [`config`]: the settings table and the value shapes it reads (durations, rates,
//!     lists, paths); each consumer turns them into its own types.
//! 16. [`secrets`] (secret files, rotated live), [`cidr`] (address ranges), [`rpc`] (the
//!     RPCs as an enum).
//! 17. [`error`]: the one mapping of every failure to a gRPC status.
//! 18. [`proto`]: generated code, plus the server's `GetEventResponse` that carries an
//!     encoded event.

// The sandbox builds its large example answers with `serde_json::json!`.
#![recursion_limit = "256"]

pub mod audit;
pub mod auth;
pub mod cache;
pub mod cidr;
pub mod config;
pub mod convert;
pub mod edge;
pub mod entry;
pub mod error;
pub mod metrics;
pub mod proto;
pub mod resilience;
pub mod rpc;
pub mod sandbox;
pub mod screen;
pub mod sealed;
pub mod secrets;
pub mod server;
pub mod service;
pub mod shared;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod webhook;

//! fingerprint-gateway: one gRPC service in front of fingerprint.com's Server API and
//! Stytch Device Fingerprinting.
//!
//! # Layout
//!
//! A call flows top to bottom; each module imports only those below it (and the
//! leaves).
//!
//! - [`server`]: the tonic server: health, reflection, drain.
//! - [`edge`]: the one tower layer in front of the services: span, metrics, cache.
//! - [`cache`]: the answer cache and the layer that answers hits from stored frames.
//! - [`shared`]: what replicas share on Redis (opt-in): the second cache level,
//!   invalidations and the lease on the first, cross-replica locks, the quota.
//! - [`service`]: the RPC handlers: validate, page, call the upstream, convert.
//! - [`upstream`]: the HTTP clients of fingerprint.com and Stytch; they return JSON
//!   (or, for a v4 event or search page of exactly the published shape, what
//!   `convert`'s typed readers made of it: a typed mirror, or a v4 event encoded).
//! - [`resilience`]: deadlines, retry policy and budget, circuit breakers, quota
//!   limiters and the in-flight bound, consulted by `edge`, `cache` and `upstream`.
//! - [`convert`]: upstream JSON to protobuf messages (events, lists, Stytch answers),
//!   and the typed reading of v4 events and search pages that skips `serde_json::Value`
//!   (GetEvent's event is written straight into its protobuf encoding).
//! - [`sealed`], [`webhook`]: local verification (sealed results, webhook signatures).
//! - [`sandbox`]: the embedded emulator of both upstreams (`--sandbox`).
//! - Used by every layer: [`metrics`] (Prometheus), [`telemetry`] (logs, traces).
//! - [`auth`] (caller identity, the policy, per-caller limits), [`tls`] (the
//!   listener's TLS and mTLS) and [`audit`] (the trail of mutations), used by `edge`;
//!   [`secrets`] (secrets from files, rotated live), used by `server`.
//! - Leaves: [`error`] (the one mapping to gRPC statuses), [`config`] (the settings
//!   table), [`rpc`] (the RPCs as an enum), [`cidr`], and [`proto`] (generated, plus
//!   the server's `GetEventResponse` that carries an encoded event).

// The sandbox builds its large example answers with `serde_json::json!`.
#![recursion_limit = "256"]

pub mod audit;
pub mod auth;
pub mod cache;
pub mod cidr;
pub mod config;
pub mod convert;
pub mod edge;
pub mod error;
pub mod metrics;
pub mod proto;
pub mod resilience;
pub mod rpc;
pub mod sandbox;
pub mod sealed;
pub mod secrets;
pub mod server;
pub mod service;
pub mod shared;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod webhook;

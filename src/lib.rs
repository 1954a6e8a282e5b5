// The sandbox builds its large example answers with `serde_json::json!`.
#![recursion_limit = "256"]

pub mod cache;
pub mod cidr;
pub mod config;
pub mod convert;
pub mod error;
pub mod metrics;
pub mod proto;
pub mod rpc;
pub mod sandbox;
pub mod sealed;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod upstream;
pub mod webhook;

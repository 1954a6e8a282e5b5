//! Code generated from `proto/` by `build.rs`: the `fingerprint.gateway.v1` package.
#![allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used
)]

/// The `fingerprint.gateway.v1` package.
pub mod v1 {
    tonic::include_proto!("fingerprint.gateway.v1");
    pub use super::servers::{fingerprint_service_server, stytch_service_server};
}

/// The package's servers, generated apart: their GetEvent answers with
/// [`wire::GetEventResponse`].
mod servers {
    include!(concat!(
        env!("OUT_DIR"),
        "/server/fingerprint.gateway.v1.rs"
    ));
}

pub mod wire;

/// Encoded `FileDescriptorSet` of the package, served by server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gateway_descriptor");

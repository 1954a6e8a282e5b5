//! Pure conversions from upstream JSON to protobuf messages.

pub mod event;
pub mod json;
pub mod stytch;
pub mod v3;

//! Compiles `proto/` into Rust and writes the descriptor set that server reflection serves.

use std::{env, error::Error, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/fingerprint/gateway/v1/error_reason.proto",
    "proto/fingerprint/gateway/v1/event.proto",
    "proto/fingerprint/gateway/v1/fingerprint.proto",
    "proto/fingerprint/gateway/v1/stytch.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let mut config = tonic_prost_build::Config::new();
    // A fresh machine has no protoc: use the vendored one unless the builder chose another.
    if env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    // An `Event` is 2.8 KB inline: held by value in GetEventResponse it was copied at
    // each hand-over between the service, tonic and the encoder on every miss.
    config.boxed(".fingerprint.gateway.v1.GetEventResponse.event");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("gateway_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

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
    // Messages and clients, as every caller sees them.
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(out.join("gateway_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;
    // The servers, generated apart so that GetEvent can answer with an `Event` already
    // encoded (`crate::proto::wire`): the same bytes on the wire, no `Event` built on
    // the way. Every other message is the one generated above.
    let server_out = out.join("server");
    std::fs::create_dir_all(&server_out)?;
    let mut config = tonic_prost_build::Config::new();
    if env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&server_out)
        .extern_path(".fingerprint.gateway.v1", "crate::proto::v1")
        .extern_path(
            ".fingerprint.gateway.v1.GetEventResponse",
            "crate::proto::wire::GetEventResponse",
        )
        .compile_with_config(config, PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

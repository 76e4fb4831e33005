//! Generates the Rust types of EVE's LPS API from our own `proto/` files.
//!
//! No `protoc` and no network: `protox` parses the files (it ships
//! `google/protobuf/timestamp.proto`), `prost-build` turns the descriptors into
//! Rust structs, and `pbjson-build` adds serde impls that follow the proto3
//! JSON mapping (proto field names, enums by name, 64-bit integers as strings,
//! `Timestamp` via `pbjson_types`).

use std::path::PathBuf;

const PROTO_ROOT: &str = "proto";

const PROTO_FILES: &[&str] = &[
    "proto/profile/local_profile.proto",
    "proto/profile/network.proto",
    "proto/profile/signal.proto",
    "proto/info/info.proto",
    "proto/info/common.proto",
    "proto/metrics/metrics.proto",
    "proto/evecommon/evecommon.proto",
    "proto/evecommon/netcmn.proto",
];

/// Enums whose serde impls are written by hand in `src/eve.rs`, because
/// pbjson-build drops `allow_alias` names and so would reject the deprecated
/// alias when parsing JSON.
const HAND_WRITTEN_SERDE: &[&str] = &[".org.lfedge.eve.profile.LocalDevCmd.Command"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build.rs");

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_files(PROTO_FILES)?;
    let fds = compiler.file_descriptor_set();
    let encoded = compiler.encode_file_descriptor_set();

    // prost-build skips `allow_alias` duplicates itself: only the first name
    // declared for a number becomes a Rust variant.
    //
    // `compile_well_known_types` only switches off prost-build's default
    // mapping of `.google.protobuf` to `prost_types`, so that it can point at
    // `pbjson_types` (same structs, plus proto3 JSON serde impls).
    prost_build::Config::new()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .out_dir(&out_dir)
        .extern_path(".google.protobuf", "::pbjson_types")
        .preserve_proto_field_names()
        .exclude(HAND_WRITTEN_SERDE.iter().copied())
        .build(&[".org.lfedge.eve"])?;

    sparkplug()
}

/// Sparkplug B payload types (`src/sparkplug`): a build step of its own, separate from EVE's
/// files (no JSON mapping, its own package `sparkplug_b`, written to `$OUT_DIR/sparkplug_b.rs`).
fn sparkplug() -> Result<(), Box<dyn std::error::Error>> {
    const ROOT: &str = "proto/sparkplug";
    println!("cargo:rerun-if-changed={ROOT}");
    let mut compiler = protox::Compiler::new([ROOT])?;
    compiler.open_files(["proto/sparkplug/sparkplug_b.proto"])?;
    prost_build::Config::new().compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

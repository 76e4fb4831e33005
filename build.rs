//! Sparkplug B payload types (`src/sparkplug`): our own proto2 file in `proto/sparkplug`, compiled
//! with protox + prost-build (no `protoc`). EVE's types are built by `crates/eve-proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const ROOT: &str = "proto/sparkplug";
    println!("cargo:rerun-if-changed={ROOT}");
    println!("cargo:rerun-if-changed=build.rs");
    let mut compiler = protox::Compiler::new([ROOT])?;
    compiler.open_files(["proto/sparkplug/sparkplug_b.proto"])?;
    prost_build::Config::new().compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

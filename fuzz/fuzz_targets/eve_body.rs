//! cargo-fuzz target: see `targets::eve_body` (fuzz/targets.rs).
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::eve_body(data));

//! cargo-fuzz target: see `targets::rule_match` (fuzz/targets.rs).
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::rule_match(data));

//! The fuzz targets' code (fuzz/targets.rs) in `cargo test`: the seed corpus (fuzz/seeds/) and
//! every input a fuzzer run found crashing (fuzz/regressions/<target>/, one file each) go
//! through the same functions the fuzzer runs; none may panic.

#[path = "../../fuzz/targets.rs"]
mod targets;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
            n += 1;
        }
    }
    assert!(n > 0, "no seeds for {target} in fuzz/seeds/{target}");
}

#[test]
fn eve_bodies_from_the_corpus_decode_without_panic() {
    replay("eve_body", targets::eve_body);
}

#[test]
fn command_payloads_from_the_corpus_parse_without_panic() {
    replay("command", targets::command);
}

#[test]
fn rule_inputs_from_the_corpus_match_without_panic() {
    replay("rule_match", targets::rule_match);
}

#[test]
fn configs_from_the_corpus_load_without_panic() {
    replay("config", targets::config);
}

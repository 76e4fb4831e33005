//! The module graph of `src/` has no cycle through config, command, mqtt, rules, lps or
//! operator (issue 8's rule: a way in maps to `command`, nothing imports `mqtt` to talk about
//! commands). An edge A → B is any mention of `crate::B` in a file of top-level module A, test
//! code and doc links included, so the check errs on the strict side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const WATCHED: &[&str] = &["config", "command", "mqtt", "rules", "lps", "operator"];

fn rust_files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut edges = BTreeMap::new();
    for m in &modules {
        let mut files = Vec::new();
        rust_files(&src.join(m), &mut files);
        rust_files(&src.join(format!("{m}.rs")), &mut files);
        let mut to = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                // `crate::{a, b::c}` names several modules at once.
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group[..group.find('}').unwrap_or(0)]
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or(""))
                        .collect(),
                    None => vec![rest
                        .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                        .next()
                        .unwrap_or("")],
                };
                for n in names {
                    if modules.contains(n) && n != m {
                        to.insert(n.to_string());
                    }
                }
            }
        }
        edges.insert(m.clone(), to);
    }
    edges
}

fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for n in &edges[&m] {
            if seen.insert(n.clone()) {
                todo.push(n.clone());
            }
        }
    }
    seen
}

#[test]
fn no_cycle_runs_through_the_watched_modules() {
    let edges = graph();
    for m in WATCHED {
        assert!(edges.contains_key(*m), "src/{m} is gone: update WATCHED");
        assert!(
            !reachable(&edges, m).contains(*m),
            "a cycle runs through `{m}`: {edges:#?}"
        );
    }
    // The leaves stay leaves.
    assert!(edges["config"].is_empty(), "config: {:?}", edges["config"]);
    assert!(!edges["command"].contains("mqtt"));
}

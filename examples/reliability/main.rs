//! Reliability suite: tries hard to lose data. The release binary runs as a child process with a
//! real data dir, its embedded broker and REST API on loopback, EVE played by `simulate-eve`;
//! each scenario prints a Markdown table (kept in RELIABILITY.md).
//!
//! ```sh
//! cargo build --release --locked && cargo run --release --locked --example reliability -- all
//! cargo build --release --locked && cargo run --release --locked --example reliability -- --smoke
//! cargo run --release --locked --example reliability -- crash    # one scenario (see below)
//! ```
//!
//! Scenarios: `crash` (1), `faults` (2), `eve` (3), `mqtt` (4), `consumers` (5), `soak` (6).
//! Exit status 1 if any check failed. Everything stops by itself.

mod clients;
mod consumers;
mod crash;
mod eve;
mod faults;
mod gateway;
mod hostile_eve;
mod hostile_mqtt;
mod report;
mod soak;

use std::time::Instant;

/// How big each scenario is: the documented full run, or CI's smoke run.
#[derive(Clone, Copy)]
pub struct Size {
    pub smoke: bool,
}

impl Size {
    pub fn pick<T>(&self, smoke: T, full: T) -> T {
        if self.smoke {
            smoke
        } else {
            full
        }
    }
}

const ALL: [&str; 6] = ["crash", "faults", "eve", "mqtt", "consumers", "soak"];

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("?".into(), |kb| format!("{:.1} GB", kb as f64 / 1048576.0));
    let disk = std::process::Command::new("df")
        .args([
            "-h",
            "--output=source,fstype,size",
            &std::env::temp_dir().display().to_string(),
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .nth(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default();
    format!("{cores} cores, {mem} memory, temp dir on {disk}")
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = Size {
        smoke: args.iter().any(|a| a == "--smoke"),
    };
    let mut chosen: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if chosen.is_empty() || chosen.contains(&"all") {
        chosen = ALL.to_vec();
    }
    if let Some(bad) = chosen.iter().find(|c| !ALL.contains(c)) {
        eprintln!("unknown scenario '{bad}'; expected all, --smoke or some of {ALL:?}");
        return std::process::ExitCode::from(2);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "## Reliability suite ({})\n",
        if size.smoke { "smoke" } else { "full" }
    );
    println!("Machine: {}", machine());
    let started = Instant::now();
    let mut ok = true;
    for name in chosen {
        let s = Instant::now();
        let table = rt.block_on(async {
            match name {
                "crash" => crash::run(size.pick(5, 50)).await,
                "faults" => faults::run().await,
                "eve" => hostile_eve::run().await,
                "mqtt" => hostile_mqtt::run(size).await,
                "consumers" => consumers::run(size).await,
                "soak" => soak::run(size).await,
                _ => unreachable!(),
            }
        });
        table.print();
        println!("\n({name}: {:.0} s)", s.elapsed().as_secs_f64());
        ok &= table.ok();
    }
    println!(
        "\nTotal {:.0} s; {}",
        started.elapsed().as_secs_f64(),
        if ok {
            "all checks passed"
        } else {
            "SOME CHECKS FAILED"
        }
    );
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

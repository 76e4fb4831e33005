//! `lps-bridge demo`: the gateway on embedded defaults plus a simulated EVE node with sample apps
//! and profiles, so a newcomer sees everything working with one command.

use crate::config::{Config, ConfigError, ProfileEntry};
use crate::simulator::{self, AppSpec, SimOptions};
use std::path::{Path, PathBuf};

/// The token the demo's gateway and simulated node share.
pub const DEMO_TOKEN: &str = "demo-token";
/// Sample apps: a vision app for the day shift, a GPU trainer for nights, two that always run.
pub const DEMO_APPS: &str = "vision@day,gpu-trainer@night,historian,plc-gateway";

/// Loads the demo's config from `file` (or the built-in defaults). Its data goes to `data_dir`
/// (`--data-dir`), else to the file's `[store] dir` if the file sets one, else to a scratch
/// directory of its own.
pub fn load(file: Option<&Path>, data_dir: Option<PathBuf>) -> Result<Config, ConfigError> {
    let base = file.map(|p| Config::load(Some(p))).transpose()?;
    let from_file = match (file, &base) {
        (Some(p), Some(c)) if sets_store_dir(p) => Some(c.store.dir.clone()),
        _ => None,
    };
    Ok(config(base, data_dir.or(from_file)))
}

/// Whether the file names `[store] dir` itself (the parsed config cannot tell a default apart).
fn sets_store_dir(file: &Path) -> bool {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|t| {
            t.get("store")
                .and_then(|s| s.as_table())
                .is_some_and(|s| s.contains_key("dir"))
        })
}

/// The data directory of a demo given none: one per process, because one process at a time may
/// open a store and a second demo must not fail on the first one's lock. Removed when the demo
/// stops.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("lps-bridge-demo-{}", std::process::id()))
}

/// The demo's config: `base` (the built-in defaults, or a file) with the EVE API on loopback
/// unless the file says otherwise, a shared token and two profiles unless set, and the data in
/// [`scratch_dir`] unless `data_dir` is given.
pub fn config(base: Option<Config>, data_dir: Option<PathBuf>) -> Config {
    let mut c = base.unwrap_or_else(|| {
        let mut c = Config::default();
        // The simulated node is local: nothing else needs to reach the EVE API.
        c.lps.listen = "127.0.0.1:8888".into();
        c
    });
    if c.lps.server_token.is_empty() {
        c.lps.server_token = DEMO_TOKEN.into();
    }
    c.store.dir = data_dir.unwrap_or_else(scratch_dir);
    if c.profiles.is_empty() {
        c.profiles = vec![
            ProfileEntry {
                name: "day".into(),
                description: "Vision inspection owns the GPU".into(),
                apps: None,
            },
            ProfileEntry {
                name: "night".into(),
                description: "Model training owns the GPU".into(),
                apps: None,
            },
        ];
    }
    c
}

/// Runs the gateway (on the demo's [`config`], prepared) and the simulated node until `signal`.
pub async fn run(
    prepared: crate::app::Prepared,
    speed: f64,
    signal: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = &prepared.settings.config;
    let token = config.lps.server_token.clone();
    let data = config.store.dir.clone();
    let scratch = data == scratch_dir();
    let running = crate::app::start(prepared).await?;
    let mut opts = SimOptions::new(format!("http://{}", running.lps_addr), token);
    opts.apps = AppSpec::parse_list(DEMO_APPS).map_err(anyhow::Error::msg)?;
    opts.speed = speed;
    let sim = simulator::spawn(opts);
    let dashboard = running
        .operator_addr
        .map(|a| format!("http://{a}/"))
        .unwrap_or_else(|| "(operator API off)".into());
    let mqtt = running
        .mqtt_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "(embedded broker off)".into());
    println!();
    println!("  lps-bridge demo: a gateway and a simulated EVE node with apps {DEMO_APPS}");
    println!();
    println!("  dashboard   {dashboard}");
    println!("  MQTT        {mqtt}   (base topic lps/edge)");
    println!(
        "  EVE API     http://{}/api/v1/   (token {DEMO_TOKEN})",
        running.lps_addr
    );
    if scratch {
        println!(
            "  data        {}   (removed on exit; keep it with --data-dir)",
            data.display()
        );
    } else {
        println!("  data        {}", data.display());
    }
    println!();
    println!("  try:  mosquitto_sub -h 127.0.0.1 -t 'lps/edge/#' -v");
    println!("        mosquitto_pub -h 127.0.0.1 -t lps/edge/profile/set -m night");
    println!("        mosquitto_pub -h 127.0.0.1 -t lps/edge/app/vision/set -m '{{\"command\":\"restart\"}}'");
    println!();
    println!("  Ctrl-C stops it.");
    signal.await;
    sim.stop().await;
    running.stop().await;
    if scratch {
        // Stopped, so the store is closed: nothing of this demo is needed again.
        if let Err(e) = std::fs::remove_dir_all(&data) {
            eprintln!("lps-bridge demo: could not remove {}: {e}", data.display());
        }
    }
    Ok(())
}

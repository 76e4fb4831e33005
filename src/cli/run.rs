//! `run` and `demo`: load, check, then start the gateway on a runtime until Ctrl-C or SIGTERM.

use super::load;
#[cfg(feature = "simulator")]
use super::load::Refused;
use super::ConfigArg;
use std::path::PathBuf;
use std::process::ExitCode;

/// Logging, and the open-file limit a gateway with many sockets needs.
fn start_process() {
    lps_bridge::logging::init();
    // systemd's default soft limit is 1024: idle connections must not starve EVE's API.
    match lps_bridge::descriptors::raise_limit() {
        Some((soft, hard)) => tracing::info!(soft, hard, "open file limit"),
        None => tracing::warn!("cannot read the open file limit"),
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can be built at start-up")
}

pub fn run(config: &ConfigArg, data_dir: Option<PathBuf>) -> ExitCode {
    start_process();
    let settings = match load::settings(config.path(), data_dir) {
        Ok((settings, _)) => settings,
        Err(refused) => return refused.exit("lps-bridge"),
    };
    let signal = lps_bridge::app::shutdown_signal();
    match runtime().block_on(lps_bridge::app::run(settings, signal)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => load::failed("lps-bridge", &e),
    }
}

#[cfg(feature = "simulator")]
pub fn demo(
    config: &ConfigArg,
    data_dir: Option<PathBuf>,
    keep_data: bool,
    speed: f64,
) -> ExitCode {
    const WHO: &str = "lps-bridge demo";
    start_process();
    if !(speed.is_finite() && speed > 0.0) {
        eprintln!("{WHO}: --speed must be a positive number");
        return ExitCode::from(load::EXIT_CONFIG);
    }
    let (demo, prepared) = match demo_config(config, data_dir, keep_data) {
        Ok(ready) => ready,
        Err(refused) => return refused.exit(WHO),
    };
    let signal = lps_bridge::app::shutdown_signal();
    match runtime().block_on(lps_bridge::demo::run(demo, prepared, speed, signal)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => load::failed(WHO, &e),
    }
}

/// The demo's config (its own defaults without a file, the environment over either), refused
/// before anything starts with the same exit codes as `run`.
#[cfg(feature = "simulator")]
fn demo_config(
    config: &ConfigArg,
    data_dir: Option<PathBuf>,
    keep_data: bool,
) -> Result<(lps_bridge::demo::Demo, lps_bridge::app::Prepared), Refused> {
    use lps_bridge::config::{env, Config};
    let path = config.path();
    let vars = env::ours(std::env::vars_os())?;
    let (base, from_env) = Config::load_layered(path, lps_bridge::demo::defaults(), &vars)?;
    // A data directory the user chose (flag, file or environment) is used as is.
    let chosen = path.is_some_and(lps_bridge::demo::sets_store_dir)
        || from_env.iter().any(|f| f.key() == "store.dir");
    let data_dir = data_dir.or_else(|| chosen.then(|| base.store.dir.clone()));
    let demo = lps_bridge::demo::Demo::new(base, data_dir, keep_data);
    let prepared = lps_bridge::app::prepare(demo.config.clone())?;
    Ok((demo, prepared))
}

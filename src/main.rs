//! The `lps-bridge` command line: parse, load config, set up logging, call into the library.

use clap::{Parser, Subcommand};
use lps_bridge::app::Prepared;
use lps_bridge::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// EVE-OS Local Profile Server with an embedded MQTT broker.
#[derive(Parser)]
#[command(name = "lps-bridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (built-in defaults when no --config is given).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Overrides `store.dir` (handy when /var/lib is not writable).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The gateway plus a simulated EVE node with sample apps: see everything work at once.
    #[cfg(feature = "simulator")]
    Demo {
        /// Start from this config file instead of the built-in defaults (listen addresses ...).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where the demo keeps its data (default: the file's `[store] dir`, else a directory
        /// of its own under the system temp dir, removed on exit).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run the simulated node's intervals this many times faster.
        #[arg(long, default_value_t = 5.0)]
        speed: f64,
    },
    /// Simulate an EVE node polling an LPS (for tests and demos).
    #[cfg(feature = "simulator")]
    SimulateEve {
        /// Base URL of the LPS, e.g. http://127.0.0.1:8888
        #[arg(long)]
        lps: String,
        /// The node's profile_server_token; answers carrying another token are refused.
        #[arg(long, default_value = "")]
        token: String,
        /// Apps, comma-separated; `name@day+night` gives an app a profile list.
        #[arg(long, default_value = "vision,logger")]
        apps: String,
        /// Run EVE's intervals and delays this many times faster.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// The controller's global profile.
        #[arg(long, default_value = "")]
        global_profile: String,
        #[arg(long)]
        device_uuid: Option<String>,
    },
    /// Print the effective config (secrets redacted).
    PrintConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config file and exit 0 if it is valid.
    CheckConfig { file: PathBuf },
    /// Read a password on standard input and print its argon2 hash for `[[mqtt.users]] password_hash`.
    HashPassword,
}

/// sysexits' EX_USAGE: bad config or arguments.
const EXIT_CONFIG: u8 = 64;

fn load(path: Option<&std::path::Path>) -> Result<Prepared, String> {
    load_with(path, None)
}

fn load_with(
    path: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> Result<Prepared, String> {
    let mut config = Config::load(path).map_err(|e| e.to_string())?;
    if let Some(dir) = data_dir {
        config.store.dir = dir;
    }
    config.apply_env(|k| std::env::var(k).ok());
    lps_bridge::app::prepare(config).map_err(|e| e.to_string())
}

fn init_logging() {
    lps_bridge::logging::init();
}

/// A gateway serves many sockets: take the hard limit on open files (systemd's default soft
/// limit is 1024), so that idle connections do not starve EVE's API.
fn raise_fd_limit() {
    match lps_bridge::descriptors::raise_limit() {
        Some((soft, hard)) => tracing::info!(soft, hard, "open file limit"),
        None => tracing::warn!("cannot read the open file limit"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can be built at start-up")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, data_dir } => {
            init_logging();
            raise_fd_limit();
            let prepared = match load_with(config.as_deref(), data_dir) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("lps-bridge: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match runtime().block_on(lps_bridge::app::run(
                prepared,
                lps_bridge::app::shutdown_signal(),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lps-bridge: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        #[cfg(feature = "simulator")]
        Command::Demo {
            config,
            data_dir,
            speed,
        } => {
            init_logging();
            raise_fd_limit();
            let mut config = match lps_bridge::demo::load(config.as_deref(), data_dir) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("lps-bridge demo: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            config.apply_env(|k| std::env::var(k).ok());
            // Refused before anything starts, with the same exit code as `run`.
            let prepared = match lps_bridge::app::prepare(config) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("lps-bridge demo: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match runtime().block_on(lps_bridge::demo::run(
                prepared,
                speed,
                lps_bridge::app::shutdown_signal(),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lps-bridge demo: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        #[cfg(feature = "simulator")]
        Command::SimulateEve {
            lps,
            token,
            apps,
            speed,
            global_profile,
            device_uuid,
        } => {
            init_logging();
            let apps = match lps_bridge::simulator::AppSpec::parse_list(&apps) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("lps-bridge simulate-eve: --apps: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if !(speed.is_finite() && speed > 0.0) {
                eprintln!("lps-bridge simulate-eve: --speed must be a positive number");
                return ExitCode::from(EXIT_CONFIG);
            }
            let opts = lps_bridge::simulator::SimOptions {
                lps_url: lps,
                token,
                apps,
                speed,
                device_uuid,
                global_profile,
            };
            runtime().block_on(lps_bridge::simulator::run(
                opts,
                lps_bridge::app::shutdown_signal(),
            ));
            ExitCode::SUCCESS
        }
        Command::PrintConfig { config } => match load(config.as_deref()) {
            Ok(s) => {
                print!("{}", s.settings.config.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lps-bridge: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::HashPassword => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err()
                || line.trim_end_matches(['\r', '\n']).is_empty()
            {
                eprintln!("lps-bridge hash-password: give the password on standard input");
                return ExitCode::from(EXIT_CONFIG);
            }
            match lps_bridge::mqtt::auth::hash_password(line.trim_end_matches(['\r', '\n'])) {
                Ok(hash) => {
                    println!("{hash}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lps-bridge hash-password: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { file } => match load(Some(&file)) {
            Ok(prepared) => {
                print!(
                    "{}",
                    lps_bridge::schedule::describe(&prepared.settings.config.schedules)
                );
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
    }
}

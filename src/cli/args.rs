//! The command line's shape: subcommands, options and their help texts.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// EVE-OS Local Profile Server with an embedded MQTT broker.
#[derive(Parser)]
#[command(name = "lps-bridge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The config file, given the same way to every subcommand that reads one: `--config FILE`
/// or just `FILE`.
#[derive(Args, Clone, Default)]
pub struct ConfigArg {
    /// The config file (TOML). Without one: the built-in defaults. LPS_BRIDGE_* environment
    /// variables apply over either (see the README).
    #[arg(long, short, value_name = "FILE", conflicts_with = "file")]
    config: Option<PathBuf>,
    /// The config file, given without --config.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

impl ConfigArg {
    pub fn path(&self) -> Option<&std::path::Path> {
        self.config.as_deref().or(self.file.as_deref())
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway (built-in defaults when no config file is given).
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Overrides `store.dir` (handy when /var/lib is not writable).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// The gateway plus a simulated EVE node with sample apps: see everything work at once.
    #[cfg(feature = "simulator")]
    Demo {
        #[command(flatten)]
        config: ConfigArg,
        /// Where the demo keeps its data (default: the config's `store.dir` if it sets one,
        /// else a directory of its own under the system temp dir, removed on exit).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Continue from the data of an earlier demo instead of starting fresh (without a
        /// data dir: in a fixed directory under the system temp dir, kept on exit).
        #[arg(long)]
        keep_data: bool,
        /// Run the simulated node's intervals this many times faster.
        #[arg(long, default_value_t = 5.0)]
        speed: f64,
    },
    /// Simulate an EVE node polling an LPS (for tests and demos).
    #[cfg(feature = "simulator")]
    SimulateEve(SimArgs),
    /// Print the effective config (secrets redacted; values from the environment marked).
    PrintConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check a config (and the environment over it) and exit 0 if it is valid.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Read a password on standard input and print its argon2 hash for `[[mqtt.users]] password_hash`.
    HashPassword,
}

/// What `simulate-eve` takes.
#[cfg(feature = "simulator")]
#[derive(Args)]
pub struct SimArgs {
    /// Base URL of the LPS, e.g. http://127.0.0.1:8888
    #[arg(long)]
    pub lps: String,
    /// The node's profile_server_token; answers carrying another token are refused.
    #[arg(long, default_value = "")]
    pub token: String,
    /// Apps, comma-separated; `name@day+night` gives an app a profile list.
    #[arg(long, default_value = "vision,logger")]
    pub apps: String,
    /// Run EVE's intervals and delays this many times faster.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// The controller's global profile.
    #[arg(long, default_value = "")]
    pub global_profile: String,
    /// The node's UUID (default: the same fixed UUID on every run).
    #[arg(long)]
    pub device_uuid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_option_has_a_help_text() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                assert!(
                    arg.get_help().is_some(),
                    "{} {} has no help text",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
        Cli::command().debug_assert();
    }
}

//! The `lps-bridge` command line: `args` (its shape and help), `load` (config from file,
//! environment and flags; exit codes), `run` (`run`, `demo`), `tools` (everything else).

mod args;
mod load;
mod run;
mod tools;

pub use args::{Cli, Command, ConfigArg};
use std::process::ExitCode;

/// Runs one subcommand.
pub fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run { config, data_dir } => run::run(&config, data_dir),
        #[cfg(feature = "simulator")]
        Command::Demo {
            config,
            data_dir,
            keep_data,
            speed,
        } => run::demo(&config, data_dir, keep_data, speed),
        #[cfg(feature = "simulator")]
        Command::SimulateEve(args) => tools::simulate_eve(args),
        Command::PrintConfig { config } => tools::print_config(&config),
        Command::CheckConfig { config } => tools::check_config(&config),
        Command::HashPassword => tools::hash_password(),
    }
}

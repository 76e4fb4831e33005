//! The `lps-bridge` binary: parse the command line and run the subcommand (see `cli`).

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::dispatch(cli::Cli::parse().command)
}

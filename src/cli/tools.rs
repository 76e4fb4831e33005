//! The subcommands that start no gateway: config checks, password hashing, the EVE simulator.

use super::load::{self, EXIT_CONFIG};
use super::ConfigArg;
use std::process::ExitCode;

pub fn print_config(config: &ConfigArg) -> ExitCode {
    match load::settings(config.path(), None) {
        Ok((settings, from_env)) => {
            print!("{}", settings.settings.config.to_marked_toml(&from_env));
            ExitCode::SUCCESS
        }
        Err(refused) => refused.exit("lps-bridge print-config"),
    }
}

pub fn check_config(config: &ConfigArg) -> ExitCode {
    let what = match config.path() {
        Some(path) => path.display().to_string(),
        None => "the built-in defaults".to_string(),
    };
    match load::settings(config.path(), None) {
        Ok((settings, from_env)) => {
            print!(
                "{}",
                lps_bridge::schedule::describe(&settings.settings.config.schedules)
            );
            for set in &from_env {
                println!("{} from {}", set.key(), set.var);
            }
            println!("{what}: ok");
            ExitCode::SUCCESS
        }
        Err(refused) => refused.exit(&what),
    }
}

pub fn hash_password() -> ExitCode {
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

#[cfg(feature = "simulator")]
pub use super::args::SimArgs;

#[cfg(feature = "simulator")]
pub fn simulate_eve(args: SimArgs) -> ExitCode {
    lps_bridge::logging::init();
    let apps = match lps_bridge::simulator::AppSpec::parse_list(&args.apps) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lps-bridge simulate-eve: --apps: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if !(args.speed.is_finite() && args.speed > 0.0) {
        eprintln!("lps-bridge simulate-eve: --speed must be a positive number");
        return ExitCode::from(EXIT_CONFIG);
    }
    let opts = lps_bridge::simulator::SimOptions {
        lps_url: args.lps,
        token: args.token,
        apps,
        speed: args.speed,
        device_uuid: args.device_uuid,
        global_profile: args.global_profile,
    };
    super::run::runtime().block_on(lps_bridge::simulator::run(
        opts,
        lps_bridge::app::shutdown_signal(),
    ));
    ExitCode::SUCCESS
}

//! Config for the subcommands: file, environment and flags in one place, and the exit code each
//! kind of failure gets.

use lps_bridge::app::Prepared;
use lps_bridge::config::{self, Config, ConfigError, FromEnv};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// sysexits' EX_USAGE: the config (or an argument) is invalid.
pub const EXIT_CONFIG: u8 = 64;
/// sysexits' EX_NOINPUT: the config file or a rule file is missing or unreadable.
pub const EXIT_NO_INPUT: u8 = 66;
/// sysexits' EX_CANTCREAT: the store directory cannot be created or written.
pub const EXIT_CANT_CREATE: u8 = 73;

/// A config that cannot be used, and the exit code for it.
pub struct Refused(pub ConfigError);

impl Refused {
    pub fn exit(&self, who: &str) -> ExitCode {
        eprintln!("{who}: {}", self.0);
        ExitCode::from(match self.0 {
            ConfigError::Read(..) | ConfigError::RuleFile { .. } => EXIT_NO_INPUT,
            _ => EXIT_CONFIG,
        })
    }
}

impl From<ConfigError> for Refused {
    fn from(e: ConfigError) -> Self {
        Refused(e)
    }
}

/// The file (or defaults) with this process's `LPS_BRIDGE_*` variables over it, and what they set.
pub fn config(path: Option<&Path>) -> Result<(Config, Vec<FromEnv>), Refused> {
    let vars = config::env::ours(std::env::vars_os())?;
    Ok(Config::load_with_env(path, &vars)?)
}

/// [`config`], then `--data-dir` over `store.dir`, checked the way start-up checks it.
pub fn settings(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
) -> Result<(Prepared, Vec<FromEnv>), Refused> {
    let (mut config, from_env) = config(path)?;
    if let Some(dir) = data_dir {
        config.store.dir = dir;
    }
    Ok((lps_bridge::app::prepare(config)?, from_env))
}

/// What to say and which code to exit with when the gateway failed at or after start. A store
/// directory this user may not write gets the fix named.
pub fn failed(who: &str, err: &anyhow::Error) -> ExitCode {
    let denied = err.chain().find_map(|e| match e.downcast_ref() {
        Some(lps_bridge::store::StoreError::Dir(dir, io))
            if io.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Some(dir.clone())
        }
        Some(lps_bridge::store::StoreError::Open(file, why))
            if why.to_ascii_lowercase().contains("permission denied") =>
        {
            Some(file.parent().unwrap_or(file).to_path_buf())
        }
        _ => None,
    });
    eprintln!("{who}: {err:#}");
    match denied {
        Some(dir) => {
            eprintln!(
                "{who}: this user may not write {}: give another directory with --data-dir DIR (or LPS_BRIDGE_STORE_DIR), or make this user its owner, e.g. sudo mkdir -p {} && sudo chown -R $(id -un) {}",
                dir.display(),
                dir.display(),
                dir.display()
            );
            ExitCode::from(EXIT_CANT_CREATE)
        }
        None => ExitCode::FAILURE,
    }
}

//! EVE's requests, one type per LPS endpoint: a report that also asks for an answer. Each is an
//! [`Input`](super::Input) with the reply its endpoint sends (the transitions are in `reports`).

use super::model::{AppBootReport, AppReport};
use serde_json::Value;

/// `GET local_profile`: answered with the desired profile (`""` = no override).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalProfile;

/// `POST radio`: answered with the radio silence to apply, `None` = 204.
#[derive(Debug, Clone, PartialEq)]
pub struct Radio {
    pub radio_silence: bool,
    pub config_error: String,
    pub report: Value,
}

/// `POST appinfo`: answered with the open app commands (empty = 204).
#[derive(Debug, Clone, PartialEq)]
pub struct AppInfo {
    pub apps: Vec<AppReport>,
}

/// `POST appbootinfo`: answered with the full boot config, `None` = 204.
#[derive(Debug, Clone, PartialEq)]
pub struct AppBootInfo {
    pub apps: Vec<AppBootReport>,
}

/// `POST devinfo`: answered with the one device command to run (timestamp, action), `None` = 204.
#[derive(Debug, Clone, PartialEq)]
pub struct DevInfo {
    pub last_cmd_timestamp: u64,
    pub report: Value,
}

/// `POST network`: answered with the full port config, `None` = 204.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// Logical labels of the LPS ports EVE holds (`local_config.ports`).
    pub local_ports: Vec<String>,
    /// `local_config.error_message`: the whole request was refused.
    pub local_error: String,
    /// Per-port errors EVE reports for ports we asked to change.
    pub port_errors: Vec<(String, String)>,
    pub report: Value,
}

/// `POST location`: nothing to answer beyond 200.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub report: Value,
}

/// `GET signal`: the stream connected (EVE is alive); nothing to answer but the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal;

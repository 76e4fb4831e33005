//! What can happen to the state: operator intents, EVE's requests, and the clock.

use super::model::{
    AppAction, AppBootReport, AppReport, AppTarget, BootChoice, BootEntry, CommandId, DeviceAction,
    NetworkPort,
};
use serde::Serialize;
use serde_json::Value;

/// An operator's wish, from MQTT, REST or a rule; `source` says which.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    SetProfile {
        profile: String,
        /// Take a name outside `[[profiles]]` (one only the controller knows).
        force: bool,
    },
    AppCommand {
        app: String,
        action: AppAction,
    },
    SetBoot {
        app: String,
        choice: BootChoice,
    },
    CancelApp {
        app: String,
    },
    DeviceCommand {
        action: DeviceAction,
    },
    /// `id: None` withdraws every device command EVE has not completed.
    CancelDevice {
        id: Option<CommandId>,
    },
    SetRadio {
        radio_silence: bool,
    },
    /// An empty list reverts to the controller's network config.
    SetNetwork {
        ports: Vec<NetworkPort>,
    },
}

/// A request from EVE: a report that also asks for an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum EveRequest {
    LocalProfile,
    Radio {
        radio_silence: bool,
        config_error: String,
        report: Value,
    },
    AppInfo {
        apps: Vec<AppReport>,
    },
    AppBootInfo {
        apps: Vec<AppBootReport>,
    },
    DevInfo {
        last_cmd_timestamp: u64,
        report: Value,
    },
    Network {
        /// Logical labels of the LPS ports EVE holds (`local_config.ports`).
        local_ports: Vec<String>,
        /// `local_config.error_message`: the whole request was refused.
        local_error: String,
        /// Per-port errors EVE reports for ports we asked to change.
        port_errors: Vec<(String, String)>,
        report: Value,
    },
    Location {
        report: Value,
    },
    /// The signal stream connected (EVE is alive).
    Signal,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Intent {
        intent: Intent,
        source: String,
    },
    Eve(EveRequest),
    /// Periodic: lets timers (EVE offline) fire.
    Tick,
    /// Something that happened outside the state (a rule fired, a subscriber lost messages, the
    /// store turned read-only): changes nothing, and goes out like every state event.
    Announce(super::Event),
}

/// A command as its reply names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CommandRef {
    pub id: CommandId,
    #[serde(serialize_with = "super::model::u64_string::serialize")]
    pub timestamp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelledRef {
    pub id: CommandId,
    #[serde(serialize_with = "super::model::u64_string::serialize")]
    pub timestamp: u64,
    /// EVE got it in a 200 before the cancel, so it may act on it anyway.
    pub may_have_been_received: bool,
}

/// The answer to an accepted intent.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Accepted {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancelled: Vec<CancelledRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One app command as EVE should receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCommandOut {
    pub app: AppTarget,
    pub timestamp: u64,
    pub action: AppAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Accepted(Accepted),
    /// The intent was refused and changed nothing.
    Rejected(super::Refusal),
    Profile(String),
    /// `None` = 204.
    Radio(Option<bool>),
    AppCommands(Vec<AppCommandOut>),
    Boot(Option<Vec<BootEntry>>),
    DevCommand(Option<(u64, DeviceAction)>),
    Network(Option<Vec<NetworkPort>>),
    /// Nothing to say beyond 200 (location, signal, tick).
    Done,
}

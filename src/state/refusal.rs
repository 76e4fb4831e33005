//! Why the state machine refused an intent: one type with the facts as fields and one wording
//! (`Display`, what was wrong and what would be right). Each way in maps it once:
//! `operator::api` to an HTTP status, `command::reply` to the reply JSON; tests match variants.

use super::model::CommandId;
use std::fmt;

/// How many names a refusal lists; it stays short however many EVE reports.
pub const LISTED_NAMES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The app reference was empty.
    NoApp,
    /// No reported app has this name, UUID or topic level.
    UnknownApp {
        /// As given (quoted short when huge).
        app: String,
        /// The first [`LISTED_NAMES`] reported apps, each as `name (uuid[, topic app/level])`.
        known: Vec<String>,
        /// Reported apps beyond `known`.
        more: usize,
    },
    /// Several reported apps have this name.
    AmbiguousApp {
        app: String,
        count: usize,
        /// Their UUIDs (the first [`LISTED_NAMES`]).
        ids: Vec<String>,
    },
    /// `{"cancel":true}` for an app with no command EVE has not completed.
    NothingToCancelApp { app: String },
    /// `{"cancel":true,"id":N}` for a device command that is not open.
    DeviceCommandNotOpen { id: CommandId, open: Vec<CommandId> },
    /// `{"cancel":true}` with no open device command.
    NothingToCancelDevice,
    /// A profile outside `[[profiles]]` (send `"force":true` for one only the controller knows).
    UnknownProfile { profile: String, known: Vec<String> },
    /// A network override naming ports EVE did not report.
    UnknownPorts {
        ports: Vec<String>,
        /// The logical labels EVE reported.
        known: Vec<String>,
    },
}

impl Refusal {
    /// A short stable name of the variant (logs and metrics labels).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NoApp => "no_app",
            Refusal::UnknownApp { .. } => "unknown_app",
            Refusal::AmbiguousApp { .. } => "ambiguous_app",
            Refusal::NothingToCancelApp { .. } | Refusal::NothingToCancelDevice => {
                "nothing_to_cancel"
            }
            Refusal::DeviceCommandNotOpen { .. } => "not_open",
            Refusal::UnknownProfile { .. } => "unknown_profile",
            Refusal::UnknownPorts { .. } => "unknown_port",
        }
    }
}

fn quoted(names: &[String]) -> String {
    let mut list: Vec<String> = names
        .iter()
        .take(LISTED_NAMES)
        .map(|n| format!("'{n}'"))
        .collect();
    if names.len() > LISTED_NAMES {
        list.push(format!("and {} more", names.len() - LISTED_NAMES));
    }
    list.join(", ")
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoApp => write!(f, "an app must be named by display name or UUID"),
            Refusal::UnknownApp { app, known, more } => {
                write!(f, "unknown app '{app}'; ")?;
                if known.is_empty() {
                    return write!(f, "EVE reported no apps");
                }
                write!(f, "known apps: {}", known.join(", "))?;
                if *more > 0 {
                    write!(f, ", and {more} more (GET /api/apps lists them all)")?;
                }
                Ok(())
            }
            Refusal::AmbiguousApp { app, count, ids } => write!(
                f,
                "ambiguous app '{app}': {count} apps have that name; use one of their UUIDs (or the topic levels B/apps lists): {}",
                ids.join(", ")
            ),
            Refusal::NothingToCancelApp { app } => write!(
                f,
                "no command for app '{app}' is waiting for EVE; nothing to cancel"
            ),
            Refusal::DeviceCommandNotOpen { id, open } => write!(
                f,
                "device command {id} is not waiting for EVE; open device commands: {open:?}"
            ),
            Refusal::NothingToCancelDevice => {
                write!(f, "no device command is waiting for EVE; nothing to cancel")
            }
            Refusal::UnknownProfile { profile, known } => write!(
                f,
                "unknown profile '{profile}'; known profiles ([[profiles]]): {}. Send {{\"profile\":\"{profile}\",\"force\":true}} to use a profile only the controller knows",
                quoted(known)
            ),
            Refusal::UnknownPorts { ports, known } => write!(
                f,
                "unknown network port {}: EVE reported the ports {}; use their logical_label",
                quoted(ports),
                quoted(known)
            ),
        }
    }
}

impl std::error::Error for Refusal {}

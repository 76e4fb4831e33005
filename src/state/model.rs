//! Domain types of the gateway core. No protobuf, no I/O: EVE's messages are converted at the edge.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub type CommandId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppAction {
    Restart,
    Purge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceAction {
    Shutdown,
    Poweroff,
    Reboot,
    CollectInfo,
}

/// USB boot order override for one app; `Default` removes the LPS override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootChoice {
    Usb,
    Nousb,
    Default,
}

/// How a command names its app to EVE: both id and display name when known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppTarget {
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub name: String,
}

impl AppTarget {
    /// The key under which one app holds at most one command or boot override.
    pub fn key(&self) -> String {
        if self.id.is_empty() {
            format!("name:{}", self.name)
        } else {
            self.id.to_ascii_lowercase()
        }
    }

    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CommandKind {
    App { app: AppTarget, action: AppAction },
    Device { action: DeviceAction },
}

/// accepted → delivered (EVE got it in a 200) → completed (EVE reported its timestamp);
/// or superseded / cancelled before completion. `stalled` is still open (still served, so it
/// completes if EVE acts on it later) but no longer signalled: EVE received it several times
/// over several polls without reporting it done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Accepted,
    Delivered,
    Stalled,
    Completed,
    Superseded,
    Cancelled,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 6] = [
        Lifecycle::Accepted,
        Lifecycle::Delivered,
        Lifecycle::Stalled,
        Lifecycle::Completed,
        Lifecycle::Superseded,
        Lifecycle::Cancelled,
    ];

    pub fn is_open(self) -> bool {
        matches!(
            self,
            Lifecycle::Accepted | Lifecycle::Delivered | Lifecycle::Stalled
        )
    }

    /// EVE has received it in a 200 and has not reported it done.
    pub fn was_delivered(self) -> bool {
        matches!(self, Lifecycle::Delivered | Lifecycle::Stalled)
    }

    pub fn name(self) -> &'static str {
        match self {
            Lifecycle::Accepted => "accepted",
            Lifecycle::Delivered => "delivered",
            Lifecycle::Stalled => "stalled",
            Lifecycle::Completed => "completed",
            Lifecycle::Superseded => "superseded",
            Lifecycle::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: CommandId,
    /// Unix nanoseconds, unique and strictly increasing across restarts. A JSON string, as in
    /// protobuf's JSON mapping, because JavaScript numbers cannot hold it exactly.
    #[serde(with = "u64_string")]
    pub timestamp: u64,
    #[serde(flatten)]
    pub kind: CommandKind,
    pub lifecycle: Lifecycle,
    /// Where it came from ("mqtt", "rest", a rule name...).
    pub source: String,
    pub accepted_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delivered_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub finished_at_ms: Option<u64>,
    /// How many of EVE's requests were answered with it (for `stalled`).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub deliveries: u32,
    /// Why it is probably stuck, as far as the gateway can see; set with `stalled`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stalled_reason: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A desired setting EVE treats as full state (radio, boot order, network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Serve {
    /// Nothing set by an operator: answer 204.
    #[default]
    Unset,
    /// Answer 200 with the full desired state.
    Set,
    /// Answer 200 with empty state until EVE reports the override is gone, then `Unset`.
    Clearing,
}

/// Whether EVE has taken a desired setting on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "status", content = "error")]
pub enum Outcome {
    #[default]
    Pending,
    Applied,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProfileDesired {
    pub name: String,
    /// EVE fetched this value in a 200. Not that it applied it: EVE reports no profile, and drops
    /// an answer whose token differs from its `profile_server_token`.
    pub fetched: bool,
    pub set_at_ms: u64,
    /// How the last switch ended (`settling`, `settled`, `unsettled` with its details).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RadioDesired {
    pub serve: Serve,
    pub radio_silence: bool,
    pub outcome: Outcome,
    /// Served to EVE at least once; only reports after that can tell the outcome.
    pub delivered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootEntry {
    pub app: AppTarget,
    pub choice: BootChoice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BootDesired {
    pub serve: Serve,
    /// Keyed by `AppTarget::key`.
    pub entries: BTreeMap<String, BootEntry>,
    pub outcome: Outcome,
    pub delivered: bool,
}

/// One port of a local network override: its label and its canonical JSON (EVE's port config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPort {
    pub logical_label: String,
    pub config: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NetworkDesired {
    pub serve: Serve,
    pub ports: Vec<NetworkPort>,
    pub outcome: Outcome,
    pub delivered: bool,
}

/// Everything an operator asked for that is not a one-shot command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Desired {
    pub profile: ProfileDesired,
    pub radio: RadioDesired,
    pub boot: BootDesired,
    pub network: NetworkDesired,
}

/// One app as EVE last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppReport {
    pub id: String,
    pub name: String,
    pub last_cmd_timestamp: u64,
    /// The LocalAppInfo in canonical JSON.
    pub info: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppBootReport {
    pub id: String,
    pub name: String,
    /// `BOOT_ORDER_*` name.
    pub boot_order: String,
    /// `BOOT_ORDER_SOURCE_*` name.
    pub source: String,
}

/// The last report of each kind, as EVE sent it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reports {
    /// Shared with the store's snapshots (a report replaces it whole): a snapshot of a gateway
    /// with thousands of apps does not copy them.
    pub apps: Option<std::sync::Arc<[AppReport]>>,
    /// LocalDevInfo in canonical JSON.
    pub device: Option<Value>,
    pub device_last_cmd_timestamp: u64,
    pub radio: Option<Value>,
    pub boot: Option<Vec<AppBootReport>>,
    pub network: Option<Value>,
    pub location: Option<Value>,
}

/// Whether the store takes writes. Set by the store actor, never by `apply`, never persisted:
/// while `ReadOnly`, intents are refused and EVE is answered from what is on disk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreStatus {
    #[default]
    Writable,
    ReadOnly {
        /// What failed and what the operator can do.
        reason: String,
        /// Unix ms when writes started to be refused.
        since_ms: u64,
    },
}

impl StoreStatus {
    pub fn is_writable(&self) -> bool {
        matches!(self, StoreStatus::Writable)
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            StoreStatus::Writable => None,
            StoreStatus::ReadOnly { reason, .. } => Some(reason),
        }
    }
}

/// What we know of EVE's polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EveLink {
    pub online: bool,
    /// Wall clock of the last request, Unix ms (for display).
    pub last_seen_ms: Option<u64>,
    /// Monotonic ms of the last request (for the offline timer; not persisted meaningfully).
    #[serde(skip)]
    pub last_seen_mono_ms: Option<u64>,
    /// Monotonic ms when `B/eve/state` last carried a fresh `last_seen` (its rate limit).
    #[serde(skip)]
    pub published_mono_ms: Option<u64>,
}

/// The current time as `apply` sees it: wall clock for timestamps, monotonic for timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub unix_ns: u64,
    pub mono_ms: u64,
}

/// Unix milliseconds as RFC 3339 with milliseconds (UTC), the form every JSON time takes.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms),
    )
    .to_string()
}

impl Now {
    pub fn unix_ms(&self) -> u64 {
        self.unix_ns / 1_000_000
    }
}

/// uint64 as a JSON string (protobuf's mapping); reads numbers too.
pub mod u64_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Either {
            Num(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Num(n) => Ok(n),
            Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

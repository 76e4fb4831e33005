//! The observable view of the simulated node (what tests and the CLI read).

use std::collections::BTreeMap;

use serde::Serialize;

use eve_proto::common::BootOrder;
use eve_proto::info::{BootReason, ZDeviceState, ZSwState};
use eve_proto::profile::{BootOrderSource, NetworkPortConfig, NetworkPortStatus};

/// The LPS endpoints EVE talks to (serialized by wire name: `appinfo`, `local_profile`, ...).
pub use eve_proto::Endpoint;

/// Everything the simulator shows about itself.
#[derive(Clone, Debug, Serialize)]
pub struct SimSnapshot {
    pub device_uuid: String,
    pub device_state: ZDeviceState,
    /// Unix seconds of the current boot.
    pub boot_time: i64,
    /// 1 at start, +1 per simulated reboot.
    pub boot_count: u32,
    pub last_boot_reason: BootReason,
    /// `last_cmd_timestamp` reported in devinfo (last triggered device command).
    pub dev_last_cmd_timestamp: u64,
    /// A SHUTDOWN / POWEROFF / REBOOT command took the apps down (until the next boot).
    pub apps_shut_down: bool,
    pub apps: Vec<SimApp>,
    /// Local profile from the LPS ("" = no override).
    pub local_profile: String,
    pub global_profile: String,
    /// Local profile if set, else global: what decides which apps run.
    pub effective_profile: String,
    /// Radio silence actually applied.
    pub radio_silence: bool,
    /// Last desired radio silence from the LPS, if any.
    pub radio_desired: Option<bool>,
    pub radio_change_in_progress: bool,
    pub network: SimNetwork,
    /// Every new command or desired-state change accepted from the LPS, in order.
    pub received: Vec<ReceivedCommand>,
    /// COLLECT_INFO commands published, in order.
    pub collect_info: Vec<CollectInfo>,
    pub endpoints: BTreeMap<Endpoint, EndpointCounters>,
    pub signal: SignalStats,
    /// Last location POSTed.
    pub location: Option<SimLocation>,
    pub location_throttled: bool,
    /// After GRACEFUL_POWEROFF: the node is silent for good.
    pub powered_off: bool,
}

impl SimSnapshot {
    pub fn app(&self, name: &str) -> Option<&SimApp> {
        self.apps.iter().find(|a| a.name == name)
    }

    pub fn counters(&self, ep: Endpoint) -> EndpointCounters {
        self.endpoints.get(&ep).cloned().unwrap_or_default()
    }

    /// Received commands of one endpoint.
    pub fn received_on(&self, ep: Endpoint) -> Vec<&ReceivedCommand> {
        self.received.iter().filter(|r| r.endpoint == ep).collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SimApp {
    pub id: String,
    pub name: String,
    pub state: ZSwState,
    /// Timestamp of the last completed app command (as reported in appinfo).
    pub last_cmd_timestamp: u64,
    pub restart_count: u32,
    pub purge_count: u32,
    /// Effective boot order and its source (as reported in appbootinfo).
    pub boot_order: BootOrder,
    pub boot_source: BootOrderSource,
    pub profiles: Vec<String>,
    /// The last accepted command, if any.
    pub command: Option<SimAppCommand>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SimAppCommand {
    /// `COMMAND_RESTART`, `COMMAND_PURGE`, `COMMAND_UNSPECIFIED` (or a number).
    pub command: String,
    pub timestamp: u64,
    pub completed: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SimNetwork {
    /// Controller ports merged with the applied local changes (`latest_config`).
    pub ports: Vec<NetworkPortConfig>,
    pub port_status: Vec<NetworkPortStatus>,
    /// The stored LPS ports (`local_config.ports`).
    pub local_ports: Vec<NetworkPortConfig>,
    /// `local_config.error_message` of the next POST (cleared like EVE does).
    pub error_message: String,
    /// Last whole-message rejection or token error; never cleared.
    pub last_rejection: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReceivedCommand {
    pub endpoint: Endpoint,
    /// e.g. `COMMAND_RESTART`, `COMMAND_GRACEFUL_REBOOT`, `profile:night`,
    /// `radio_silence:true`, `boot_order:BOOT_ORDER_USB`, `network:2 ports`.
    pub command: String,
    /// App name for app commands and boot orders.
    pub app: Option<String>,
    /// The LPS timestamp (0 for desired-state endpoints).
    pub timestamp: u64,
    /// Simulator wall clock, Unix milliseconds.
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CollectInfo {
    /// The LPS timestamp, read as Unix nanoseconds.
    pub timestamp: u64,
    /// That time in RFC 3339.
    pub time: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointCounters {
    pub requests: u64,
    /// Status code (as text) → count; transport errors count as `"error"`.
    pub statuses: BTreeMap<String, u64>,
    pub token_mismatches: u64,
    /// Responses that were not usable: transport error, bad status, header,
    /// body or token.
    pub failures: u64,
    /// Failures since the last usable response.
    pub consecutive_failures: u64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SignalStats {
    pub connects: u64,
    pub streams_opened: u64,
    pub lines: u64,
    pub malformed: u64,
    pub too_many_endpoints: u64,
    pub rate_limited: u64,
    pub accepted: u64,
    pub too_long: u64,
    /// Accepted signals (endpoint names), newest last; only the last 200 kept.
    pub recent: Vec<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimLocation {
    pub latitude: f64,
    pub longitude: f64,
    pub altitude: f64,
}

//! The one TOML config file: typed sections, defaults, environment overrides for secrets, and
//! validation into errors that name the key. No other module reads the environment.

mod plant;
mod sparkplug;
mod validate;

pub use plant::{
    ActionConfig, ExternalBroker, MqttTls, MqttUser, ProfileSwitchConfig, RuleConfig,
    ScheduleConfig,
};
pub use sparkplug::SparkplugConfig;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use validate::ConfigError;

/// Environment variable that overrides `lps.server_token`.
pub const ENV_SERVER_TOKEN: &str = "LPS_BRIDGE_SERVER_TOKEN";
/// Environment variable that overrides `operator.token`.
pub const ENV_OPERATOR_TOKEN: &str = "LPS_BRIDGE_OPERATOR_TOKEN";
/// Environment variable that overrides `mqtt.external.password`.
pub const ENV_MQTT_PASSWORD: &str = "LPS_BRIDGE_MQTT_PASSWORD";
const REDACTED: &str = "<redacted>";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub lps: LpsConfig,
    pub mqtt: MqttConfig,
    pub operator: OperatorConfig,
    pub store: StoreConfig,
    /// The Sparkplug B edge node (off by default).
    pub sparkplug: SparkplugConfig,
    /// Named profiles offered to operators (free text is accepted too).
    pub profiles: Vec<ProfileEntry>,
    /// Bridge rules (see `bridge-config/`).
    pub rules: Vec<RuleConfig>,
    /// More files of `[[rules]]`, relative to this config file's directory.
    pub rule_files: Vec<PathBuf>,
    /// Profile schedules (cron entries that set a profile or run a rule action).
    pub schedules: Vec<ScheduleConfig>,
    /// How the outcome of a profile switch is judged (`profile_settled` / `profile_unsettled`).
    pub profile_switch: ProfileSwitchConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LpsConfig {
    /// Where EVE polls us. Bind it to the app network instance only: EVE sends no credentials.
    pub listen: String,
    /// Must equal the node's `profile_server_token`; put in every 200 body.
    pub server_token: String,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// Endpoints answered with 404 (EVE throttles them), e.g. `["location"]`.
    pub disabled_endpoints: Vec<String>,
    /// `B/eve/state` turns offline after EVE has been silent this long.
    #[serde(with = "humantime_serde")]
    pub eve_offline_after: Duration,
    /// Signal lines are paced like EVE's limiter (burst, then one per interval) so none are dropped.
    pub signal_burst: u32,
    #[serde(with = "humantime_serde")]
    pub signal_interval: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// The embedded broker's MQTT 3.1.1 listener; empty turns the embedded broker off.
    pub listen: String,
    /// An optional MQTT 5 listener of the embedded broker (empty = none).
    pub listen_v5: String,
    pub base_topic: String,
    pub max_payload_bytes: usize,
    pub max_connections: usize,
    /// How long a new connection may take to send CONNECT before it is closed (it holds a file
    /// descriptor meanwhile). At most 60 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The broker's log per subscription filter, for filters outside `base_topic`: a
    /// subscriber may fall behind by (segment_count - 1) × segment_bytes before it loses
    /// messages; memory per busy filter is up to segment_bytes × segment_count (see the README).
    pub segment_bytes: usize,
    pub segment_count: usize,
    /// The same for filters under `base_topic` (commands to the gateway, replies, state, events).
    pub own_segment_bytes: usize,
    pub own_segment_count: usize,
    /// A plant broker to connect to as well (or instead, with `listen = ""`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalBroker>,
    /// Users of the embedded broker; with none, anonymous clients are allowed from loopback
    /// (and from anywhere with `allow_anonymous`).
    pub users: Vec<MqttUser>,
    /// Let anonymous clients connect from the network too (Mosquitto 2's rule: by default only
    /// loopback clients may connect without a login). Only without `users`.
    pub allow_anonymous: bool,
    /// Tests only, not a config key: judge loopback peers as network ones, so the anonymous
    /// rule can be tested on a machine without another address.
    #[serde(skip)]
    pub test_loopback_is_remote: bool,
    /// An optional TLS listener of the embedded broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<MqttTls>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorConfig {
    /// Dashboard, REST API, SSE, /metrics, /healthz, /readyz. Empty turns it off.
    pub listen: String,
    /// Bearer token for every mutation (or `LPS_BRIDGE_OPERATOR_TOKEN`).
    pub token: String,
    /// Require the token for reads too (state, events, metrics; not /healthz, /readyz).
    pub protect_reads: bool,
    /// Listening on a non-loopback address with no token needs this explicit opt-in.
    pub allow_unauthenticated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// How many finished commands the log keeps for history.
    pub keep_finished_commands: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileEntry {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The apps this profile runs, as EVE's controller has it (a mirror, optional): the
    /// dashboard previews a switch and `profile_settled` says whether the result matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<Vec<String>>,
}

impl Default for LpsConfig {
    fn default() -> Self {
        LpsConfig {
            listen: "0.0.0.0:8888".into(),
            server_token: String::new(),
            max_body_bytes: 1024 * 1024,
            disabled_endpoints: Vec::new(),
            eve_offline_after: Duration::from_secs(150),
            signal_burst: 3,
            signal_interval: Duration::from_secs(3),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            listen: "0.0.0.0:1883".into(),
            listen_v5: String::new(),
            base_topic: "lps/edge".into(),
            max_payload_bytes: 256 * 1024,
            max_connections: 200,
            connect_timeout: Duration::from_secs(10),
            segment_bytes: 4 * 1024 * 1024,
            segment_count: 4,
            own_segment_bytes: 4 * 1024 * 1024,
            own_segment_count: 4,
            external: None,
            users: Vec::new(),
            allow_anonymous: false,
            test_loopback_is_remote: false,
            tls: None,
        }
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            listen: "127.0.0.1:8080".into(),
            token: String::new(),
            protect_reads: false,
            allow_unauthenticated: false,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: PathBuf::from("/var/lib/lps-bridge"),
            keep_finished_commands: 500,
        }
    }
}

/// A file listed in `rule_files`: only `[[rules]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rules: Vec<RuleConfig>,
}

/// The LPS endpoints, as named in `lps.disabled_endpoints`.
pub const LPS_ENDPOINTS: [&str; 8] = [
    "local_profile",
    "radio",
    "appinfo",
    "appbootinfo",
    "devinfo",
    "location",
    "network",
    "signal",
];

/// A validated config with parsed addresses.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub lps_listen: SocketAddr,
    pub mqtt_listen: Option<SocketAddr>,
    pub mqtt_listen_v5: Option<SocketAddr>,
    /// The embedded broker's TLS listener and its files.
    pub mqtt_tls: Option<(SocketAddr, MqttTls)>,
    pub operator_listen: Option<SocketAddr>,
}

impl Config {
    /// Parses TOML text; unknown keys are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Loads a file (and its `rule_files`), or the built-in defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(p) = path else {
            return Ok(Config::default());
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| ConfigError::Read(p.display().to_string(), e.to_string()))
        };
        let mut config = Config::from_toml(&read(p)?)?;
        let base = p.parent().unwrap_or(Path::new("."));
        for file in config.rule_files.clone() {
            let file = base.join(file);
            let extra: RuleFile = toml::from_str(&read(&file)?)
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", file.display())))?;
            config.rules.extend(extra.rules);
        }
        Ok(config)
    }

    /// Applies environment overrides for secrets; `lookup` is `std::env::var` outside tests.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        if let Some(token) = lookup(ENV_SERVER_TOKEN) {
            self.lps.server_token = token;
        }
        if let Some(token) = lookup(ENV_OPERATOR_TOKEN) {
            self.operator.token = token;
        }
        if let (Some(external), Some(password)) =
            (&mut self.mqtt.external, lookup(ENV_MQTT_PASSWORD))
        {
            external.password = Some(password);
        }
    }

    /// The config's own checks (addresses, limits, names); `app::prepare` adds each
    /// subsystem's. Plain data: this module calls no other part of the gateway.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        validate::validate(self)
    }

    /// The config as TOML with secrets replaced, for `print-config`.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.lps.server_token.is_empty() {
            shown.lps.server_token = REDACTED.into();
        }
        if !shown.operator.token.is_empty() {
            shown.operator.token = REDACTED.into();
        }
        if let Some(external) = &mut shown.mqtt.external {
            if external.password.is_some() {
                external.password = Some(REDACTED.into());
            }
        }
        for user in &mut shown.mqtt.users {
            if user.password.is_some() {
                user.password = Some(REDACTED.into());
            }
            if user.password_hash.is_some() {
                user.password_hash = Some(REDACTED.into());
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

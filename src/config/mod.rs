//! The one TOML config file: typed sections, defaults, overrides from the environment (every
//! key, see `env`), and validation into errors that name the key. No other module reads the
//! environment.

pub mod env;
mod plant;
mod show;
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

pub use env::FromEnv;
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
    /// Named profiles offered to operators; when any are set, a profile intent must name one (or force).
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

/// The config file's text; a missing file is said so, with the directory it was looked for in.
fn read_config_file(p: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(p).map_err(|e| {
        let reason = if e.kind() == std::io::ErrorKind::NotFound {
            let cwd = std::env::current_dir().unwrap_or_default();
            match std::path::absolute(p) {
                Ok(abs) if p.is_relative() => format!(
                    "no such file ({}, relative to the working directory {})",
                    abs.display(),
                    cwd.display()
                ),
                _ => "no such file".to_string(),
            }
        } else {
            e.to_string()
        };
        ConfigError::Read(p.display().to_string(), reason)
    })
}

impl Config {
    /// Parses TOML text; unknown keys are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Loads a file (and its `rule_files`), or the built-in defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &[]).map(|(config, _)| config)
    }

    /// Loads a file (or the built-in defaults), applies `vars` (our environment variables, from
    /// [`env::ours`]) over it, then reads `rule_files` (which the environment may set too).
    /// Returns what came from the environment, for `print-config`.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: &[(String, String)],
    ) -> Result<(Config, Vec<FromEnv>), ConfigError> {
        Config::load_layered(path, Config::default(), vars)
    }

    /// [`Config::load_with_env`] with other defaults for when there is no file (the demo's).
    pub fn load_layered(
        path: Option<&Path>,
        defaults: Config,
        vars: &[(String, String)],
    ) -> Result<(Config, Vec<FromEnv>), ConfigError> {
        let config = match path {
            Some(p) => Config::from_toml(&read_config_file(p)?)?,
            None => defaults,
        };
        let (mut config, from_env) = env::apply(config, vars)?;
        config.read_rule_files(path)?;
        Ok((config, from_env))
    }

    /// Appends the `[[rules]]` of each `rule_files` entry, relative to the config file's
    /// directory (the working directory when there is no file).
    fn read_rule_files(&mut self, config_file: Option<&Path>) -> Result<(), ConfigError> {
        let dir = config_file
            .and_then(Path::parent)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        for listed in self.rule_files.clone() {
            let resolved = base.join(&listed);
            let failed = |reason: String| ConfigError::RuleFile {
                listed: listed.display().to_string(),
                base: base.display().to_string(),
                resolved: resolved.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(&resolved).map_err(|e| failed(e.to_string()))?;
            let extra: RuleFile = toml::from_str(&text)
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", resolved.display())))?;
            self.rules.extend(extra.rules);
        }
        Ok(())
    }

    /// Applies the environment variables `lookup` gives for the secrets
    /// (`LPS_BRIDGE_SERVER_TOKEN`, `_OPERATOR_TOKEN`, `_MQTT_PASSWORD`) to a loaded config.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        let vars: Vec<(String, String)> = [ENV_MQTT_PASSWORD, ENV_OPERATOR_TOKEN, ENV_SERVER_TOKEN]
            .into_iter()
            .filter_map(|k| lookup(k).map(|v| (k.to_string(), v)))
            .collect();
        // Text into text keys: nothing here can fail to fit.
        if let Ok((config, _)) = env::apply(self.clone(), &vars) {
            *self = config;
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

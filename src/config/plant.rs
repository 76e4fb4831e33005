//! Config sections for fitting into a plant: bridge rules, an external broker, broker users and
//! TLS. Parsed here; checked by the modules that use them (rules, mqtt).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// One bridge rule: a plant topic and payload condition mapped to an intent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// An MQTT topic filter; `+` and `#` allowed.
    pub topic: String,
    /// Exact text match of the whole payload ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// ... or a JSON pointer into the payload, compared with `equals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// The condition must stay true this long before the rule fires.
    #[serde(default, with = "humantime_serde")]
    pub hold: Duration,
    pub action: ActionConfig,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// What a rule does; the same intents as the command topics. `{1}`, `{2}` … in strings are
/// replaced by what the topic filter's `+` wildcards matched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio_silence: Option<bool>,
}

/// A plant broker the gateway also connects to (`[mqtt.external]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExternalBroker {
    /// `mqtt://host:1883` or `mqtts://host:8883`.
    pub url: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Or `LPS_BRIDGE_MQTT_PASSWORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Trust this CA (PEM) instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for brokers that authenticate by certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(default = "keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Largest packet in and out (rumqttc's default of 10 KiB is too small for app reports).
    #[serde(default = "max_packet")]
    pub max_packet_bytes: usize,
    /// Reconnect backoff starts at 1 s and doubles up to this.
    #[serde(default = "backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
}

fn keep_alive() -> Duration {
    Duration::from_secs(30)
}

fn max_packet() -> usize {
    1024 * 1024
}

fn backoff_max() -> Duration {
    Duration::from_secs(60)
}

/// A user of the embedded broker. Once one is configured, anonymous clients are refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttUser {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// An argon2 PHC string (`$argon2id$...`), so the file holds no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// A TLS listener of the embedded broker (MQTT 3.1.1 over TLS).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    pub listen: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One profile schedule (`[[schedules]]`): a 5-field cron entry in a time zone that sets a
/// profile, or does a bridge-rule action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    /// minute hour day-of-month month day-of-week
    pub cron: String,
    /// An IANA zone name; none = the box's local zone (UTC if it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Shorthand for `action = { profile = "..." }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionConfig>,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

/// `[profile_switch]`: when the apps count as settled after EVE fetched a new profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileSwitchConfig {
    /// No app in a transitional state (BOOTING, HALTING, ...) and no state change for this long.
    #[serde(with = "humantime_serde")]
    pub quiet_period: Duration,
    /// Still not settled this long after EVE fetched the profile: `profile_unsettled`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for ProfileSwitchConfig {
    fn default() -> Self {
        ProfileSwitchConfig {
            quiet_period: Duration::from_secs(30),
            timeout: Duration::from_secs(600),
        }
    }
}

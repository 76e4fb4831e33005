//! Validation of a parsed config on its own terms (addresses, limits, names): every error names
//! the key and says what would be right. What only a subsystem can judge (TLS files, MQTT users,
//! the plant broker's options, rules) is each subsystem's `prepare`; `app::prepare` runs all.

use super::{Config, Settings};
use eve_proto::Endpoint;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(String, String),
    /// A `rule_files` entry that cannot be read: as listed, resolved, and what it is relative to.
    #[error("cannot read rule file {listed} (rule_files are relative to the config file's directory {base}): {resolved}: {reason}")]
    RuleFile {
        listed: String,
        base: String,
        resolved: String,
        reason: String,
    },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("config: {0}")]
    Parse(String),
    #[error("config key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// A listen address: `IP:PORT`, or `HOST:PORT` with a host name resolved now (the first IPv4
/// address it has, else the first address), so start-up binds exactly what was checked.
fn address(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let example = match key {
        "lps.listen" => "0.0.0.0:8888",
        "operator.listen" => "127.0.0.1:8080",
        "mqtt.tls.listen" => "0.0.0.0:8883",
        _ => "0.0.0.0:1883",
    };
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(invalid(
            key,
            format!("'{value}' is not a listen address; expected IP:PORT or HOST:PORT such as {example}"),
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(invalid(
            key,
            format!("'{value}' is not a listen address; expected IP:PORT or HOST:PORT such as {example}"),
        ));
    }
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(value)
        .map_err(|e| {
            invalid(
                key,
                format!("host '{host}' in '{value}' does not resolve: {e}"),
            )
        })?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| {
            invalid(
                key,
                format!("host '{host}' in '{value}' resolves to no address"),
            )
        })
}

fn optional_address(key: &'static str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        address(key, value).map(Some)
    }
}

pub(super) fn validate(config: Config) -> Result<Settings, ConfigError> {
    let lps_listen = address("lps.listen", &config.lps.listen)?;
    let mqtt_listen = optional_address("mqtt.listen", &config.mqtt.listen)?;
    let mqtt_listen_v5 = optional_address("mqtt.listen_v5", &config.mqtt.listen_v5)?;
    let operator_listen = optional_address("operator.listen", &config.operator.listen)?;
    if let Some(addr) = operator_listen {
        if !addr.ip().is_loopback()
            && config.operator.token.is_empty()
            && !config.operator.allow_unauthenticated
        {
            return Err(invalid(
                "operator.listen",
                format!("{addr} is reachable from the network but operator.token is empty: set a token (or LPS_BRIDGE_OPERATOR_TOKEN), or set operator.allow_unauthenticated = true to accept that anyone there can power the node off"),
            ));
        }
    }
    let mqtt_tls = match &config.mqtt.tls {
        Some(tls) => Some((address("mqtt.tls.listen", &tls.listen)?, tls.clone())),
        None => None,
    };
    let switch = &config.profile_switch;
    if switch.quiet_period.is_zero() || switch.timeout <= switch.quiet_period {
        return Err(invalid(
            "profile_switch",
            "quiet_period must be longer than 0s and timeout longer than quiet_period, e.g. quiet_period = \"30s\", timeout = \"10m\"",
        ));
    }

    for name in &config.lps.disabled_endpoints {
        if Endpoint::from_name(name).is_none() {
            let known: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
            return Err(invalid(
                "lps.disabled_endpoints",
                format!("unknown endpoint '{name}'; known: {}", known.join(", ")),
            ));
        }
    }
    if config.lps.max_body_bytes < 1024 {
        return Err(invalid("lps.max_body_bytes", "must be at least 1024"));
    }
    if config.lps.signal_burst == 0 {
        return Err(invalid("lps.signal_burst", "must be at least 1"));
    }
    if config.lps.eve_offline_after.is_zero() {
        return Err(invalid("lps.eve_offline_after", "must be longer than 0s"));
    }
    let base = &config.mqtt.base_topic;
    if base.is_empty()
        || base.starts_with('/')
        || base.ends_with('/')
        || base.contains(['+', '#'])
        || base.split('/').any(str::is_empty)
    {
        return Err(invalid(
            "mqtt.base_topic",
            format!("'{base}' must be non-empty topic levels without wildcards or empty levels, e.g. lps/edge"),
        ));
    }
    for (key, bytes, count) in [
        (
            "mqtt.segment_bytes",
            config.mqtt.segment_bytes,
            config.mqtt.segment_count,
        ),
        (
            "mqtt.own_segment_bytes",
            config.mqtt.own_segment_bytes,
            config.mqtt.own_segment_count,
        ),
    ] {
        // rumqttd panics below 1 KiB; one segment would leave no backlog at all.
        if bytes < 64 * 1024 || count < 2 {
            return Err(invalid(
                key,
                format!("{bytes} bytes x {count} segments: segments must be at least 64 KiB (65536) and the count at least 2 (a subscriber may fall behind by (count - 1) x bytes)"),
            ));
        }
    }
    if config.mqtt.connect_timeout < std::time::Duration::from_millis(100)
        || config.mqtt.connect_timeout > std::time::Duration::from_secs(60)
    {
        return Err(invalid(
            "mqtt.connect_timeout",
            "must be between 100ms and 60s, e.g. \"10s\"",
        ));
    }
    if config.mqtt.max_connections == 0 {
        return Err(invalid("mqtt.max_connections", "must be at least 1"));
    }
    if config.store.dir.as_os_str().is_empty() {
        return Err(invalid("store.dir", "must be a directory path"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &config.profiles {
        if p.name.trim().is_empty() || !seen.insert(p.name.clone()) {
            return Err(invalid(
                "profiles",
                format!("profile names must be non-empty and unique ('{}')", p.name),
            ));
        }
    }
    check_named_profiles(&config)?;
    config
        .sparkplug
        .check(mqtt_listen.is_some(), config.mqtt.external.is_some())?;
    Ok(Settings {
        config,
        lps_listen,
        mqtt_listen,
        mqtt_listen_v5,
        mqtt_tls,
        operator_listen,
    })
}

/// With `[[profiles]]` configured, a schedule or rule that sets a profile must name one of them:
/// the state machine would refuse it at every firing. (A rule's `{N}` placeholder is filled at
/// firing time and checked then.)
fn check_named_profiles(config: &Config) -> Result<(), ConfigError> {
    if config.profiles.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = config.profiles.iter().map(|p| p.name.as_str()).collect();
    let unknown = |name: &str| !name.is_empty() && !name.contains('{') && !known.contains(&name);
    let listed = || format!("known profiles ([[profiles]]): {}", known.join(", "));
    for s in &config.schedules {
        let named = s
            .profile
            .as_deref()
            .or(s.action.as_ref().and_then(|a| a.profile.as_deref()));
        if let Some(name) = named.filter(|n| unknown(n)) {
            return Err(invalid(
                "schedules",
                format!(
                    "schedule '{}': unknown profile '{name}'; {}",
                    s.name,
                    listed()
                ),
            ));
        }
    }
    for r in &config.rules {
        if let Some(name) = r.action.profile.as_deref().filter(|n| unknown(n)) {
            return Err(invalid(
                "rules",
                format!("rule '{}': unknown profile '{name}'; {}", r.name, listed()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Config::default().validate().unwrap();
        assert_eq!(s.lps_listen.port(), 8888);
        assert_eq!(s.mqtt_listen.unwrap().port(), 1883);
        assert_eq!(s.operator_listen.unwrap().port(), 8080);
    }

    #[test]
    fn remote_operator_listen_needs_token_or_opt_in() {
        let c = Config::from_toml("[operator]\nlisten = \"0.0.0.0:8080\"\n").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("operator.token"));
        let c =
            Config::from_toml("[operator]\nlisten = \"0.0.0.0:8080\"\ntoken = \"t\"\n").unwrap();
        assert!(c.validate().is_ok());
        let c = Config::from_toml(
            "[operator]\nlisten = \"0.0.0.0:8080\"\nallow_unauthenticated = true\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[lps]\nlisten = \"0.0.0.0:8888\"\nlistne = 1\n").unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
        let err = Config::from_toml("[mqttt]\n").unwrap_err();
        assert!(err.to_string().contains("mqttt"), "{err}");
    }

    #[test]
    fn bad_address_is_named() {
        let c = Config::from_toml("[mqtt]\nlisten = \"localhost\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("mqtt.listen") && err.contains("localhost"),
            "{err}"
        );
        // Each key's example is its own port.
        let c = Config::from_toml("[lps]\nlisten = \"8888\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("such as 0.0.0.0:8888"), "{err}");
    }

    #[test]
    fn host_names_resolve_and_an_unknown_host_is_named() {
        let c = Config::from_toml("[mqtt]\nlisten = \"localhost:1883\"\n").unwrap();
        let s = c.validate().unwrap();
        assert!(s.mqtt_listen.unwrap().ip().is_loopback());
        assert_eq!(s.mqtt_listen.unwrap().port(), 1883);
        let c = Config::from_toml("[lps]\nlisten = \"no-such-host.invalid:8888\"\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("lps.listen")
                && err.contains("'no-such-host.invalid'")
                && err.contains("does not resolve"),
            "{err}"
        );
    }

    #[test]
    fn empty_mqtt_listen_turns_broker_off() {
        let c = Config::from_toml("[mqtt]\nlisten = \"\"\n").unwrap();
        assert!(c.validate().unwrap().mqtt_listen.is_none());
    }

    #[test]
    fn env_overrides_token_and_print_redacts_it() {
        let mut c = Config::from_toml("[lps]\nserver_token = \"file\"\n").unwrap();
        c.apply_env(|k| (k == super::super::ENV_SERVER_TOKEN).then(|| "from-env".to_string()));
        assert_eq!(c.lps.server_token, "from-env");
        let shown = c.to_redacted_toml();
        assert!(
            !shown.contains("from-env") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn durations_parse_and_unknown_endpoint_rejected() {
        let c = Config::from_toml("[lps]\neve_offline_after = \"2m\"\n").unwrap();
        assert_eq!(c.lps.eve_offline_after.as_secs(), 120);
        let c = Config::from_toml("[lps]\ndisabled_endpoints = [\"nope\"]\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn schedules_and_profile_switch_are_checked_and_printed() {
        let text = "[profile_switch]\nquiet_period = \"5s\"\ntimeout = \"1m\"\n\n[[profiles]]\nname = \"night\"\napps = [\"gpu-trainer\"]\n\n[[schedules]]\nname = \"night shift\"\ncron = \"0 22 * * 1-5\"\ntimezone = \"Europe/Berlin\"\nprofile = \"night\"\n";
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c.profile_switch.quiet_period.as_secs(), 5);
        assert_eq!(
            c.profiles[0].apps.as_deref(),
            Some(&["gpu-trainer".to_string()][..])
        );
        let shown = c.to_redacted_toml();
        assert!(
            shown.contains("[[schedules]]")
                && shown.contains("[profile_switch]")
                && shown.contains("apps = ["),
            "{shown}"
        );
        c.validate().unwrap();
        let err = Config::from_toml(
            "[[schedules]]\nname = \"x\"\ncron = \"0 22 * * 1-5\"\nprofile = \"n\"\nprofiel = 1\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("profiel"), "{err}");
        let err =
            Config::from_toml(&text.replace("profile = \"night\"\n", "profile = \"nigth\"\n"))
                .unwrap()
                .validate()
                .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key: "schedules", reason } if reason.contains("unknown profile 'nigth'") && reason.contains("night")),
            "{err}"
        );
        let rule =
            "\n[[rules]]\nname = \"r\"\ntopic = \"plant/+\"\naction = { profile = \"nigth\" }\n";
        let err = Config::from_toml(&format!("{text}{rule}"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key: "rules", .. }),
            "{err}"
        );
        let templated = rule.replace("nigth", "{1}");
        Config::from_toml(&format!("{text}{templated}"))
            .unwrap()
            .validate()
            .expect("a placeholder is checked when the rule fires");
        let c = Config::from_toml("[profile_switch]\nquiet_period = \"1m\"\ntimeout = \"30s\"\n")
            .unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("profile_switch"));
    }
}

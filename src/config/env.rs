//! Config from the environment (how EVE deploys an app): `LPS_BRIDGE_<SECTION>_<KEY>` for every
//! key, e.g. `LPS_BRIDGE_MQTT_LISTEN`, `LPS_BRIDGE_MQTT_EXTERNAL_URL`. The keys are found by
//! asking the config's own serde shape (its unknown-field errors list each table's fields), so a
//! key added to a section later is settable with no list to edit here.

use super::{Config, ConfigError};
use std::ffi::OsString;

/// What every variable of ours starts with.
pub const PREFIX: &str = "LPS_BRIDGE_";

/// Older names kept working: (variable, key path).
const ALIASES: [(&str, &[&str]); 2] = [
    (super::ENV_SERVER_TOKEN, &["lps", "server_token"]),
    (super::ENV_MQTT_PASSWORD, &["mqtt", "external", "password"]),
];

/// Our variables that are no config key: the reliability suite's binary path
/// (examples/reliability), inherited by the gateway it starts.
const NOT_CONFIG: [&str; 1] = ["LPS_BRIDGE_BIN"];

/// A field name no config table has, to make serde list the ones it has.
const PROBE: &str = "lps_bridge_probe";

/// One config value that came from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct FromEnv {
    pub var: String,
    /// The key's path, e.g. `["mqtt", "external", "url"]`.
    pub path: Vec<String>,
}

impl FromEnv {
    /// The dotted key, e.g. `mqtt.external.url`.
    pub fn key(&self) -> String {
        self.path.join(".")
    }
}

/// Our variables out of the process environment (`std::env::vars_os()`), sorted by name; a
/// name or value that is not UTF-8 is an error naming it.
pub fn ours(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut found = Vec::new();
    for (name, value) in vars {
        let shown = name.to_string_lossy().into_owned();
        if !shown.starts_with(PREFIX) || NOT_CONFIG.contains(&shown.as_str()) {
            continue;
        }
        let (Ok(name), Ok(value)) = (name.into_string(), value.into_string()) else {
            return Err(ConfigError::Env {
                var: shown,
                reason: "is not valid UTF-8".into(),
            });
        };
        found.push((name, value));
    }
    found.sort();
    Ok(found)
}

/// `config` with `vars` (from [`ours`]) applied; returns what each variable set.
pub fn apply(
    config: Config,
    vars: &[(String, String)],
) -> Result<(Config, Vec<FromEnv>), ConfigError> {
    if vars.is_empty() {
        return Ok((config, Vec::new()));
    }
    let mut table =
        toml::Table::try_from(&config).map_err(|e| ConfigError::Parse(e.to_string()))?;
    let mut applied: Vec<FromEnv> = Vec::new();
    for (var, raw) in vars {
        let path = path_of(var)?;
        // The old password variable only ever filled in a configured plant broker.
        if var == super::ENV_MQTT_PASSWORD && lookup(&table, &path[..2]).is_none() {
            continue;
        }
        if let Some(other) = applied.iter().find(|a| a.path == path) {
            return Err(ConfigError::Env {
                var: var.clone(),
                reason: format!(
                    "sets {} like {}: set only one of them",
                    path.join("."),
                    other.var
                ),
            });
        }
        let value = value_for(&path, raw).map_err(|reason| ConfigError::Env {
            var: var.clone(),
            reason,
        })?;
        insert(&mut table, &path, value);
        applied.push(FromEnv {
            var: var.clone(),
            path,
        });
    }
    let config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            let vars: Vec<&str> = applied.iter().map(|a| a.var.as_str()).collect();
            ConfigError::Parse(format!(
                "{} (with {} from the environment)",
                e.message().trim_end(),
                vars.join(", ")
            ))
        })?;
    Ok((config, applied))
}

/// The key path a variable names, or an error naming the closest variable there is.
pub fn path_of(var: &str) -> Result<Vec<String>, ConfigError> {
    if let Some((_, path)) = ALIASES.iter().find(|(name, _)| *name == var) {
        return Ok(path.iter().map(|s| s.to_string()).collect());
    }
    let rest = var.strip_prefix(PREFIX).unwrap_or(var).to_ascii_lowercase();
    if let Some(path) = resolve(&rest, &[]) {
        return Ok(path);
    }
    let closest = all_vars()
        .into_iter()
        .min_by_key(|(name, _)| strsim::levenshtein(name, var));
    let hint = match closest {
        Some((name, key)) => format!("; did you mean {name} ({key})?"),
        None => String::new(),
    };
    Err(ConfigError::Env {
        var: var.into(),
        reason: format!("names no config key{hint}"),
    })
}

/// Every variable there is and its dotted key (tables included: a whole table can be given).
pub fn all_vars() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ALIASES
        .iter()
        .map(|(name, path)| (name.to_string(), path.join(".")))
        .collect();
    let mut stack: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = stack.pop() {
        for field in fields(&path).unwrap_or_default() {
            let mut child = path.clone();
            child.push(field);
            out.push((
                format!("{PREFIX}{}", child.join("_").to_ascii_uppercase()),
                child.join("."),
            ));
            stack.push(child);
        }
    }
    out
}

/// Splits `rest` (lower case, `_`-joined) into a key path, trying longer field names first
/// (`listen_v5` before `listen`) and backing off when the remainder names nothing.
fn resolve(rest: &str, prefix: &[String]) -> Option<Vec<String>> {
    let mut fields = fields(prefix)?;
    fields.sort_by_key(|f| std::cmp::Reverse(f.len()));
    for field in fields {
        let mut path = prefix.to_vec();
        path.push(field.clone());
        if rest == field {
            return Some(path);
        }
        if let Some(tail) = rest
            .strip_prefix(field.as_str())
            .and_then(|t| t.strip_prefix('_'))
        {
            if let Some(found) = resolve(tail, &path) {
                return Some(found);
            }
        }
    }
    None
}

/// The field names of the table at `path`, or `None` when the value there is not a table.
fn fields(path: &[String]) -> Option<Vec<String>> {
    let mut probe = path.to_vec();
    probe.push(PROBE.into());
    let err = nested(&probe, toml::Value::Integer(0))
        .try_into::<Config>()
        .err()?;
    // serde: "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
    let listed = err
        .message()
        .split_once(&format!("unknown field `{PROBE}`"))?
        .1
        .to_string();
    Some(
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// The value for `path`: the text as a string where the key takes one, else the text read as
/// a TOML value (numbers, booleans, arrays, inline tables) or as JSON.
fn value_for(path: &[String], raw: &str) -> Result<toml::Value, String> {
    let key = path.join(".");
    let text = toml::Value::String(raw.into());
    let as_text = fits(path, text.clone());
    if as_text.is_ok() {
        return Ok(text);
    }
    let Some(parsed) = parse_value(raw) else {
        return Err(format!(
            "'{raw}' is not a value for {key}: {}; give numbers and booleans as they are, arrays and tables as a TOML or JSON value, e.g. '[{{name=\"plc\", password=\"...\"}}]'",
            as_text.unwrap_err()
        ));
    };
    fits(path, parsed.clone()).map_err(|e| format!("'{raw}' is not a value for {key}: {e}"))?;
    Ok(parsed)
}

/// Whether `value` deserializes at `path` (what a sibling would have to add does not count).
fn fits(path: &[String], value: toml::Value) -> Result<(), String> {
    match nested(path, value).try_into::<Config>() {
        Ok(_) => Ok(()),
        Err(e) if e.message().contains("missing field") => Ok(()),
        Err(e) => Err(e.message().trim_end().to_string()),
    }
}

/// A TOML value (`x = <raw>`), else JSON.
fn parse_value(raw: &str) -> Option<toml::Value> {
    if let Ok(mut t) = format!("x = {raw}").parse::<toml::Table>() {
        return t.remove("x");
    }
    let json: serde_json::Value = serde_json::from_str(raw).ok()?;
    toml::Value::try_from(json).ok()
}

fn nested(path: &[String], value: toml::Value) -> toml::Value {
    path.iter().rev().fold(value, |inner, key| {
        toml::Value::Table(toml::Table::from_iter([(key.clone(), inner)]))
    })
}

fn lookup<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let value = table.get(first)?;
    if rest.is_empty() {
        return Some(value);
    }
    lookup(value.as_table()?, rest)
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = table;
    for key in parents {
        let entry = here
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else {
            return;
        };
        here = inner;
    }
    here.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn with(list: &[(&str, &str)]) -> Result<(Config, Vec<FromEnv>), ConfigError> {
        apply(Config::default(), &vars(list))
    }

    #[test]
    fn names_map_to_keys_through_the_config_shape() {
        let path = |v: &str| path_of(v).unwrap().join(".");
        assert_eq!(path("LPS_BRIDGE_MQTT_LISTEN"), "mqtt.listen");
        assert_eq!(path("LPS_BRIDGE_MQTT_LISTEN_V5"), "mqtt.listen_v5");
        assert_eq!(path("LPS_BRIDGE_STORE_DIR"), "store.dir");
        assert_eq!(path("LPS_BRIDGE_MQTT_EXTERNAL_URL"), "mqtt.external.url");
        assert_eq!(path("LPS_BRIDGE_MQTT_TLS_CERT_FILE"), "mqtt.tls.cert_file");
        assert_eq!(
            path("LPS_BRIDGE_PROFILE_SWITCH_QUIET_PERIOD"),
            "profile_switch.quiet_period"
        );
        assert_eq!(path("LPS_BRIDGE_RULE_FILES"), "rule_files");
        assert_eq!(path("LPS_BRIDGE_SERVER_TOKEN"), "lps.server_token");
        assert_eq!(path("LPS_BRIDGE_OPERATOR_TOKEN"), "operator.token");
        assert_eq!(path("LPS_BRIDGE_MQTT_PASSWORD"), "mqtt.external.password");
        let all = all_vars();
        assert!(all
            .iter()
            .any(|(v, k)| v == "LPS_BRIDGE_SPARKPLUG_ENABLED" && k == "sparkplug.enabled"));
    }

    #[test]
    fn unknown_variable_names_the_closest_key() {
        let err = with(&[("LPS_BRIDGE_MQTT_LISTN", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LPS_BRIDGE_MQTT_LISTN")
                && err.contains("LPS_BRIDGE_MQTT_LISTEN (mqtt.listen)"),
            "{err}"
        );
        let err = with(&[("LPS_BRIDGE_STORAGE_DIR", "/x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LPS_BRIDGE_STORE_DIR"), "{err}");
    }

    #[test]
    fn values_take_the_keys_type() {
        let (c, set) = with(&[
            ("LPS_BRIDGE_MQTT_LISTEN", "127.0.0.1:1999"),
            ("LPS_BRIDGE_MQTT_MAX_CONNECTIONS", "7"),
            ("LPS_BRIDGE_OPERATOR_PROTECT_READS", "true"),
            ("LPS_BRIDGE_LPS_EVE_OFFLINE_AFTER", "2m"),
            ("LPS_BRIDGE_LPS_SERVER_TOKEN", "12345"),
            ("LPS_BRIDGE_LPS_DISABLED_ENDPOINTS", r#"["location"]"#),
            ("LPS_BRIDGE_STORE_DIR", "/tmp/d"),
        ])
        .unwrap();
        assert_eq!(c.mqtt.listen, "127.0.0.1:1999");
        assert_eq!(c.mqtt.max_connections, 7);
        assert!(c.operator.protect_reads);
        assert_eq!(c.lps.eve_offline_after.as_secs(), 120);
        assert_eq!(c.lps.server_token, "12345", "a digit-only token stays text");
        assert_eq!(c.lps.disabled_endpoints, ["location"]);
        assert_eq!(c.store.dir, std::path::PathBuf::from("/tmp/d"));
        assert_eq!(set.len(), 7);
        assert_eq!(set[0].key(), "mqtt.listen");
        // Not a number: the error names the variable, the key and the value.
        let err = with(&[("LPS_BRIDGE_MQTT_MAX_CONNECTIONS", "many")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LPS_BRIDGE_MQTT_MAX_CONNECTIONS")
                && err.contains("mqtt.max_connections")
                && err.contains("'many'"),
            "{err}"
        );
    }

    #[test]
    fn arrays_and_tables_as_toml_or_json() {
        let (c, _) = with(&[
            (
                "LPS_BRIDGE_MQTT_USERS",
                r#"[{name="plc", password="pw"}, {name="scada", password="pw2"}]"#,
            ),
            (
                "LPS_BRIDGE_PROFILES",
                r#"[{"name":"day"},{"name":"night"}]"#,
            ),
        ])
        .unwrap();
        assert_eq!(c.mqtt.users.len(), 2);
        assert_eq!(c.mqtt.users[1].name, "scada");
        assert_eq!(c.profiles[1].name, "night");
        // Field by field into an optional table, which then needs its required keys.
        let (c, _) = with(&[
            ("LPS_BRIDGE_MQTT_EXTERNAL_URL", "mqtt://plant:1883"),
            ("LPS_BRIDGE_MQTT_EXTERNAL_CLIENT_ID", "gw"),
            ("LPS_BRIDGE_MQTT_PASSWORD", "secret"),
        ])
        .unwrap();
        let ext = c.mqtt.external.unwrap();
        assert_eq!(
            (ext.url.as_str(), ext.client_id.as_str()),
            ("mqtt://plant:1883", "gw")
        );
        assert_eq!(ext.password.as_deref(), Some("secret"));
        let err = with(&[("LPS_BRIDGE_MQTT_EXTERNAL_URL", "mqtt://plant:1883")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client_id") && err.contains("LPS_BRIDGE_MQTT_EXTERNAL_URL"),
            "{err}"
        );
        let err = with(&[("LPS_BRIDGE_MQTT_USERS", "plc")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mqtt.users") && err.contains("TOML or JSON"),
            "{err}"
        );
    }

    #[test]
    fn old_variables_keep_their_meaning() {
        // The password variable fills in a configured plant broker only, as it always did.
        let (c, set) = with(&[("LPS_BRIDGE_MQTT_PASSWORD", "secret")]).unwrap();
        assert!(c.mqtt.external.is_none() && set.is_empty());
        let (c, _) = with(&[
            ("LPS_BRIDGE_SERVER_TOKEN", "s"),
            ("LPS_BRIDGE_OPERATOR_TOKEN", "o"),
        ])
        .unwrap();
        assert_eq!(
            (c.lps.server_token.as_str(), c.operator.token.as_str()),
            ("s", "o")
        );
        let err = with(&[
            ("LPS_BRIDGE_LPS_SERVER_TOKEN", "a"),
            ("LPS_BRIDGE_SERVER_TOKEN", "b"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("set only one"), "{err}");
    }

    #[test]
    fn only_our_prefix_is_read() {
        let got = ours([
            (OsString::from("PATH"), OsString::from("/bin")),
            (OsString::from("LPS_BRIDGE_STORE_DIR"), OsString::from("/d")),
            (OsString::from("LPS_BRIDGE_BIN"), OsString::from("/bin/x")),
        ])
        .unwrap();
        assert_eq!(got, vars(&[("LPS_BRIDGE_STORE_DIR", "/d")]));
    }
}

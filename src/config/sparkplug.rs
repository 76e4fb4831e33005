//! `[sparkplug]`: the Sparkplug B edge node (src/sparkplug). Parsed and checked here.

use super::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SparkplugConfig {
    pub enabled: bool,
    pub group_id: String,
    /// Empty: EVE's device UUID once known, else the host name.
    pub edge_node_id: String,
    /// Empty: births at once. Else births wait for `spBv1.0/STATE/<id>` online.
    pub primary_host_id: String,
    /// Which broker the edge node connects to: `auto` (the external one when `[mqtt.external]`
    /// is set, else the embedded one), `embedded` or `external`.
    pub broker: String,
}

impl Default for SparkplugConfig {
    fn default() -> Self {
        SparkplugConfig {
            enabled: false,
            group_id: "lps-bridge".into(),
            edge_node_id: String::new(),
            primary_host_id: String::new(),
            broker: "auto".into(),
        }
    }
}

/// Sparkplug ids are UTF-8 topic levels without `/`, `+` or `#`.
fn check_id(key: &'static str, id: &str, required: bool) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { key, reason };
    if id.is_empty() {
        return if required {
            Err(invalid("must not be empty".into()))
        } else {
            Ok(())
        };
    }
    if let Some(c) = id
        .chars()
        .find(|c| matches!(c, '/' | '+' | '#') || c.is_control())
    {
        return Err(invalid(format!(
            "'{id}' contains {c:?}; Sparkplug ids may not contain '/', '+', '#' or control characters"
        )));
    }
    Ok(())
}

impl SparkplugConfig {
    /// Checks the keys against the rest of the config: the broker it names must exist.
    pub fn check(&self, embedded: bool, external: bool) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        check_id("sparkplug.group_id", &self.group_id, true)?;
        check_id("sparkplug.edge_node_id", &self.edge_node_id, false)?;
        check_id("sparkplug.primary_host_id", &self.primary_host_id, false)?;
        let invalid = |reason: &str| ConfigError::Invalid {
            key: "sparkplug.broker",
            reason: reason.into(),
        };
        match self.broker.as_str() {
            "auto" if !embedded && !external => Err(invalid(
                "no broker to connect to: mqtt.listen is empty and [mqtt.external] is not set",
            )),
            "embedded" if !embedded => Err(invalid(
                "is 'embedded' but mqtt.listen is empty (the embedded broker is off)",
            )),
            "external" if !external => Err(invalid("is 'external' but [mqtt.external] is not set")),
            "auto" | "embedded" | "external" => Ok(()),
            other => Err(invalid(&format!(
                "'{other}' is not one of auto, embedded, external"
            ))),
        }
    }

    /// Whether the edge node uses `[mqtt.external]` (else the embedded broker).
    pub fn uses_external(&self, external: bool) -> bool {
        match self.broker.as_str() {
            "external" => true,
            "embedded" => false,
            _ => external,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_broker_are_checked() {
        let mut c = SparkplugConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(c.check(true, false).is_ok());
        c.group_id = "a/b".into();
        let err = c.check(true, false).unwrap_err().to_string();
        assert!(
            err.contains("sparkplug.group_id") && err.contains("'/'"),
            "{err}"
        );
        c.group_id = "plant1".into();
        c.edge_node_id = "node+7".into();
        assert!(c.check(true, false).is_err());
        c.edge_node_id = String::new();
        c.broker = "external".into();
        assert!(c
            .check(true, false)
            .unwrap_err()
            .to_string()
            .contains("[mqtt.external]"));
        c.broker = "nope".into();
        assert!(c.check(true, true).is_err());
        c.broker = "auto".into();
        assert!(c.check(false, false).is_err());
        assert!(c.uses_external(true) && !c.uses_external(false));
    }
}

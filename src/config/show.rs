//! `print-config`'s rendering: the effective config as TOML, secrets redacted, each value that
//! came from the environment marked with a comment naming its variable.

use super::{Config, FromEnv};

impl Config {
    /// [`Config::to_redacted_toml`] with `# from LPS_BRIDGE_…` after each value `from_env` set.
    pub fn to_marked_toml(&self, from_env: &[FromEnv]) -> String {
        let text = self.to_redacted_toml();
        if from_env.is_empty() {
            return text;
        }
        let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
            return text;
        };
        let mut unmarked = Vec::new();
        for set in from_env {
            if !mark(
                doc.as_item_mut(),
                &set.path,
                &format!("  # from {}", set.var),
            ) {
                // Not in the output (e.g. a table left empty): still say it was set.
                unmarked.push(format!("# {} from {}\n", set.key(), set.var));
            }
        }
        format!(
            "# Values marked `# from LPS_BRIDGE_...` come from the environment.\n{}{doc}",
            unmarked.concat()
        )
    }
}

/// Puts `comment` after the value (or table header) at `path`; false if there is none.
fn mark(item: &mut toml_edit::Item, path: &[String], comment: &str) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let Some(child) = item.get_mut(first.as_str()) else {
        return false;
    };
    if !rest.is_empty() {
        return mark(child, rest, comment);
    }
    match child {
        toml_edit::Item::Value(value) => value.decor_mut().set_suffix(comment),
        toml_edit::Item::Table(table) => table.decor_mut().set_suffix(comment),
        toml_edit::Item::ArrayOfTables(tables) => {
            for table in tables.iter_mut() {
                table.decor_mut().set_suffix(comment);
            }
        }
        toml_edit::Item::None => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_the_environment_are_marked_and_secrets_stay_redacted() {
        let vars: Vec<(String, String)> = [
            ("LPS_BRIDGE_MQTT_LISTEN", "127.0.0.1:1999"),
            (
                "LPS_BRIDGE_MQTT_USERS",
                r#"[{name="plc", password="pw-secret"}]"#,
            ),
            ("LPS_BRIDGE_SERVER_TOKEN", "tok-secret"),
            ("LPS_BRIDGE_LPS_DISABLED_ENDPOINTS", r#"["location"]"#),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (config, from_env) = super::super::env::apply(Config::default(), &vars).unwrap();
        let shown = config.to_marked_toml(&from_env);
        assert!(!shown.contains("secret"), "{shown}");
        let line = |key: &str| {
            shown
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("no {key} in {shown}"))
                .to_string()
        };
        assert!(line("listen = \"127.0.0.1:1999\"").ends_with("# from LPS_BRIDGE_MQTT_LISTEN"));
        assert!(line("server_token").ends_with("# from LPS_BRIDGE_SERVER_TOKEN"));
        assert!(line("disabled_endpoints").contains("# from LPS_BRIDGE_LPS_DISABLED_ENDPOINTS"));
        assert!(line("[[mqtt.users]]").ends_with("# from LPS_BRIDGE_MQTT_USERS"));
        assert!(!line("base_topic").contains("# from"));
        // Still TOML, and the same config.
        let again = Config::from_toml(&shown).unwrap();
        assert_eq!(again.mqtt.listen, "127.0.0.1:1999");
    }
}

//! A rule's action: checked once at compile time through the command parsers (so a bad value is
//! worded exactly as a command reply would word it), then turned into an intent at each firing,
//! with `{1}`, `{2}` … replaced by what the topic filter's `+` wildcards matched.

use crate::command::{self, Target};
use crate::config::ActionConfig;
use crate::state::{AppAction, BootChoice, DeviceAction, Intent};
use serde_json::{json, Value};

/// A string that may hold `{N}` placeholders (N ≥ 1: the N-th `+` capture).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Capture(usize),
}

impl Template {
    /// Parses `text`; `{N}` with N from 1 to `wildcards`. Braces around anything but digits are
    /// kept as text.
    pub fn parse(text: &str, wildcards: usize, filter: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || !after[digits..].starts_with('}') {
                literal.push_str(&rest[..=open]);
                rest = after;
                continue;
            }
            literal.push_str(&rest[..open]);
            let n: usize = after[..digits].parse().unwrap_or(usize::MAX);
            if n == 0 {
                return Err(format!(
                    "'{text}': placeholders count from {{1}} (the first '+' of the topic filter)"
                ));
            }
            if n > wildcards {
                return Err(format!(
                    "'{text}' uses {{{n}}} but the topic filter '{filter}' has {wildcards} '+' wildcard(s)"
                ));
            }
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Capture(n));
            rest = &after[digits + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Fills in the captures (`captures[0]` is `{1}`).
    pub fn render(&self, captures: &[String]) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                Part::Capture(n) => captures.get(n - 1).map(String::as_str).unwrap_or(""),
            })
            .collect()
    }
}

/// A checked action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Profile(Template),
    App { app: Template, action: AppAction },
    Boot { app: Template, choice: BootChoice },
    Device(DeviceAction),
    Radio(bool),
}

const KINDS: &str = r#"{ profile = "night" }, { app = "vision", command = "restart" }, { app = "vision", boot = "usb" }, { device = "poweroff" } or { radio_silence = true }"#;

/// Runs a command payload through the shared parser, as the command topics would.
fn parse_command(target: Target, payload: Value) -> Result<Intent, String> {
    command::parse(&target, payload.to_string().as_bytes())
        .intent
        .map_err(|e| e.to_string())
}

impl Action {
    /// Checks an action against its topic filter (`wildcards` = how many `+` it has).
    pub fn compile(cfg: &ActionConfig, wildcards: usize, filter: &str) -> Result<Action, String> {
        let ActionConfig {
            profile,
            app,
            command,
            boot,
            device,
            radio_silence,
        } = cfg;
        let kinds = [
            profile.is_some(),
            app.is_some() || command.is_some() || boot.is_some(),
            device.is_some(),
            radio_silence.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => return Err(format!("the action is empty; give one of {KINDS}")),
            1 => {}
            _ => {
                return Err(format!(
                    "the action mixes kinds ({}); a rule does one thing: {KINDS}",
                    given(cfg).join(", ")
                ))
            }
        }
        let template = |text: &str| {
            Template::parse(text, wildcards, filter).map_err(|e| format!("action: {e}"))
        };
        if let Some(profile) = profile {
            return Ok(Action::Profile(template(profile)?));
        }
        if let Some(radio_silence) = radio_silence {
            return Ok(Action::Radio(*radio_silence));
        }
        if let Some(device) = device {
            return match parse_command(Target::Device, json!({ "command": device }))? {
                Intent::DeviceCommand { action } => Ok(Action::Device(action)),
                other => Err(format!("internal: device parsed as {other:?}")),
            };
        }
        let Some(app) = app else {
            let key = if command.is_some() { "command" } else { "boot" };
            return Err(format!(
                "'{key}' needs the app it is for, e.g. {{ app = \"vision\", {key} = \"...\" }} (or app = \"{{1}}\" for a '+' of the topic)"
            ));
        };
        if app.trim().is_empty() {
            return Err("'app' is empty; name the app by display name or UUID, or use \"{1}\" for a '+' of the topic".into());
        }
        let app_template = template(app)?;
        let payload = match (command, boot) {
            (Some(c), None) => json!({ "command": c }),
            (None, Some(b)) => json!({ "boot": b }),
            (None, None) => {
                return Err(format!(
                    "'app = \"{app}\"' needs what to do: command = \"restart\"|\"purge\" or boot = \"usb\"|\"nousb\"|\"default\""
                ))
            }
            (Some(_), Some(_)) => {
                return Err(
                    "give either 'command' or 'boot' for the app, not both (one rule, one action)"
                        .into(),
                )
            }
        };
        // The app is checked when the rule fires (EVE's app list changes); the name here is a
        // stand-in so that only the value is checked now.
        match parse_command(Target::App("app".into()), payload)? {
            Intent::AppCommand { action, .. } => Ok(Action::App {
                app: app_template,
                action,
            }),
            Intent::SetBoot { choice, .. } => Ok(Action::Boot {
                app: app_template,
                choice,
            }),
            other => Err(format!("internal: app action parsed as {other:?}")),
        }
    }

    /// The intent for one firing, and the action as it was carried out (placeholders filled).
    pub fn render(&self, captures: &[String]) -> (Intent, ActionConfig) {
        match self {
            Action::Profile(t) => {
                let profile = t.render(captures);
                (
                    Intent::SetProfile {
                        profile: profile.clone(),
                        force: false,
                    },
                    ActionConfig {
                        profile: Some(profile),
                        ..ActionConfig::default()
                    },
                )
            }
            Action::App { app, action } => {
                let app = app.render(captures);
                (
                    Intent::AppCommand {
                        app: app.clone(),
                        action: *action,
                    },
                    ActionConfig {
                        app: Some(app),
                        command: Some(name_of(action)),
                        ..ActionConfig::default()
                    },
                )
            }
            Action::Boot { app, choice } => {
                let app = app.render(captures);
                (
                    Intent::SetBoot {
                        app: app.clone(),
                        choice: *choice,
                    },
                    ActionConfig {
                        app: Some(app),
                        boot: Some(name_of(choice)),
                        ..ActionConfig::default()
                    },
                )
            }
            Action::Device(action) => (
                Intent::DeviceCommand { action: *action },
                ActionConfig {
                    device: Some(name_of(action)),
                    ..ActionConfig::default()
                },
            ),
            Action::Radio(radio_silence) => (
                Intent::SetRadio {
                    radio_silence: *radio_silence,
                },
                ActionConfig {
                    radio_silence: Some(*radio_silence),
                    ..ActionConfig::default()
                },
            ),
        }
    }
}

/// The snake_case name an enum serializes to (`collect_info`, `nousb`, ...).
fn name_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn given(cfg: &ActionConfig) -> Vec<&'static str> {
    [
        ("profile", cfg.profile.is_some()),
        ("app", cfg.app.is_some()),
        ("command", cfg.command.is_some()),
        ("boot", cfg.boot.is_some()),
        ("device", cfg.device.is_some()),
        ("radio_silence", cfg.radio_silence.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(key, _)| key)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn templates_fill_captures_and_keep_other_braces() {
        let t = Template::parse("{1}-{2}:{1}", 2, "a/+/+").unwrap();
        assert_eq!(t.render(&caps(&["x", "y"])), "x-y:x");
        let t = Template::parse("{name} {} {1", 0, "a").unwrap();
        assert_eq!(t.render(&[]), "{name} {} {1");
        let t = Template::parse("app-{1}", 1, "a/+").unwrap();
        assert_eq!(t.render(&caps(&["vision"])), "app-vision");
        assert!(Template::parse("{0}", 1, "a/+")
            .unwrap_err()
            .contains("count from {1}"));
        let err = Template::parse("{2}", 1, "plc/+/fault").unwrap_err();
        assert!(
            err.contains("{2}") && err.contains("'plc/+/fault' has 1"),
            "{err}"
        );
        assert!(Template::parse("{1}", 0, "plant/#").is_err());
        assert!(Template::parse("{99999999999999999999999}", 3, "a").is_err());
    }

    #[test]
    fn every_kind_renders_its_intent() {
        let cfg = ActionConfig {
            app: Some("{1}".into()),
            command: Some("purge".into()),
            ..ActionConfig::default()
        };
        let action = Action::compile(&cfg, 1, "plc/+/fault").unwrap();
        let (intent, shown) = action.render(&caps(&["vision"]));
        assert_eq!(
            intent,
            Intent::AppCommand {
                app: "vision".into(),
                action: AppAction::Purge
            }
        );
        assert_eq!(shown.app.as_deref(), Some("vision"));
        assert_eq!(shown.command.as_deref(), Some("purge"));

        let cfg = ActionConfig {
            device: Some("collect_info".into()),
            ..ActionConfig::default()
        };
        let (intent, shown) = Action::compile(&cfg, 0, "a").unwrap().render(&[]);
        assert_eq!(
            intent,
            Intent::DeviceCommand {
                action: DeviceAction::CollectInfo
            }
        );
        assert_eq!(shown, cfg);

        let cfg = ActionConfig {
            app: Some("vision".into()),
            boot: Some("nousb".into()),
            ..ActionConfig::default()
        };
        let (intent, shown) = Action::compile(&cfg, 0, "a").unwrap().render(&[]);
        assert_eq!(
            intent,
            Intent::SetBoot {
                app: "vision".into(),
                choice: BootChoice::Nousb
            }
        );
        assert_eq!(shown, cfg);

        let cfg = ActionConfig {
            radio_silence: Some(true),
            ..ActionConfig::default()
        };
        let (intent, _) = Action::compile(&cfg, 0, "a").unwrap().render(&[]);
        assert_eq!(
            intent,
            Intent::SetRadio {
                radio_silence: true
            }
        );

        let cfg = ActionConfig {
            profile: Some(String::new()),
            ..ActionConfig::default()
        };
        let (intent, _) = Action::compile(&cfg, 0, "a").unwrap().render(&[]);
        assert_eq!(
            intent,
            Intent::SetProfile {
                profile: String::new(),
                force: false,
            },
            "an empty profile clears the override, as on B/profile/set"
        );
    }
}

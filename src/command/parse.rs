//! The command grammar: a payload for a [`Target`] → an intent. Pure: every refusal says what was
//! wrong and what would be right.

use super::port::parse_port;
use super::Target;
use crate::state::{AppAction, BootChoice, DeviceAction, Intent, NetworkPort};
use serde_json::{Map, Value};

/// Longest command payload (bytes), for every way in: no command needs more.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Longest profile name (bytes of UTF-8). EVE sets no limit of its own; names in app profile lists
/// are short words like `night`, and EVE stores and reports the name back, so we keep it short.
pub const MAX_PROFILE_BYTES: usize = 128;
/// Longest app reference (display name, UUID or topic level) in a command.
pub const MAX_APP_REF_BYTES: usize = 256;
/// At most this many ports in one network override, with labels and texts this long.
pub const MAX_PORTS: usize = 64;
pub const MAX_PORT_LABEL_BYTES: usize = 64;
pub const MAX_PORT_TEXT_BYTES: usize = 16 * 1024;

/// Checks one free-text value that reaches EVE: at most `max` bytes and no control characters
/// (`multiline` allows newlines and tabs, e.g. in a PAC file).
fn check_text(what: &str, text: &str, max: usize, multiline: bool) -> Result<(), String> {
    if text.len() > max {
        return Err(format!(
            "{what} is {} bytes; the limit is {max} bytes",
            text.len()
        ));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if let Some(c) = text.chars().find(|c| c.is_control() && !allowed(*c)) {
        return Err(format!(
            "{what} contains the control character U+{:04X}; use printable text",
            c as u32
        ));
    }
    Ok(())
}

/// The profile rule: empty (clears the override), or at most [`MAX_PROFILE_BYTES`] of printable
/// text without leading or trailing white space.
pub fn check_profile(profile: &str) -> Result<(), String> {
    check_text("the profile name", profile, MAX_PROFILE_BYTES, false)?;
    if profile.trim() != profile {
        return Err("the profile name has leading or trailing white space; send it trimmed".into());
    }
    Ok(())
}

fn set_profile(profile: String, force: bool) -> Result<Intent, String> {
    check_profile(&profile)?;
    Ok(Intent::SetProfile { profile, force })
}

/// A parsed command: the intent (or why not) and the caller's transaction to echo.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub intent: Result<Intent, String>,
    pub transaction: Option<Value>,
}

/// Parses one command payload for `target`.
pub fn parse(target: &Target, payload: &[u8]) -> Parsed {
    let topic = target;
    if payload.len() > MAX_COMMAND_BYTES {
        return refuse(
            format!(
                "the command is {} bytes; the limit is {MAX_COMMAND_BYTES} bytes",
                payload.len()
            ),
            None,
        );
    }
    let text = match std::str::from_utf8(payload) {
        Ok(t) => t.trim(),
        Err(_) => return refuse("the payload is not UTF-8 text; send JSON", None),
    };
    if let Target::Profile = topic {
        if !text.starts_with('{') && !text.starts_with('"') {
            return Parsed {
                intent: set_profile(text.to_string(), false),
                transaction: None,
            };
        }
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                format!("malformed JSON ({e}); expected e.g. {}", example(topic)),
                None,
            )
        }
    };
    if let (Target::Profile, Value::String(profile)) = (topic, &value) {
        return Parsed {
            intent: set_profile(profile.clone(), false),
            transaction: None,
        };
    }
    let Value::Object(mut obj) = value else {
        return refuse(
            format!("expected a JSON object such as {}", example(topic)),
            None,
        );
    };
    let transaction = obj.remove("transaction");
    let intent = match topic {
        Target::Profile => profile(&obj),
        Target::App(app) => app_command(app, &obj),
        Target::Device => device(&obj),
        Target::Radio => radio(&obj),
        Target::Network => network(&obj),
    };
    Parsed {
        intent,
        transaction,
    }
}

fn refuse(why: impl Into<String>, transaction: Option<Value>) -> Parsed {
    Parsed {
        intent: Err(why.into()),
        transaction,
    }
}

/// A valid payload for `topic`, for error texts.
pub fn example(topic: &Target) -> &'static str {
    match topic {
        Target::Profile => r#"{"profile":"night"}"#,
        Target::App(_) => r#"{"command":"restart"} or {"boot":"usb"} or {"cancel":true}"#,
        Target::Device => r#"{"command":"reboot"} or {"cancel":true}"#,
        Target::Radio => r#"{"radio_silence":true}"#,
        Target::Network => r#"{"ports":[{"logical_label":"eth1","mtu":1400}]}"#,
    }
}

fn only_keys(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!(
            "unknown field '{key}'; allowed: {}, transaction",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn string_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("'{key}' must be a string, got {other}")),
        None => Err(format!("missing '{key}'")),
    }
}

fn cancel_requested(obj: &Map<String, Value>) -> Result<bool, String> {
    match obj.get("cancel") {
        None => Ok(false),
        Some(Value::Bool(true)) => Ok(true),
        Some(other) => Err(format!("'cancel' must be true, got {other}")),
    }
}

fn profile(obj: &Map<String, Value>) -> Result<Intent, String> {
    only_keys(obj, &["profile", "force"])?;
    let force = match obj.get("force") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("'force' must be true or false, got {other}")),
    };
    set_profile(string_field(obj, "profile")?.to_string(), force)
}

fn app_command(app: &str, obj: &Map<String, Value>) -> Result<Intent, String> {
    check_text("the app reference", app, MAX_APP_REF_BYTES, false)?;
    only_keys(obj, &["command", "boot", "cancel"])?;
    let present = ["command", "boot", "cancel"]
        .iter()
        .filter(|k| obj.contains_key(**k))
        .count();
    if present != 1 {
        return Err(
            r#"give exactly one of "command", "boot" or "cancel", e.g. {"command":"restart"}"#
                .into(),
        );
    }
    if cancel_requested(obj)? {
        return Ok(Intent::CancelApp {
            app: app.to_string(),
        });
    }
    if obj.contains_key("command") {
        let action = match string_field(obj, "command")? {
            "restart" => AppAction::Restart,
            "purge" => AppAction::Purge,
            other => {
                return Err(format!(
                    "unknown app command '{other}'; expected one of: restart, purge"
                ))
            }
        };
        return Ok(Intent::AppCommand {
            app: app.to_string(),
            action,
        });
    }
    let choice = match string_field(obj, "boot")? {
        "usb" => BootChoice::Usb,
        "nousb" => BootChoice::Nousb,
        "default" => BootChoice::Default,
        other => {
            return Err(format!(
                "unknown boot order '{other}'; expected one of: usb, nousb, default"
            ))
        }
    };
    Ok(Intent::SetBoot {
        app: app.to_string(),
        choice,
    })
}

fn device(obj: &Map<String, Value>) -> Result<Intent, String> {
    only_keys(obj, &["command", "cancel", "id"])?;
    if cancel_requested(obj)? {
        if obj.contains_key("command") {
            return Err(r#"give either "command" or "cancel", not both"#.into());
        }
        let id = match obj.get("id") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                format!("'id' must be a command id (a positive integer), got {v}")
            })?),
        };
        return Ok(Intent::CancelDevice { id });
    }
    if obj.contains_key("id") {
        return Err(r#"'id' is only used with {"cancel":true}"#.into());
    }
    let action = match string_field(obj, "command")? {
        "shutdown" => DeviceAction::Shutdown,
        "poweroff" => DeviceAction::Poweroff,
        "reboot" => DeviceAction::Reboot,
        "collect_info" => DeviceAction::CollectInfo,
        other => {
            return Err(format!(
                "unknown device command '{other}'; expected one of: shutdown, poweroff, reboot, collect_info"
            ))
        }
    };
    Ok(Intent::DeviceCommand { action })
}

fn radio(obj: &Map<String, Value>) -> Result<Intent, String> {
    only_keys(obj, &["radio_silence"])?;
    match obj.get("radio_silence") {
        Some(Value::Bool(b)) => Ok(Intent::SetRadio { radio_silence: *b }),
        Some(other) => Err(format!(
            "'radio_silence' must be true or false, got {other}"
        )),
        None => Err(r#"missing 'radio_silence', e.g. {"radio_silence":true}"#.into()),
    }
}

fn network(obj: &Map<String, Value>) -> Result<Intent, String> {
    only_keys(obj, &["ports"])?;
    let Some(Value::Array(list)) = obj.get("ports") else {
        return Err(
            r#"'ports' must be an array of EVE port configs; [] reverts to the controller's"#
                .into(),
        );
    };
    if list.len() > MAX_PORTS {
        return Err(format!(
            "{} ports given; the limit is {MAX_PORTS}",
            list.len()
        ));
    }
    let mut ports = Vec::with_capacity(list.len());
    for (i, value) in list.iter().enumerate() {
        let port = parse_port(value).map_err(|e| format!("ports[{i}]: {e}"))?;
        check_text(
            "the logical_label",
            &port.logical_label,
            MAX_PORT_LABEL_BYTES,
            false,
        )
        .map_err(|e| format!("ports[{i}]: {e}"))?;
        check_port_texts(&port.config, "").map_err(|e| format!("ports[{i}]: {e}"))?;
        if ports
            .iter()
            .any(|p: &NetworkPort| p.logical_label == port.logical_label)
        {
            return Err(format!(
                "ports[{i}]: port '{}' is listed twice",
                port.logical_label
            ));
        }
        ports.push(port);
    }
    Ok(Intent::SetNetwork { ports })
}

/// Every string in a port config (SSIDs, proxy settings, DNS names...) within the text rule.
fn check_port_texts(value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::String(text) => check_text(&format!("'{path}'"), text, MAX_PORT_TEXT_BYTES, true),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_port_texts(v, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().try_for_each(|(k, v)| {
            let path = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            check_port_texts(v, &path)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(topic: Target, payload: &str) -> Parsed {
        parse(&topic, payload.as_bytes())
    }

    fn app() -> Target {
        Target::App("vision".into())
    }

    #[test]
    fn profile_accepts_three_forms() {
        for payload in ["night", "\"night\"", r#"{"profile":"night"}"#] {
            assert_eq!(
                p(Target::Profile, payload).intent,
                Ok(Intent::SetProfile {
                    profile: "night".into(),
                    force: false,
                }),
                "{payload}"
            );
        }
        assert_eq!(
            p(Target::Profile, r#"{"profile":""}"#).intent,
            Ok(Intent::SetProfile {
                profile: String::new(),
                force: false,
            })
        );
    }

    #[test]
    fn transaction_is_kept_even_on_error() {
        let parsed = p(app(), r#"{"command":"reboot","transaction":"t-1"}"#);
        assert_eq!(parsed.transaction, Some(json!("t-1")));
        assert!(parsed
            .intent
            .unwrap_err()
            .contains("expected one of: restart, purge"));
    }

    #[test]
    fn app_commands_boot_and_cancel() {
        assert_eq!(
            p(app(), r#"{"command":"purge"}"#).intent,
            Ok(Intent::AppCommand {
                app: "vision".into(),
                action: AppAction::Purge
            })
        );
        assert_eq!(
            p(app(), r#"{"boot":"nousb"}"#).intent,
            Ok(Intent::SetBoot {
                app: "vision".into(),
                choice: BootChoice::Nousb
            })
        );
        assert_eq!(
            p(app(), r#"{"cancel":true}"#).intent,
            Ok(Intent::CancelApp {
                app: "vision".into()
            })
        );
        assert!(p(app(), r#"{"command":"restart","boot":"usb"}"#)
            .intent
            .unwrap_err()
            .contains("exactly one"));
        assert!(p(app(), r#"{"boot":"cdrom"}"#)
            .intent
            .unwrap_err()
            .contains("usb, nousb, default"));
        assert!(p(app(), r#"{"cancel":false}"#).intent.is_err());
    }

    #[test]
    fn malformed_and_unknown_are_explained() {
        let err = p(app(), r#"{"command":"restart""#).intent.unwrap_err();
        assert!(
            err.starts_with("malformed JSON") && err.contains("restart"),
            "{err}"
        );
        let err = p(Target::Device, r#"{"comand":"reboot"}"#)
            .intent
            .unwrap_err();
        assert!(err.contains("unknown field 'comand'"), "{err}");
        let err = p(Target::Device, "[1]").intent.unwrap_err();
        assert!(err.contains("JSON object"), "{err}");
        assert!(p(Target::Radio, r#"{"radio_silence":"yes"}"#)
            .intent
            .unwrap_err()
            .contains("true or false"));
        assert!(p(Target::Device, "\u{fffd}").intent.is_err());
    }

    #[test]
    fn device_commands_and_cancel_by_id() {
        assert_eq!(
            p(Target::Device, r#"{"command":"collect_info"}"#).intent,
            Ok(Intent::DeviceCommand {
                action: DeviceAction::CollectInfo
            })
        );
        assert_eq!(
            p(Target::Device, r#"{"cancel":true,"id":7}"#).intent,
            Ok(Intent::CancelDevice { id: Some(7) })
        );
        assert_eq!(
            p(Target::Device, r#"{"cancel":true}"#).intent,
            Ok(Intent::CancelDevice { id: None })
        );
        assert!(p(Target::Device, r#"{"command":"explode"}"#)
            .intent
            .unwrap_err()
            .contains("collect_info"));
    }

    #[test]
    fn network_ports_validated_per_port() {
        let ok = p(
            Target::Network,
            r#"{"ports":[{"logical_label":"eth1","mtu":1400}]}"#,
        )
        .intent
        .unwrap();
        let Intent::SetNetwork { ports } = ok else {
            panic!()
        };
        assert_eq!(ports[0].logical_label, "eth1");
        assert_eq!(
            p(Target::Network, r#"{"ports":[]}"#).intent,
            Ok(Intent::SetNetwork { ports: vec![] })
        );
        let err = p(
            Target::Network,
            r#"{"ports":[{"logical_label":"eth1","mtu":"big"}]}"#,
        )
        .intent
        .unwrap_err();
        assert!(err.starts_with("ports[0]"), "{err}");
        let err = p(
            Target::Network,
            r#"{"ports":[{"logical_label":"a"},{"logical_label":"a"}]}"#,
        )
        .intent
        .unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn free_text_reaching_eve_is_bounded_and_printable() {
        let huge = "[".repeat(200_000);
        let err = p(Target::Profile, &huge).intent.unwrap_err();
        assert!(err.contains("limit is 65536 bytes"), "{err}");
        let long = "n".repeat(MAX_PROFILE_BYTES + 1);
        for payload in [
            long.clone(),
            format!("\"{long}\""),
            format!(r#"{{"profile":"{long}"}}"#),
        ] {
            let err = p(Target::Profile, &payload).intent.unwrap_err();
            assert!(err.contains("the limit is 128 bytes"), "{err}");
        }
        let exact = "n".repeat(MAX_PROFILE_BYTES);
        assert!(p(Target::Profile, &exact).intent.is_ok());
        let err = p(Target::Profile, r#"{"profile":"night\u0000"}"#)
            .intent
            .unwrap_err();
        assert!(err.contains("U+0000") && err.contains("printable"), "{err}");
        assert!(p(Target::Profile, r#"{"profile":" night"}"#)
            .intent
            .unwrap_err()
            .contains("white space"));
        assert!(p(Target::Profile, "nacht-\u{e9}t\u{e9}").intent.is_ok());

        let app = Target::App("a".repeat(MAX_APP_REF_BYTES + 1));
        assert!(p(app, r#"{"command":"restart"}"#)
            .intent
            .unwrap_err()
            .contains("the limit is 256 bytes"));
        let app = Target::App("vis\u{7}ion".into());
        assert!(p(app, r#"{"command":"restart"}"#)
            .intent
            .unwrap_err()
            .contains("U+0007"));

        let label = "e".repeat(MAX_PORT_LABEL_BYTES + 1);
        let err = p(
            Target::Network,
            &format!(r#"{{"ports":[{{"logical_label":"{label}"}}]}}"#),
        )
        .intent
        .unwrap_err();
        assert!(
            err.starts_with("ports[0]: the logical_label") && err.contains("64"),
            "{err}"
        );
        let err = p(
            Target::Network,
            r#"{"ports":[{"logical_label":"eth1","dns_domain":"a\u0001b"}]}"#,
        )
        .intent
        .unwrap_err();
        assert!(
            err.contains("'dns_domain'") && err.contains("U+0001"),
            "{err}"
        );
        let many: Vec<String> = (0..=MAX_PORTS)
            .map(|i| format!(r#"{{"logical_label":"eth{i}"}}"#))
            .collect();
        let err = p(
            Target::Network,
            &format!(r#"{{"ports":[{}]}}"#, many.join(",")),
        )
        .intent
        .unwrap_err();
        assert!(err.contains("the limit is 64"), "{err}");
    }
}

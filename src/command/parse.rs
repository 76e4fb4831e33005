//! The command grammar: a payload for a [`Target`] → an intent. Pure: every refusal is a
//! [`PayloadError`] saying what was wrong and what would be right.

use super::payload_error::{PayloadError, TextError, TextField};
use super::port::{parse_port, PortError};
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

const APP_COMMANDS: &[&str] = &["restart", "purge"];
const BOOT_ORDERS: &[&str] = &["usb", "nousb", "default"];
const DEVICE_COMMANDS: &[&str] = &["shutdown", "poweroff", "reboot", "collect_info"];

/// Checks one free-text value that reaches EVE: at most `max` bytes and no control characters
/// (`multiline` allows newlines and tabs, e.g. in a PAC file).
fn check_text(field: TextField, text: &str, max: usize, multiline: bool) -> Result<(), TextError> {
    if text.len() > max {
        return Err(TextError::TooLong {
            field,
            bytes: text.len(),
            limit: max,
        });
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if let Some(character) = text.chars().find(|c| c.is_control() && !allowed(*c)) {
        return Err(TextError::ControlCharacter { field, character });
    }
    Ok(())
}

/// The profile rule: empty (clears the override), or at most [`MAX_PROFILE_BYTES`] of printable
/// text without leading or trailing white space.
pub fn check_profile(profile: &str) -> Result<(), PayloadError> {
    check_text(TextField::ProfileName, profile, MAX_PROFILE_BYTES, false)?;
    if profile.trim() != profile {
        return Err(PayloadError::ProfileNotTrimmed);
    }
    Ok(())
}

fn set_profile(profile: String, force: bool) -> Result<Intent, PayloadError> {
    check_profile(&profile)?;
    Ok(Intent::SetProfile { profile, force })
}

/// A parsed command: the intent (or why not) and the caller's transaction to echo.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub intent: Result<Intent, PayloadError>,
    pub transaction: Option<Value>,
}

/// Parses one command payload for `target`.
pub fn parse(target: &Target, payload: &[u8]) -> Parsed {
    let topic = target;
    if payload.len() > MAX_COMMAND_BYTES {
        return refuse(PayloadError::TooLarge {
            bytes: payload.len(),
        });
    }
    let text = match std::str::from_utf8(payload) {
        Ok(t) => t.trim(),
        Err(_) => return refuse(PayloadError::NotUtf8),
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
            return refuse(PayloadError::MalformedJson {
                reason: e.to_string(),
                expected: example(topic),
            })
        }
    };
    if let (Target::Profile, Value::String(profile)) = (topic, &value) {
        return Parsed {
            intent: set_profile(profile.clone(), false),
            transaction: None,
        };
    }
    let Value::Object(mut obj) = value else {
        return refuse(PayloadError::NotAnObject {
            expected: example(topic),
        });
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

/// Refused before the transaction could be read.
fn refuse(why: PayloadError) -> Parsed {
    Parsed {
        intent: Err(why),
        transaction: None,
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

fn only_keys(
    obj: &Map<String, Value>,
    allowed: &'static [&'static str],
) -> Result<(), PayloadError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(PayloadError::UnknownField {
            field: key.clone(),
            allowed,
        }),
        None => Ok(()),
    }
}

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, PayloadError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(PayloadError::NotAString {
            field,
            given: other.clone(),
        }),
        None => Err(PayloadError::Missing { field }),
    }
}

/// A word outside `allowed` for `what` ("app command", "boot order", ...).
fn unknown(what: &'static str, given: &str, allowed: &'static [&'static str]) -> PayloadError {
    PayloadError::UnknownValue {
        what,
        given: given.to_string(),
        allowed,
    }
}

fn cancel_requested(obj: &Map<String, Value>) -> Result<bool, PayloadError> {
    match obj.get("cancel") {
        None => Ok(false),
        Some(Value::Bool(true)) => Ok(true),
        Some(other) => Err(PayloadError::CancelNotTrue {
            given: other.clone(),
        }),
    }
}

fn profile(obj: &Map<String, Value>) -> Result<Intent, PayloadError> {
    only_keys(obj, &["profile", "force"])?;
    let force = match obj.get("force") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(PayloadError::NotABool {
                field: "force",
                given: other.clone(),
            })
        }
    };
    set_profile(string_field(obj, "profile")?.to_string(), force)
}

fn app_command(app: &str, obj: &Map<String, Value>) -> Result<Intent, PayloadError> {
    check_text(TextField::AppReference, app, MAX_APP_REF_BYTES, false)?;
    only_keys(obj, &["command", "boot", "cancel"])?;
    let present = ["command", "boot", "cancel"]
        .iter()
        .filter(|k| obj.contains_key(**k))
        .count();
    if present != 1 {
        return Err(PayloadError::NotOneAppAction);
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
            other => return Err(unknown("app command", other, APP_COMMANDS)),
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
        other => return Err(unknown("boot order", other, BOOT_ORDERS)),
    };
    Ok(Intent::SetBoot {
        app: app.to_string(),
        choice,
    })
}

fn device(obj: &Map<String, Value>) -> Result<Intent, PayloadError> {
    only_keys(obj, &["command", "cancel", "id"])?;
    if cancel_requested(obj)? {
        if obj.contains_key("command") {
            return Err(PayloadError::CommandAndCancel);
        }
        let id = match obj.get("id") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| PayloadError::BadCommandId { given: v.clone() })?,
            ),
        };
        return Ok(Intent::CancelDevice { id });
    }
    if obj.contains_key("id") {
        return Err(PayloadError::IdWithoutCancel);
    }
    let action = match string_field(obj, "command")? {
        "shutdown" => DeviceAction::Shutdown,
        "poweroff" => DeviceAction::Poweroff,
        "reboot" => DeviceAction::Reboot,
        "collect_info" => DeviceAction::CollectInfo,
        other => return Err(unknown("device command", other, DEVICE_COMMANDS)),
    };
    Ok(Intent::DeviceCommand { action })
}

fn radio(obj: &Map<String, Value>) -> Result<Intent, PayloadError> {
    only_keys(obj, &["radio_silence"])?;
    match obj.get("radio_silence") {
        Some(Value::Bool(b)) => Ok(Intent::SetRadio { radio_silence: *b }),
        Some(other) => Err(PayloadError::NotABool {
            field: "radio_silence",
            given: other.clone(),
        }),
        None => Err(PayloadError::MissingRadioSilence),
    }
}

fn network(obj: &Map<String, Value>) -> Result<Intent, PayloadError> {
    only_keys(obj, &["ports"])?;
    let Some(Value::Array(list)) = obj.get("ports") else {
        return Err(PayloadError::PortsNotArray);
    };
    if list.len() > MAX_PORTS {
        return Err(PayloadError::TooManyPorts { count: list.len() });
    }
    let mut ports = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        let port =
            check_port(value, &ports).map_err(|error| PayloadError::Port { index, error })?;
        ports.push(port);
    }
    Ok(Intent::SetNetwork { ports })
}

/// One port of the override, given the ports before it.
fn check_port(value: &Value, before: &[NetworkPort]) -> Result<NetworkPort, PortError> {
    let port = parse_port(value)?;
    check_text(
        TextField::LogicalLabel,
        &port.logical_label,
        MAX_PORT_LABEL_BYTES,
        false,
    )
    .map_err(PortError::Text)?;
    check_port_texts(&port.config, "").map_err(PortError::Text)?;
    if before.iter().any(|p| p.logical_label == port.logical_label) {
        return Err(PortError::ListedTwice {
            label: port.logical_label,
        });
    }
    Ok(port)
}

/// Every string in a port config (SSIDs, proxy settings, DNS names...) within the text rule.
fn check_port_texts(value: &Value, path: &str) -> Result<(), TextError> {
    match value {
        Value::String(text) => check_text(
            TextField::PortField(path.to_string()),
            text,
            MAX_PORT_TEXT_BYTES,
            true,
        ),
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

    fn err(topic: Target, payload: &str) -> PayloadError {
        p(topic, payload).intent.unwrap_err()
    }

    fn app() -> Target {
        Target::App("vision".into())
    }

    fn too_long(field: TextField, bytes: usize, limit: usize) -> PayloadError {
        PayloadError::Text(TextError::TooLong {
            field,
            bytes,
            limit,
        })
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
        assert_eq!(
            err(Target::Profile, r#"{"profile":"night","force":1}"#),
            PayloadError::NotABool {
                field: "force",
                given: json!(1)
            }
        );
        assert_eq!(
            err(Target::Profile, r#"{"force":true}"#),
            PayloadError::Missing { field: "profile" }
        );
    }

    #[test]
    fn transaction_is_kept_even_on_error() {
        let parsed = p(app(), r#"{"command":"reboot","transaction":"t-1"}"#);
        assert_eq!(parsed.transaction, Some(json!("t-1")));
        assert_eq!(
            parsed.intent,
            Err(PayloadError::UnknownValue {
                what: "app command",
                given: "reboot".into(),
                allowed: APP_COMMANDS,
            })
        );
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
        assert_eq!(
            err(app(), r#"{"command":"restart","boot":"usb"}"#),
            PayloadError::NotOneAppAction
        );
        assert_eq!(
            err(app(), r#"{"boot":"cdrom"}"#),
            PayloadError::UnknownValue {
                what: "boot order",
                given: "cdrom".into(),
                allowed: BOOT_ORDERS,
            }
        );
        assert_eq!(
            err(app(), r#"{"cancel":false}"#),
            PayloadError::CancelNotTrue {
                given: json!(false)
            }
        );
        assert_eq!(
            err(app(), r#"{"boot":7}"#),
            PayloadError::NotAString {
                field: "boot",
                given: json!(7)
            }
        );
    }

    #[test]
    fn malformed_and_unknown_are_explained() {
        let e = err(app(), r#"{"command":"restart""#);
        assert!(
            matches!(&e, PayloadError::MalformedJson { expected, .. } if *expected == example(&app())),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("malformed JSON ("), "{e}");
        assert_eq!(
            err(Target::Device, r#"{"comand":"reboot"}"#),
            PayloadError::UnknownField {
                field: "comand".into(),
                allowed: &["command", "cancel", "id"],
            }
        );
        assert_eq!(
            err(Target::Device, "[1]"),
            PayloadError::NotAnObject {
                expected: example(&Target::Device)
            }
        );
        assert_eq!(
            err(Target::Radio, r#"{"radio_silence":"yes"}"#),
            PayloadError::NotABool {
                field: "radio_silence",
                given: json!("yes")
            }
        );
        assert_eq!(err(Target::Radio, "{}"), PayloadError::MissingRadioSilence);
        assert_eq!(
            parse(&Target::Device, b"\xff\xfe").intent,
            Err(PayloadError::NotUtf8)
        );
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
        assert_eq!(
            err(Target::Device, r#"{"command":"explode"}"#),
            PayloadError::UnknownValue {
                what: "device command",
                given: "explode".into(),
                allowed: DEVICE_COMMANDS,
            }
        );
        assert_eq!(
            err(Target::Device, r#"{"cancel":true,"command":"reboot"}"#),
            PayloadError::CommandAndCancel
        );
        assert_eq!(
            err(Target::Device, r#"{"cancel":true,"id":-1}"#),
            PayloadError::BadCommandId { given: json!(-1) }
        );
        assert_eq!(
            err(Target::Device, r#"{"command":"reboot","id":1}"#),
            PayloadError::IdWithoutCancel
        );
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
        let e = err(
            Target::Network,
            r#"{"ports":[{"logical_label":"eth1","mtu":"big"}]}"#,
        );
        assert!(
            matches!(&e, PayloadError::Port { index: 0, error: PortError::BadField { field, .. } } if field == "mtu"),
            "{e:?}"
        );
        assert_eq!(
            err(
                Target::Network,
                r#"{"ports":[{"logical_label":"a"},{"logical_label":"a"}]}"#,
            ),
            PayloadError::Port {
                index: 1,
                error: PortError::ListedTwice { label: "a".into() }
            }
        );
        assert_eq!(
            err(Target::Network, r#"{"ports":{}}"#),
            PayloadError::PortsNotArray
        );
    }

    #[test]
    fn free_text_reaching_eve_is_bounded_and_printable() {
        let huge = "[".repeat(200_000);
        assert_eq!(
            err(Target::Profile, &huge),
            PayloadError::TooLarge { bytes: 200_000 }
        );
        let long = "n".repeat(MAX_PROFILE_BYTES + 1);
        for payload in [
            long.clone(),
            format!("\"{long}\""),
            format!(r#"{{"profile":"{long}"}}"#),
        ] {
            assert_eq!(
                err(Target::Profile, &payload),
                too_long(TextField::ProfileName, MAX_PROFILE_BYTES + 1, 128),
                "{payload}"
            );
        }
        let exact = "n".repeat(MAX_PROFILE_BYTES);
        assert!(p(Target::Profile, &exact).intent.is_ok());
        assert_eq!(
            err(Target::Profile, r#"{"profile":"night\u0000"}"#),
            PayloadError::Text(TextError::ControlCharacter {
                field: TextField::ProfileName,
                character: '\0'
            })
        );
        assert_eq!(
            err(Target::Profile, r#"{"profile":" night"}"#),
            PayloadError::ProfileNotTrimmed
        );
        assert!(p(Target::Profile, "nacht-\u{e9}t\u{e9}").intent.is_ok());

        let app = Target::App("a".repeat(MAX_APP_REF_BYTES + 1));
        assert_eq!(
            err(app, r#"{"command":"restart"}"#),
            too_long(TextField::AppReference, MAX_APP_REF_BYTES + 1, 256)
        );
        let app = Target::App("vis\u{7}ion".into());
        assert_eq!(
            err(app, r#"{"command":"restart"}"#),
            PayloadError::Text(TextError::ControlCharacter {
                field: TextField::AppReference,
                character: '\u{7}'
            })
        );

        let label = "e".repeat(MAX_PORT_LABEL_BYTES + 1);
        assert_eq!(
            err(
                Target::Network,
                &format!(r#"{{"ports":[{{"logical_label":"{label}"}}]}}"#),
            ),
            PayloadError::Port {
                index: 0,
                error: PortError::Text(TextError::TooLong {
                    field: TextField::LogicalLabel,
                    bytes: MAX_PORT_LABEL_BYTES + 1,
                    limit: 64,
                })
            }
        );
        assert_eq!(
            err(
                Target::Network,
                r#"{"ports":[{"logical_label":"eth1","dns_domain":"a\u0001b"}]}"#,
            ),
            PayloadError::Port {
                index: 0,
                error: PortError::Text(TextError::ControlCharacter {
                    field: TextField::PortField("dns_domain".into()),
                    character: '\u{1}',
                })
            }
        );
        let many: Vec<String> = (0..=MAX_PORTS)
            .map(|i| format!(r#"{{"logical_label":"eth{i}"}}"#))
            .collect();
        assert_eq!(
            err(
                Target::Network,
                &format!(r#"{{"ports":[{}]}}"#, many.join(",")),
            ),
            PayloadError::TooManyPorts {
                count: MAX_PORTS + 1
            }
        );
    }

    /// The whole wire text for a few payloads, as docs/asyncapi.yaml and the README show them.
    #[test]
    fn wire_texts_are_unchanged() {
        assert_eq!(
            err(app(), r#"{"command":"restart","boot":"usb"}"#).to_string(),
            r#"give exactly one of "command", "boot" or "cancel", e.g. {"command":"restart"}"#
        );
        assert_eq!(
            err(Target::Device, "[1]").to_string(),
            r#"expected a JSON object such as {"command":"reboot"} or {"cancel":true}"#
        );
        assert_eq!(
            err(
                Target::Network,
                r#"{"ports":[{"logical_label":"a"},{"logical_label":"a"}]}"#
            )
            .to_string(),
            "ports[1]: port 'a' is listed twice"
        );
        assert_eq!(
            err(Target::Profile, &"[".repeat(70_000)).to_string(),
            "the command is 70000 bytes; the limit is 65536 bytes"
        );
    }
}

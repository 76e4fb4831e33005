//! Why a command payload was refused before it reached the store: one type with the facts as
//! fields (which field, what was given, what is allowed) and one wording (`Display`). Every way
//! in (MQTT reply `error`, REST 400, rule and Sparkplug checks) shows that text; the README and
//! docs/asyncapi.yaml quote it, so the wording is part of the contract.

use super::parse::{MAX_COMMAND_BYTES, MAX_PORTS};
use super::port::PortError;
use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// A REST body with nothing but white space.
    EmptyBody {
        expected: &'static str,
    },
    /// Over [`MAX_COMMAND_BYTES`].
    TooLarge {
        bytes: usize,
    },
    NotUtf8,
    /// serde_json's reason (with line and column), and a valid payload for the target.
    MalformedJson {
        reason: String,
        expected: &'static str,
    },
    /// Valid JSON, but not an object (nor, for the profile, a string).
    NotAnObject {
        expected: &'static str,
    },
    /// A free-text value that would reach EVE breaks the text rule.
    Text(TextError),
    ProfileNotTrimmed,
    UnknownField {
        field: String,
        allowed: &'static [&'static str],
    },
    NotAString {
        field: &'static str,
        given: Value,
    },
    NotABool {
        field: &'static str,
        given: Value,
    },
    Missing {
        field: &'static str,
    },
    MissingRadioSilence,
    CancelNotTrue {
        given: Value,
    },
    /// An app command needs exactly one of `command`, `boot`, `cancel`.
    NotOneAppAction,
    /// A device command with both `command` and `cancel`.
    CommandAndCancel,
    BadCommandId {
        given: Value,
    },
    IdWithoutCancel,
    /// A value outside its word list (`what`: "app command", "boot order", "device command").
    UnknownValue {
        what: &'static str,
        given: String,
        allowed: &'static [&'static str],
    },
    PortsNotArray,
    TooManyPorts {
        count: usize,
    },
    /// One port of a network override, by index.
    Port {
        index: usize,
        error: PortError,
    },
}

/// A free-text value (profile name, app reference, port label or field) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    TooLong {
        field: TextField,
        bytes: usize,
        limit: usize,
    },
    ControlCharacter {
        field: TextField,
        character: char,
    },
}

/// Which free-text value a [`TextError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextField {
    ProfileName,
    AppReference,
    LogicalLabel,
    /// A string inside a port config, by its path (`wireless.wifi[0].ssid`).
    PortField(String),
}

impl fmt::Display for TextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextField::ProfileName => write!(f, "the profile name"),
            TextField::AppReference => write!(f, "the app reference"),
            TextField::LogicalLabel => write!(f, "the logical_label"),
            TextField::PortField(path) => write!(f, "'{path}'"),
        }
    }
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::TooLong {
                field,
                bytes,
                limit,
            } => write!(f, "{field} is {bytes} bytes; the limit is {limit} bytes"),
            TextError::ControlCharacter { field, character } => write!(
                f,
                "{field} contains the control character U+{:04X}; use printable text",
                *character as u32
            ),
        }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::EmptyBody { expected } => {
                write!(f, "empty body; expected e.g. {expected}")
            }
            PayloadError::TooLarge { bytes } => write!(
                f,
                "the command is {bytes} bytes; the limit is {MAX_COMMAND_BYTES} bytes"
            ),
            PayloadError::NotUtf8 => write!(f, "the payload is not UTF-8 text; send JSON"),
            PayloadError::MalformedJson { reason, expected } => {
                write!(f, "malformed JSON ({reason}); expected e.g. {expected}")
            }
            PayloadError::NotAnObject { expected } => {
                write!(f, "expected a JSON object such as {expected}")
            }
            PayloadError::Text(e) => e.fmt(f),
            PayloadError::ProfileNotTrimmed => write!(
                f,
                "the profile name has leading or trailing white space; send it trimmed"
            ),
            PayloadError::UnknownField { field, allowed } => write!(
                f,
                "unknown field '{field}'; allowed: {}, transaction",
                allowed.join(", ")
            ),
            PayloadError::NotAString { field, given } => {
                write!(f, "'{field}' must be a string, got {given}")
            }
            PayloadError::NotABool { field, given } => {
                write!(f, "'{field}' must be true or false, got {given}")
            }
            PayloadError::Missing { field } => write!(f, "missing '{field}'"),
            PayloadError::MissingRadioSilence => {
                write!(
                    f,
                    r#"missing 'radio_silence', e.g. {{"radio_silence":true}}"#
                )
            }
            PayloadError::CancelNotTrue { given } => {
                write!(f, "'cancel' must be true, got {given}")
            }
            PayloadError::NotOneAppAction => write!(
                f,
                r#"give exactly one of "command", "boot" or "cancel", e.g. {{"command":"restart"}}"#
            ),
            PayloadError::CommandAndCancel => {
                write!(f, r#"give either "command" or "cancel", not both"#)
            }
            PayloadError::BadCommandId { given } => write!(
                f,
                "'id' must be a command id (a positive integer), got {given}"
            ),
            PayloadError::IdWithoutCancel => {
                write!(f, r#"'id' is only used with {{"cancel":true}}"#)
            }
            PayloadError::UnknownValue {
                what,
                given,
                allowed,
            } => write!(
                f,
                "unknown {what} '{given}'; expected one of: {}",
                allowed.join(", ")
            ),
            PayloadError::PortsNotArray => write!(
                f,
                "'ports' must be an array of EVE port configs; [] reverts to the controller's"
            ),
            PayloadError::TooManyPorts { count } => {
                write!(f, "{count} ports given; the limit is {MAX_PORTS}")
            }
            PayloadError::Port { index, error } => write!(f, "ports[{index}]: {error}"),
        }
    }
}

impl std::error::Error for PayloadError {}

impl From<TextError> for PayloadError {
    fn from(e: TextError) -> Self {
        PayloadError::Text(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The texts the README and docs/asyncapi.yaml quote.
    #[test]
    fn wording_the_docs_quote() {
        assert_eq!(
            PayloadError::UnknownField {
                field: "comand".into(),
                allowed: &["command", "cancel", "id"],
            }
            .to_string(),
            "unknown field 'comand'; allowed: command, cancel, id, transaction"
        );
        assert_eq!(
            PayloadError::UnknownValue {
                what: "boot order",
                given: "cdrom".into(),
                allowed: &["usb", "nousb", "default"],
            }
            .to_string(),
            "unknown boot order 'cdrom'; expected one of: usb, nousb, default"
        );
        assert_eq!(
            PayloadError::NotABool {
                field: "radio_silence",
                given: json!("yes"),
            }
            .to_string(),
            r#"'radio_silence' must be true or false, got "yes""#
        );
        assert_eq!(
            PayloadError::Port {
                index: 0,
                error: PortError::Text(TextError::ControlCharacter {
                    field: TextField::PortField("dns_domain".into()),
                    character: '\u{1}',
                }),
            }
            .to_string(),
            "ports[0]: 'dns_domain' contains the control character U+0001; use printable text"
        );
        assert_eq!(
            PayloadError::Text(TextError::TooLong {
                field: TextField::ProfileName,
                bytes: 129,
                limit: 128,
            })
            .to_string(),
            "the profile name is 129 bytes; the limit is 128 bytes"
        );
    }
}

//! One port of an operator's network override: JSON (EVE's proto field names, or camelCase) →
//! the domain form the store keeps and the LPS hands to EVE.

use super::payload_error::TextError;
use crate::eve::profile::NetworkPortConfig;
use crate::state::NetworkPort;
use serde_json::Value;
use std::fmt;

/// Why one port config was refused; shown after `ports[i]: ` in a network command's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    NoLogicalLabel,
    /// The field that fails on its own, its value (shortened) and serde's reason.
    BadField {
        field: String,
        given: String,
        reason: String,
    },
    /// serde's reason when no single field is to blame (not an object, a missing field ...).
    Invalid {
        reason: String,
    },
    Text(TextError),
    ListedTwice {
        label: String,
    },
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::NoLogicalLabel => {
                write!(
                    f,
                    "each port needs a logical_label naming the port to change"
                )
            }
            PortError::BadField {
                field,
                given,
                reason,
            } => write!(f, "'{field}' = {given}: {reason}"),
            PortError::Invalid { reason } => write!(f, "{reason}"),
            PortError::Text(e) => e.fmt(f),
            PortError::ListedTwice { label } => write!(f, "port '{label}' is listed twice"),
        }
    }
}

impl std::error::Error for PortError {}

/// Parses one port config; the error names the field that is wrong.
pub fn parse_port(value: &Value) -> Result<NetworkPort, PortError> {
    let port: NetworkPortConfig =
        serde_json::from_value(value.clone()).map_err(|e| name_the_field(value, e))?;
    if port.logical_label.trim().is_empty() {
        return Err(PortError::NoLogicalLabel);
    }
    Ok(NetworkPort {
        logical_label: port.logical_label.clone(),
        config: serde_json::to_value(&port).unwrap_or(Value::Null),
    })
}

/// serde's error for a wrong value ("invalid digit found in string") names neither the field
/// nor the value: find the field that fails on its own and say both.
fn name_the_field(value: &Value, err: serde_json::Error) -> PortError {
    let Value::Object(fields) = value else {
        return PortError::Invalid {
            reason: err.to_string(),
        };
    };
    for (name, field) in fields {
        let alone = serde_json::json!({ "logical_label": "x", name.as_str(): field });
        if let Err(e) = serde_json::from_value::<NetworkPortConfig>(alone) {
            let mut shown = field.to_string();
            if shown.len() > 60 {
                let cut = (0..=60)
                    .rev()
                    .find(|i| shown.is_char_boundary(*i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push('…');
            }
            return PortError::BadField {
                field: name.clone(),
                given: shown,
                reason: e.to_string(),
            };
        }
    }
    PortError::Invalid {
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn port_json_errors_name_the_problem() {
        assert_eq!(
            parse_port(&json!({ "mtu": 1400 })),
            Err(PortError::NoLogicalLabel)
        );
        let err = parse_port(&json!({ "logical_label": "eth0", "mtuu": 1 })).unwrap_err();
        assert!(
            matches!(&err, PortError::BadField { field, reason, .. } if field == "mtuu" && reason.contains("unknown field")),
            "{err:?}"
        );
        let err =
            parse_port(&json!({ "logical_label": "eth0", "ip_version": "IPV5" })).unwrap_err();
        assert!(
            matches!(&err, PortError::BadField { field, reason, .. } if field == "ip_version" && reason.contains("IPV5")),
            "{err:?}"
        );
        let err = parse_port(&json!({ "logical_label": "eth0", "mtu": "big" })).unwrap_err();
        assert!(
            matches!(&err, PortError::BadField { field, given, .. } if field == "mtu" && given == "\"big\""),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("'mtu' = \"big\": "), "{err}");
    }
}

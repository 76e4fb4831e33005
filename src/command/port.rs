//! One port of an operator's network override: JSON (EVE's proto field names, or camelCase) →
//! the domain form the store keeps and the LPS hands to EVE.

use crate::eve::profile::NetworkPortConfig;
use crate::state::NetworkPort;
use serde_json::Value;

/// Parses one port config; the error names the field that is wrong.
pub fn parse_port(value: &Value) -> Result<NetworkPort, String> {
    let port: NetworkPortConfig =
        serde_json::from_value(value.clone()).map_err(|e| name_the_field(value, e))?;
    if port.logical_label.trim().is_empty() {
        return Err("each port needs a logical_label naming the port to change".into());
    }
    Ok(NetworkPort {
        logical_label: port.logical_label.clone(),
        config: serde_json::to_value(&port).unwrap_or(Value::Null),
    })
}

/// serde's error for a wrong value ("invalid digit found in string") names neither the field
/// nor the value: find the field that fails on its own and say both.
fn name_the_field(value: &Value, err: serde_json::Error) -> String {
    let Value::Object(fields) = value else {
        return err.to_string();
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
            return format!("'{name}' = {shown}: {e}");
        }
    }
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn port_json_errors_name_the_problem() {
        assert!(parse_port(&json!({ "mtu": 1400 }))
            .unwrap_err()
            .contains("logical_label"));
        let err = parse_port(&json!({ "logical_label": "eth0", "mtuu": 1 })).unwrap_err();
        assert!(err.contains("mtuu"), "{err}");
        let err =
            parse_port(&json!({ "logical_label": "eth0", "ip_version": "IPV5" })).unwrap_err();
        assert!(err.contains("IPV5"), "{err}");
        let err = parse_port(&json!({ "logical_label": "eth0", "mtu": "big" })).unwrap_err();
        assert!(err.starts_with("'mtu' = \"big\": "), "{err}");
    }
}

//! One line of `GET /api/v1/signal`: a `Signal` message in proto3 JSON, newline-terminated
//! (NDJSON). The gateway writes lines, the simulator reads them the way EVE does.

use crate::profile::ConfigEndpoint;
use serde_json::Value;

/// One line in protobuf's canonical JSON (`{"pendingChanges":[...]}\n`), endpoints in the order
/// given.
pub fn encode_line(endpoints: impl IntoIterator<Item = ConfigEndpoint>) -> String {
    let names: Vec<&str> = endpoints.into_iter().map(|e| e.as_str_name()).collect();
    let mut text = serde_json::json!({ "pendingChanges": names }).to_string();
    text.push('\n');
    text
}

/// Decodes one line (without its newline) as protojson with unknown fields discarded:
/// `pendingChanges` or `pending_changes`, enum names or numbers; unknown names are dropped,
/// unknown numbers kept (the reader ignores them later).
pub fn parse_line(line: &[u8]) -> Result<Vec<i32>, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let Value::Object(obj) = value else {
        return Err("not a JSON object".to_string());
    };
    let list = match (obj.get("pendingChanges"), obj.get("pending_changes")) {
        (Some(_), Some(_)) => return Err("field pendingChanges given twice".to_string()),
        (Some(v), None) | (None, Some(v)) => v,
        (None, None) => return Ok(Vec::new()),
    };
    let items = match list {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err("pendingChanges is not an array".to_string()),
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(name) => {
                if let Some(ep) = ConfigEndpoint::from_str_name(name) {
                    out.push(ep as i32);
                }
            }
            Value::Number(n) => {
                let v = n
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| format!("invalid enum number {n}"))?;
                out.push(v);
            }
            other => return Err(format!("invalid enum value {other}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_canonical_json() {
        assert_eq!(
            encode_line([ConfigEndpoint::AppInfo, ConfigEndpoint::Network]),
            "{\"pendingChanges\":[\"CONFIG_ENDPOINT_APP_INFO\",\"CONFIG_ENDPOINT_NETWORK\"]}\n"
        );
        assert_eq!(encode_line([]), "{\"pendingChanges\":[]}\n");
    }

    #[test]
    fn parses_what_it_encodes() {
        let line = encode_line([ConfigEndpoint::Radio, ConfigEndpoint::DevInfo]);
        assert_eq!(
            parse_line(line.trim_end().as_bytes()),
            Ok(vec![
                ConfigEndpoint::Radio as i32,
                ConfigEndpoint::DevInfo as i32
            ])
        );
    }

    #[test]
    fn parses_signal_lines() {
        let p = |s: &str| parse_line(s.as_bytes());
        assert_eq!(
            p(r#"{"pendingChanges":["CONFIG_ENDPOINT_NETWORK","CONFIG_ENDPOINT_APP_INFO"]}"#),
            Ok(vec![6, 3])
        );
        assert_eq!(p(r#"{"pending_changes":[2, 5]}"#), Ok(vec![2, 5]));
        assert_eq!(
            p(r#"{"pendingChanges":["CONFIG_ENDPOINT_FUTURE","CONFIG_ENDPOINT_RADIO"],"extra":1}"#),
            Ok(vec![2])
        );
        assert_eq!(p(r#"{"pendingChanges":[99]}"#), Ok(vec![99]));
        assert_eq!(p("{}"), Ok(vec![]));
        assert_eq!(p(r#"{"pendingChanges":null}"#), Ok(vec![]));
        assert!(p("not json").is_err());
        assert!(p("[1,2]").is_err());
        assert!(p(r#"{"pendingChanges":"CONFIG_ENDPOINT_RADIO"}"#).is_err());
        assert!(p(r#"{"pendingChanges":[1.5]}"#).is_err());
        assert!(p(r#"{"pendingChanges":[true]}"#).is_err());
        assert!(p(r#"{"pendingChanges":[1]} trailing"#).is_err());
        assert!(p(r#"{"pendingChanges":[1],"pending_changes":[2]}"#).is_err());
    }
}

//! A rule's payload condition: the whole payload as text, or one JSON value found by a JSON
//! pointer (RFC 6901) compared with a string, number or bool. Pure; anything that does not match
//! (not UTF-8, not JSON, pointer missing, another type) is simply false.

use serde_json::Value;

/// What a rule checks in a message's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The payload, trimmed of surrounding whitespace, equals this text.
    Text(String),
    /// The payload is JSON and the value at `pointer` equals `equals`.
    Json { pointer: String, equals: Expected },
}

/// The value a JSON pointer must find. Types are strict: `"1"` does not equal `1`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
}

impl Expected {
    /// From the config's `equals`: only a string, number or bool.
    pub fn from_value(value: &Value) -> Result<Expected, String> {
        match value {
            Value::String(s) => Ok(Expected::Str(s.clone())),
            Value::Number(n) => Ok(Expected::Num(n.clone())),
            Value::Bool(b) => Ok(Expected::Bool(*b)),
            other => Err(format!(
                "'equals' must be a string, number or bool, got {}",
                kind_of(other)
            )),
        }
    }

    fn matches(&self, found: &Value) -> bool {
        match (self, found) {
            (Expected::Str(want), Value::String(got)) => want == got,
            (Expected::Bool(want), Value::Bool(got)) => want == got,
            (Expected::Num(want), Value::Number(got)) => numbers_equal(want, got),
            _ => false,
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null, NaN or a date)",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// `1`, `1.0` and `1e0` are equal; integers are compared exactly.
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Checks a JSON pointer is well formed: empty segments are fine, `~` only as `~0` or `~1`.
pub fn valid_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.starts_with('/') {
        return Err(format!(
            "the JSON pointer '{pointer}' must start with '/', e.g. \"/on_battery\" or \"/status/mode\""
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0') | Some('1')) {
            return Err(format!(
                "the JSON pointer '{pointer}': '~' must be followed by 0 or 1 (~0 is '~', ~1 is '/')"
            ));
        }
    }
    Ok(())
}

impl Condition {
    /// Whether `payload` satisfies the condition.
    pub fn holds(&self, payload: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(payload) else {
            return false;
        };
        match self {
            Condition::Text(want) => text.trim() == want,
            Condition::Json { pointer, equals } => serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|doc| doc.pointer(pointer).map(|found| equals.matches(found)))
                .unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_cond(pointer: &str, equals: Value) -> Condition {
        Condition::Json {
            pointer: pointer.into(),
            equals: Expected::from_value(&equals).unwrap(),
        }
    }

    #[test]
    fn text_matches_the_whole_trimmed_payload() {
        let c = Condition::Text("night".into());
        assert!(c.holds(b"night"));
        assert!(c.holds(b" night\r\n"));
        assert!(!c.holds(b"Night"));
        assert!(!c.holds(b"nightly"));
        assert!(!c.holds(b"\"night\""));
        assert!(!c.holds(b""));
        assert!(!c.holds(&[0xff, 0xfe]));
    }

    #[test]
    fn json_bool_string_and_number() {
        let on_battery = json_cond("/on_battery", json!(true));
        assert!(on_battery.holds(br#"{"on_battery":true,"charge":80}"#));
        assert!(!on_battery.holds(br#"{"on_battery":false}"#));
        assert!(
            !on_battery.holds(br#"{"on_battery":"true"}"#),
            "strict types"
        );
        assert!(!on_battery.holds(br#"{"other":true}"#), "missing is false");
        assert!(!on_battery.holds(b"not json"), "not JSON is false");
        assert!(!on_battery.holds(b""));

        let mode = json_cond("/status/mode", json!("night"));
        assert!(mode.holds(br#"{"status":{"mode":"night"}}"#));
        assert!(!mode.holds(br#"{"status":{"mode":"day"}}"#));
        assert!(!mode.holds(br#"{"status":"night"}"#));

        let level = json_cond("/level", json!(3));
        assert!(level.holds(br#"{"level":3}"#));
        assert!(level.holds(br#"{"level":3.0}"#));
        assert!(!level.holds(br#"{"level":3.5}"#));
        assert!(!level.holds(br#"{"level":"3"}"#));
        let half = json_cond("/v", json!(0.5));
        assert!(half.holds(br#"{"v":0.5}"#));
        assert!(half.holds(br#"{"v":5e-1}"#));
        let big = json_cond("/v", json!(u64::MAX));
        assert!(big.holds(format!(r#"{{"v":{}}}"#, u64::MAX).as_bytes()));
        assert!(!big.holds(format!(r#"{{"v":{}}}"#, u64::MAX - 1).as_bytes()));
        let neg = json_cond("/v", json!(-2));
        assert!(neg.holds(br#"{"v":-2}"#));
    }

    #[test]
    fn pointers_index_arrays_and_escape() {
        assert!(json_cond("/bits/1", json!(true)).holds(br#"{"bits":[false,true]}"#));
        assert!(json_cond("/a~1b/c~0d", json!(1)).holds(br#"{"a/b":{"c~d":1}}"#));
        assert!(valid_pointer("/a~1b/c~0d").is_ok());
        assert!(valid_pointer("/").is_ok());
        assert!(valid_pointer("on_battery")
            .unwrap_err()
            .contains("start with '/'"));
        assert!(valid_pointer("").is_err());
        assert!(valid_pointer("/a~2").unwrap_err().contains("~0"));
        assert!(valid_pointer("/a~").is_err());
    }

    #[test]
    fn equals_must_be_a_scalar() {
        assert!(Expected::from_value(&json!([1]))
            .unwrap_err()
            .contains("an array"));
        assert!(Expected::from_value(&json!({}))
            .unwrap_err()
            .contains("a table"));
        assert!(Expected::from_value(&Value::Null).is_err());
    }
}

//! The reply every way in gives for a command: `{"status":"ok",...}` or
//! `{"status":"error","error":...}`, with the caller's transaction echoed.

use super::CommandError;
use serde_json::{json, Value};

/// The reply JSON for a command's result (accepted JSON, or why not): the one mapping of a
/// [`CommandError`] to the reply, whose `error` is its `Display`.
pub fn reply_payload(result: Result<Value, CommandError>, transaction: Option<Value>) -> Value {
    let mut body = match result {
        Ok(Value::Object(fields)) => {
            let mut body = serde_json::Map::new();
            body.insert("status".into(), json!("ok"));
            body.extend(fields);
            body
        }
        Ok(_) => json!({ "status": "ok" })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        Err(error) => json!({ "status": "error", "error": error.to_string() })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    if let Some(t) = transaction {
        body.insert("transaction".into(), t);
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_shapes() {
        let ok = reply_payload(
            Ok(json!({ "command": { "id": 1, "timestamp": "5" } })),
            Some(json!(42)),
        );
        assert_eq!(
            ok,
            json!({ "status": "ok", "command": { "id": 1, "timestamp": "5" }, "transaction": 42 })
        );
        let err = reply_payload(
            Err(CommandError::Payload(crate::command::PayloadError::NotUtf8)),
            None,
        );
        assert_eq!(
            err,
            json!({ "status": "error", "error": "the payload is not UTF-8 text; send JSON" })
        );
    }
}

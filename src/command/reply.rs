//! The reply every way in gives for a command: `{"status":"ok",...}` or
//! `{"status":"error","error":...}`, with the caller's transaction echoed.

use serde_json::{json, Value};

/// The reply JSON for a command's result (accepted JSON, or why not).
pub fn reply_payload(result: Result<Value, String>, transaction: Option<Value>) -> Value {
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
        Err(error) => json!({ "status": "error", "error": error })
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
        let err = reply_payload(Err("bad".into()), None);
        assert_eq!(err, json!({ "status": "error", "error": "bad" }));
    }
}

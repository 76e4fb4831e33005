//! Command topics → intents → the store → one reply per command.

use super::link::Incoming;
use super::topics::Topics;
use super::{Outgoing, Publisher};
use crate::commands::{self, Parsed};
use crate::store::StoreHandle;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The reply JSON: `{"status":"ok",...}` or `{"status":"error","error":...}`, transaction echoed.
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

fn send_reply(publisher: &Publisher, topics: &Topics, msg: &Incoming, body: &Value) {
    let payload = bytes::Bytes::from(body.to_string());
    let reply_topic = topics.response_for(&msg.topic);
    // A command topic near MQTT's limit has no valid reply topic: the broker would write a
    // truncated length and every subscriber would read garbage.
    if reply_topic.len() <= super::topics::MAX_TOPIC_BYTES {
        publisher.publish(Outgoing::message(reply_topic, payload.clone()));
    } else {
        tracing::warn!(
            bytes = msg.topic.len(),
            "command topic too long for a reply topic; no reply on B/response"
        );
    }
    if let Some(response_topic) = &msg.response_topic {
        publisher.publish(Outgoing {
            topic: response_topic.clone(),
            payload,
            retain: false,
            correlation: msg.correlation.clone(),
        });
    }
}

/// Where messages on non-command topics go (bridge rules): the filters and the channel.
pub type RuleRoute = (Vec<String>, mpsc::Sender<Incoming>);

/// Handles command messages until every broker link closes; hands rule topics to the rules.
pub async fn run(
    mut incoming: mpsc::Receiver<Incoming>,
    store: StoreHandle,
    topics: Topics,
    publisher: Publisher,
    rules: Option<RuleRoute>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    while let Some(msg) = incoming.recv().await {
        metrics
            .mqtt_messages_in
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((filters, rules_tx)) = &rules {
            if filters
                .iter()
                .any(|f| super::topics::filter_matches(f, &msg.topic).is_some())
            {
                let _ = rules_tx.send(msg.clone()).await;
            }
        }
        let Some(topic) = topics.parse_command(&msg.topic) else {
            continue;
        };
        // Empty is what clearing a retained message looks like, ours included: never a command.
        if msg.payload.is_empty() {
            continue;
        }
        // A retained command would fire again after every reconnect: refuse it and delete it.
        publisher.publish(Outgoing::clear_retained(msg.topic.clone()));
        if msg.retain {
            tracing::warn!(topic = %msg.topic, "retained command refused");
            let body = reply_payload(
                Err("retained commands are refused (they would fire again on every reconnect); publish with retain=false. The retained copy was deleted".into()),
                None,
            );
            send_reply(&publisher, &topics, &msg, &body);
            continue;
        }
        let Parsed {
            intent,
            transaction,
        } = commands::parse(&topic, &msg.payload, crate::lps::convert::parse_port);
        let intent = match intent {
            Ok(intent) => intent,
            Err(error) => {
                tracing::info!(topic = %msg.topic, %error, "command refused");
                send_reply(
                    &publisher,
                    &topics,
                    &msg,
                    &reply_payload(Err(error), transaction),
                );
                continue;
            }
        };
        // Enqueue in order, await the durable reply concurrently: the store commits in batches.
        let outcome = store.intent(intent, "mqtt".into()).await;
        let publisher = publisher.clone();
        let topics = topics.clone();
        tokio::spawn(async move {
            let result = outcome.await.into_result();
            send_reply(
                &publisher,
                &topics,
                &msg,
                &reply_payload(result, transaction),
            );
        });
    }
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

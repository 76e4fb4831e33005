//! The rules task: MQTT messages and hold timers in, intents to the store and events out.

use super::engine::{Engine, Firing, Outcome};
use crate::mqtt::Incoming;
use crate::state::{Event, EventName};
use crate::store::StoreHandle;
use crate::tasks::Tasks;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// Rule events join the store's events, so they reach `B/events` and the SSE stream alike.
async fn publish_event(store: &StoreHandle, name: EventName, fields: Value) {
    store.event(Event::new(name, fields)).await;
}

/// Runs until `tasks.input.stop` or until the ingress closes the channel. Each firing's
/// outcome is awaited on `tasks.replies`, which the stop order waits for.
pub async fn run(
    mut engine: Engine,
    mut incoming: mpsc::Receiver<Incoming>,
    store: StoreHandle,
    tasks: Tasks,
) {
    let shutdown = tasks.input.stop.clone();
    tracing::info!(rules = engine.rules().len(), filters = ?engine.filters(), "bridge rules running");
    loop {
        // A disabled branch's future is still built: give it a harmless far deadline.
        let deadline = engine.next_deadline();
        let far = Instant::now() + Duration::from_secs(86_400);
        let outcomes = tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = incoming.recv() => match msg {
                Some(msg) => engine.on_message(&msg.topic, &msg.payload, Instant::now()),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                engine.on_timer(Instant::now())
            }
        };
        for outcome in outcomes {
            handle(outcome, &store, &tasks.replies).await;
        }
    }
    tracing::debug!("bridge rules stopped");
}

async fn handle(outcome: Outcome, store: &StoreHandle, replies: &TaskTracker) {
    match outcome {
        Outcome::Fired(firing) => submit(firing, store, replies).await,
        Outcome::HoldStarted {
            rule,
            topic,
            hold,
            deadline,
        } => {
            tracing::info!(rule, topic, hold = %humantime::format_duration(hold), "rule condition true; holding before firing");
            let left = deadline.saturating_duration_since(Instant::now());
            publish_event(
                store,
                EventName::RuleHoldStarted,
                json!({
                    "rule": rule,
                    "topic": topic,
                    "hold_ms": hold.as_millis() as u64,
                    "fires_at": humantime::format_rfc3339_millis(std::time::SystemTime::now() + left).to_string(),
                }),
            )
            .await;
        }
        Outcome::HoldCancelled { rule, topic, held } => {
            tracing::info!(rule, topic, held = %humantime::format_duration(held), "rule condition false within its hold; firing cancelled");
            publish_event(
                store,
                EventName::RuleHoldCancelled,
                json!({
                    "rule": rule,
                    "topic": topic,
                    "held_ms": held.as_millis() as u64,
                }),
            )
            .await;
        }
        Outcome::Rearmed { rule, topic } => {
            tracing::debug!(rule, topic, "rule condition false; re-armed");
        }
    }
}

/// Enqueues the intent in order (so two firings land in the order they fired), then awaits the
/// durable answer on its own task so that fsync never delays other rules or timers.
async fn submit(firing: Firing, store: &StoreHandle, replies: &TaskTracker) {
    let Firing {
        rule,
        topic,
        action,
        intent,
    } = firing;
    let outcome =
        crate::command::submit(store, intent, crate::command::Source::Rule(rule.clone())).await;
    let store = store.clone();
    replies.spawn(async move {
        let result = outcome.await;
        let action_json = serde_json::to_value(&action).unwrap_or(Value::Null);
        match result {
            Ok(accepted) => {
                tracing::info!(rule, topic, action = %action_json, result = %accepted, "rule fired");
                publish_event(
                    &store,
                    EventName::RuleFired,
                    json!({ "rule": rule, "topic": topic, "action": action_json, "result": accepted }),
                ).await;
            }
            Err(error) => {
                tracing::warn!(rule, topic, action = %action_json, %error, "rule matched but could not act");
                publish_event(
                    &store,
                    EventName::RuleFailed,
                    json!({ "rule": rule, "topic": topic, "action": action_json, "error": error.to_string() }),
                )
                .await;
            }
        }
    });
}

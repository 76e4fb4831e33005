//! The one seam between schedules and the command path: a firing is an intent like any
//! MQTT/REST command or rule firing (same validation, acknowledged only once durable).

use crate::command::{self, Source};
use crate::state::Intent;
use crate::store::StoreHandle;
use serde_json::Value;
use std::future::Future;

/// Queues `intent` in order and returns its durable outcome: `Ok(reply JSON)` or `Err(reason)`.
pub async fn submit(
    store: &StoreHandle,
    intent: Intent,
    source: Source,
) -> impl Future<Output = Result<Value, String>> + Send + 'static {
    let outcome = command::submit(store, intent, source).await;
    async move { outcome.await.into_result() }
}

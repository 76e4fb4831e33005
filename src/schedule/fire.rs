//! The one seam between schedules and the command path: a firing is an intent like any
//! MQTT/REST command or rule firing (same validation, acknowledged only once durable).

use crate::command::{self, CommandError, Source};
use crate::state::Intent;
use crate::store::StoreHandle;
use serde_json::Value;
use std::future::Future;

/// Queues `intent` in order and returns its durable outcome: `Ok(reply JSON)` or why not.
pub async fn submit(
    store: &StoreHandle,
    intent: Intent,
    source: Source,
) -> impl Future<Output = Result<Value, CommandError>> + Send + 'static {
    command::submit(store, intent, source).await
}

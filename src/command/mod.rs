//! Operator commands, whatever way they come in: the grammar ([`parse`]), the [`Target`] a
//! command is for, the port-config parser, the reply shape ([`reply_payload`]) and the one path
//! to the store ([`submit`]). Protocol-neutral: nothing here knows MQTT topics or HTTP routes.
//!
//! A way in (MQTT `B/…/set`, `POST /api/…`, a bridge rule, a schedule, a Sparkplug NCMD/DCMD
//! write) does three things:
//! 1. map its input to a [`Target`] and the payload bytes (MQTT: `Topics::parse_command`;
//!    REST: the route; rules: the action kind);
//! 2. [`parse`]`(&target, payload)` → [`Parsed`]: the intent or the [`PayloadError`], and the
//!    caller's `transaction` to echo;
//! 3. [`submit`] the intent with its [`Source`] (`mqtt`, `rest`, `rule:<name>` …) and answer
//!    with [`reply_payload`] once the outcome is durable.
//!
//! Every way in thus validates and words its errors the same way: every "no" is a
//! [`CommandError`] (payload, state-machine refusal, store, or the way in's own limits).

mod error;
mod parse;
mod payload_error;
mod port;
mod reply;
mod source;

/// Why an intent was refused (the state machine decides; every way in words it the same).
pub use crate::state::Refusal;
pub use error::CommandError;
pub use parse::{
    check_profile, example, parse, Parsed, MAX_APP_REF_BYTES, MAX_COMMAND_BYTES, MAX_PORTS,
    MAX_PORT_LABEL_BYTES, MAX_PORT_TEXT_BYTES, MAX_PROFILE_BYTES,
};
pub use payload_error::{PayloadError, TextError, TextField};
pub use port::{parse_port, PortError};
pub use reply::reply_payload;
pub use source::Source;

use crate::state::Intent;
use crate::store::StoreHandle;
use serde_json::Value;

/// What a command is for; each has its own payload grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The local profile override.
    Profile,
    /// One app, by display name, UUID or topic level (resolved when the intent applies).
    App(String),
    /// The device (reboot, shutdown, …, or cancelling a queued one).
    Device,
    /// Radio silence.
    Radio,
    /// The network port override.
    Network,
}

/// Queues a parsed intent at the store (in arrival order) and returns a future for its durable
/// outcome (the accepted JSON, or why not), so the caller can go on reading while the store
/// commits in batches.
pub async fn submit(
    store: &StoreHandle,
    intent: Intent,
    source: Source,
) -> impl std::future::Future<Output = Result<Value, CommandError>> + Send + 'static {
    let outcome = store.intent(intent, source.to_string()).await;
    async move { CommandError::outcome(outcome.await) }
}

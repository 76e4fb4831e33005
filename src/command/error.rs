//! Why a command was not taken, whichever way it came in: one enum over every stage that can say
//! no (the topic, the payload, the way in's own limits, the state machine, the store), with one
//! `Display` for the reply's `error`. `operator::api::command_status` maps it to an HTTP status;
//! [`reply_payload`](super::reply_payload) to the reply JSON.

use super::PayloadError;
use crate::state::Refusal;
use crate::store::{IntentOutcome, NotStored};
use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum CommandError {
    /// An MQTT message under the base topic on no command topic.
    NotACommandTopic {
        topic: String,
        /// The closest command topic.
        did_you_mean: String,
        base: String,
    },
    /// A retained MQTT command (it would fire again on every reconnect); the copy was deleted.
    Retained,
    /// The payload does not parse for its target.
    Payload(PayloadError),
    /// The sender's MQTT lane already holds `waiting` commands.
    Busy { waiting: usize },
    /// The state machine refused the intent.
    Refused(Refusal),
    /// The state machine would take it, but it was not stored.
    NotStored(NotStored),
}

impl CommandError {
    /// A store outcome as the reply's result: the accepted JSON, or why not.
    pub fn outcome(outcome: IntentOutcome) -> Result<Value, CommandError> {
        match outcome {
            IntentOutcome::Accepted(v) => Ok(v),
            IntentOutcome::Rejected(refusal) => Err(CommandError::Refused(refusal)),
            IntentOutcome::Failed(why) => Err(CommandError::NotStored(why)),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::NotACommandTopic {
                topic,
                did_you_mean,
                base,
            } => write!(
                f,
                "'{topic}' is not a command topic; did you mean {did_you_mean}? Commands go to {base}/profile/set, {base}/device/set, {base}/radio/set, {base}/network/set or {base}/app/<name or uuid>/set"
            ),
            CommandError::Retained => write!(
                f,
                "retained commands are refused (they would fire again on every reconnect); publish with retain=false. The retained copy was deleted"
            ),
            CommandError::Payload(e) => e.fmt(f),
            CommandError::Busy { waiting } => write!(
                f,
                "busy: {waiting} commands from this sender (same topic, or same MQTT 5 response topic) are already waiting for the store; this one was not accepted, send it again later"
            ),
            CommandError::Refused(r) => r.fmt(f),
            CommandError::NotStored(n) => n.fmt(f),
        }
    }
}

impl std::error::Error for CommandError {}

impl From<PayloadError> for CommandError {
    fn from(e: PayloadError) -> Self {
        CommandError::Payload(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the README quotes (`busy: ... send it again later`, `not accepted: the store
    /// cannot write: ...`).
    #[test]
    fn wording_the_readme_quotes() {
        let busy = CommandError::Busy { waiting: 25_000 }.to_string();
        assert!(
            busy.starts_with("busy: 25000 commands from this sender")
                && busy.ends_with("send it again later"),
            "{busy}"
        );
        let read_only = CommandError::NotStored(NotStored::ReadOnly {
            reason: "the disk is full".into(),
        });
        assert_eq!(
            read_only.to_string(),
            "not accepted: the store cannot write: the disk is full"
        );
        assert_eq!(
            CommandError::NotStored(NotStored::ShuttingDown).to_string(),
            "not accepted: the gateway is shutting down"
        );
        assert_eq!(
            CommandError::outcome(IntentOutcome::Rejected(Refusal::NothingToCancelDevice)),
            Err(CommandError::Refused(Refusal::NothingToCancelDevice))
        );
    }
}

//! What can happen to the state: the `Input` trait (each input with its own reply type),
//! operator intents, the clock and announcements. EVE's requests are in `poll`.

use super::machine::{Fx, State};
use super::model::{AppAction, AppTarget, BootChoice, CommandId, DeviceAction, NetworkPort, Now};
use serde::Serialize;
use serde_json::Value;

/// An operator's wish, from MQTT, REST or a rule; `source` says which.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    SetProfile {
        profile: String,
        /// Take a name outside `[[profiles]]` (one only the controller knows).
        force: bool,
    },
    AppCommand {
        app: String,
        action: AppAction,
    },
    SetBoot {
        app: String,
        choice: BootChoice,
    },
    CancelApp {
        app: String,
    },
    DeviceCommand {
        action: DeviceAction,
    },
    /// `id: None` withdraws every device command EVE has not completed.
    CancelDevice {
        id: Option<CommandId>,
    },
    SetRadio {
        radio_silence: bool,
    },
    /// An empty list reverts to the controller's network config.
    SetNetwork {
        ports: Vec<NetworkPort>,
    },
}

/// Where an input comes from. The store queues EVE's requests ahead of the rest and, while it
/// cannot write, treats each origin its own way (see `store::actor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An operator's intent ([`Submission`]): MQTT, REST, a rule, a schedule, Sparkplug.
    Operator,
    /// A request from EVE (one type per LPS endpoint, in [`super::poll`]).
    Eve,
    /// The store's clock ([`Tick`]).
    Clock,
    /// A fact from outside the state ([`Announce`]).
    Outside,
}

/// Something `apply` takes, typed by the reply it gets: each kind of input has a reply type of
/// its own, so whoever submits one can only get that reply back.
pub trait Input: Clone + Send + 'static {
    type Reply: std::fmt::Debug + Send + 'static;
    const ORIGIN: Origin;
    /// The transition. Only `apply` calls it: only `apply` makes an [`Fx`].
    fn run(self, state: &mut State, now: Now, fx: &mut Fx) -> Self::Reply;
}

/// An operator's intent as submitted, with who sent it (`source`, e.g. `mqtt`, `rule:ups`).
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub intent: Intent,
    pub source: String,
}

/// The answer to a [`Submission`].
#[derive(Debug, Clone, PartialEq)]
pub enum IntentReply {
    Accepted(Accepted),
    /// The intent was refused and changed nothing; its `Display` says what was wrong and what
    /// would be right.
    Rejected(super::Refusal),
}

impl Input for Submission {
    type Reply = IntentReply;
    const ORIGIN: Origin = Origin::Operator;
    fn run(self, state: &mut State, now: Now, fx: &mut Fx) -> IntentReply {
        state.intent(self.intent, &self.source, now, fx)
    }
}

/// Periodic: lets timers (EVE offline, profile settling) fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick;

/// Something that happened outside the state (a rule fired, a subscriber lost messages, the
/// store turned read-only): changes nothing, and goes out like every state event.
#[derive(Debug, Clone, PartialEq)]
pub struct Announce(pub super::Event);

/// A command as its reply names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CommandRef {
    pub id: CommandId,
    #[serde(serialize_with = "super::model::u64_string::serialize")]
    pub timestamp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelledRef {
    pub id: CommandId,
    #[serde(serialize_with = "super::model::u64_string::serialize")]
    pub timestamp: u64,
    /// EVE got it in a 200 before the cancel, so it may act on it anyway.
    pub may_have_been_received: bool,
}

/// The answer to an accepted intent.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Accepted {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancelled: Vec<CancelledRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One app command as EVE should receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCommandOut {
    pub app: AppTarget,
    pub timestamp: u64,
    pub action: AppAction,
}

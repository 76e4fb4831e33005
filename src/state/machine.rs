//! The state and the one function that changes it. Pure: no I/O, no clock reads, no async.

use super::effect::{Effect, Event, EventName, Key, StateTopic};
use super::input::{Announce, Input, Origin, Tick};
use super::model::{Command, CommandId, Desired, EveLink, Lifecycle, Now, Reports, StoreStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Limits `apply` needs; set from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub eve_offline_after_ms: u64,
    pub keep_finished_commands: usize,
    /// A profile switch is settled after this long without transitions (`[profile_switch]`).
    pub settle_quiet_ms: u64,
    /// ... or unsettled after this long.
    pub settle_timeout_ms: u64,
    /// `[[profiles]] apps`: the apps each profile should run, where the config says.
    pub profile_apps: std::sync::Arc<BTreeMap<String, Vec<String>>>,
    /// `[[profiles]]` names: when any are configured, a profile intent must name one (or force).
    pub profiles: std::sync::Arc<[String]>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            eve_offline_after_ms: 150_000,
            keep_finished_commands: 500,
            settle_quiet_ms: 30_000,
            settle_timeout_ms: 600_000,
            profile_apps: Default::default(),
            profiles: Default::default(),
        }
    }
}

/// Counters and desired state persisted together under `Key::Meta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Meta {
    pub desired: Desired,
    /// The last command timestamp ever issued (Unix ns).
    pub last_timestamp: u64,
    pub next_id: CommandId,
    /// Wall clock of EVE's last request as last persisted (every [`LAST_SEEN_EVERY_MS`]), so
    /// `last_seen` survives a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eve_last_seen_ms: Option<u64>,
}

/// How often a poll refreshes `last_seen` on `B/eve/state` (and on disk): EVE polls radio every
/// 5 s and the rest every minute, so one update per poll would flood subscribers.
pub const LAST_SEEN_EVERY_MS: u64 = 30_000;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    pub meta: Meta,
    pub commands: super::commands::Commands,
    /// Ids of the finished commands in `commands`, oldest first (ids grow with time): `prune`
    /// drops from its front instead of scanning the whole log on every apply. Kept by `finish`,
    /// `prune` and `restore_command`, the only places a command becomes or stops being finished.
    pub(super) finished: BTreeSet<CommandId>,
    pub reports: Reports,
    pub eve: EveLink,
    pub limits: Limits,
    /// Set by the store actor (not by `apply`): whether writes are taken.
    pub store: StoreStatus,
    /// A profile switch being watched until the apps settle (in memory only).
    pub settle: Option<super::settle::SettleWatch>,
}

/// The result of one `apply`: the answer for whoever asked (typed by the input), and what the
/// world must do.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied<R> {
    pub reply: R,
    pub effects: Vec<Effect>,
}

/// Collects effects while a transition runs. Only `apply` makes one, so only `apply` can run
/// an [`Input`]'s transition.
#[derive(Debug)]
pub struct Fx {
    pub(super) effects: Vec<Effect>,
}

impl Fx {
    pub fn persist(&mut self, key: Key) {
        if !self.effects.contains(&Effect::Persist(key)) {
            self.effects.push(Effect::Persist(key));
        }
    }
    pub fn publish(&mut self, topic: StateTopic) {
        if !self.effects.contains(&Effect::Publish(topic)) {
            self.effects.push(Effect::Publish(topic));
        }
    }
    pub fn event(&mut self, event: EventName, data: serde_json::Value) {
        self.effects.push(Effect::Event(Event::new(event, data)));
    }
    pub fn signal(&mut self, endpoint: super::effect::Endpoint) {
        if !self.effects.contains(&Effect::Signal(endpoint)) {
            self.effects.push(Effect::Signal(endpoint));
        }
    }
}

/// The only place state changes.
pub fn apply<I: Input>(state: &mut State, input: I, now: Now) -> Applied<I::Reply> {
    let mut fx = Fx {
        effects: Vec::new(),
    };
    // Every request shows EVE alive, whatever it asks.
    if I::ORIGIN == Origin::Eve {
        state.touch_eve(now, &mut fx);
    }
    let reply = input.run(state, now, &mut fx);
    Applied {
        reply,
        effects: fx.effects,
    }
}

impl Input for Tick {
    type Reply = ();
    const ORIGIN: Origin = Origin::Clock;
    fn run(self, state: &mut State, now: Now, fx: &mut Fx) {
        state.check_eve_offline(now, fx);
        state.check_settle(now, fx);
    }
}

impl Input for Announce {
    type Reply = ();
    const ORIGIN: Origin = Origin::Outside;
    fn run(self, _state: &mut State, _now: Now, fx: &mut Fx) {
        fx.effects.push(Effect::Event(self.0));
    }
}

impl State {
    pub fn new(limits: Limits) -> State {
        State {
            limits,
            meta: Meta {
                next_id: 1,
                ..Meta::default()
            },
            ..State::default()
        }
    }

    /// `max(now, last + 1)`: unique and increasing even when the wall clock steps back.
    pub(super) fn next_timestamp(&mut self, now: Now) -> u64 {
        let ts = now.unix_ns.max(self.meta.last_timestamp.saturating_add(1));
        self.meta.last_timestamp = ts;
        ts
    }

    /// Keeps future timestamps above anything EVE has already seen (lost store, wrong clock).
    pub(super) fn note_eve_timestamp(&mut self, seen: u64, fx: &mut Fx) {
        if seen > self.meta.last_timestamp {
            self.meta.last_timestamp = seen;
            fx.persist(Key::Meta);
        }
    }

    pub(super) fn next_command_id(&mut self) -> CommandId {
        let id = self.meta.next_id.max(1);
        self.meta.next_id = id + 1;
        id
    }

    /// Moves an open command to a final lifecycle and reports it.
    pub(super) fn finish(&mut self, id: CommandId, to: Lifecycle, now: Now, fx: &mut Fx) {
        let Some(cmd) = self.commands.get_mut(&id) else {
            return;
        };
        if !cmd.lifecycle.is_open() {
            return;
        }
        let was_delivered = cmd.lifecycle.was_delivered();
        cmd.lifecycle = to;
        cmd.finished_at_ms = Some(now.unix_ms());
        self.finished.insert(id);
        let mut data = command_event_data(cmd);
        if to == Lifecycle::Cancelled {
            data["may_have_been_received"] = json!(was_delivered);
        }
        fx.event(lifecycle_event(to), data);
        fx.persist(Key::Command(id));
        fx.publish(publish_topic_for(cmd));
    }

    pub(super) fn deliver(&mut self, id: CommandId, now: Now, fx: &mut Fx) {
        let Some(cmd) = self.commands.get_mut(&id) else {
            return;
        };
        if cmd.lifecycle == Lifecycle::Accepted {
            cmd.lifecycle = Lifecycle::Delivered;
            cmd.delivered_at_ms = Some(now.unix_ms());
            fx.event(EventName::CommandDelivered, command_event_data(cmd));
            fx.persist(Key::Command(id));
            fx.publish(publish_topic_for(cmd));
        }
        self.count_delivery(id, now, fx);
    }

    /// Drops the oldest finished commands beyond the configured history; returns how many
    /// commands it looked at, which is how many it dropped.
    pub(super) fn prune(&mut self, fx: &mut Fx) -> usize {
        let excess = self
            .finished
            .len()
            .saturating_sub(self.limits.keep_finished_commands);
        for _ in 0..excess {
            if let Some(id) = self.finished.pop_first() {
                self.commands.remove(&id);
                fx.persist(Key::Command(id));
            }
        }
        excess
    }

    /// A command read back from the store (start-up), indexed like one that ran here.
    pub fn restore_command(&mut self, cmd: Command) {
        if cmd.lifecycle.is_open() {
            self.finished.remove(&cmd.id);
        } else {
            self.finished.insert(cmd.id);
        }
        self.commands.insert(cmd.id, cmd);
    }

    /// Ids of the finished commands, oldest first (for checks of the index).
    pub fn finished_ids(&self) -> impl Iterator<Item = CommandId> + '_ {
        self.finished.iter().copied()
    }

    fn touch_eve(&mut self, now: Now, fx: &mut Fx) {
        self.eve.last_seen_ms = Some(now.unix_ms());
        self.eve.last_seen_mono_ms = Some(now.mono_ms);
        let came_online = !self.eve.online;
        if came_online {
            self.eve.online = true;
            fx.event(EventName::EveOnline, json!({}));
        }
        let due = self
            .eve
            .published_mono_ms
            .is_none_or(|at| now.mono_ms.saturating_sub(at) >= LAST_SEEN_EVERY_MS);
        if came_online || due {
            self.eve.published_mono_ms = Some(now.mono_ms);
            self.meta.eve_last_seen_ms = Some(now.unix_ms());
            fx.persist(Key::Meta);
            fx.publish(StateTopic::Eve);
        }
    }

    /// EVE's last request (wall clock, Unix ms): this run's, else the last one persisted.
    pub fn eve_last_seen_ms(&self) -> Option<u64> {
        self.eve.last_seen_ms.or(self.meta.eve_last_seen_ms)
    }

    fn check_eve_offline(&mut self, now: Now, fx: &mut Fx) {
        let Some(seen) = self.eve.last_seen_mono_ms else {
            return;
        };
        if self.eve.online && now.mono_ms.saturating_sub(seen) > self.limits.eve_offline_after_ms {
            self.eve.online = false;
            let last_seen = self.eve_last_seen_ms().map(super::model::rfc3339_ms);
            fx.event(EventName::EveOffline, json!({ "last_seen": last_seen }));
            fx.publish(StateTopic::Eve);
            self.stall_delivered(last_seen.as_deref().unwrap_or("never"), fx);
        }
    }

    /// Open commands of one kind, oldest first.
    pub fn open_device_commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.values().filter(|c| {
            c.lifecycle.is_open() && matches!(c.kind, super::model::CommandKind::Device { .. })
        })
    }

    pub fn open_app_commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.values().filter(|c| {
            c.lifecycle.is_open() && matches!(c.kind, super::model::CommandKind::App { .. })
        })
    }
}

fn lifecycle_event(to: Lifecycle) -> EventName {
    match to {
        Lifecycle::Accepted => EventName::CommandAccepted,
        Lifecycle::Delivered => EventName::CommandDelivered,
        Lifecycle::Stalled => EventName::CommandStalled,
        Lifecycle::Completed => EventName::CommandCompleted,
        Lifecycle::Superseded => EventName::CommandSuperseded,
        Lifecycle::Cancelled => EventName::CommandCancelled,
    }
}

pub(super) fn publish_topic_for(cmd: &Command) -> StateTopic {
    match cmd.kind {
        super::model::CommandKind::App { .. } => StateTopic::Apps,
        super::model::CommandKind::Device { .. } => StateTopic::Device,
    }
}

/// The JSON every command event carries.
pub(super) fn command_event_data(cmd: &Command) -> serde_json::Value {
    serde_json::to_value(cmd).unwrap_or_else(|_| json!({ "id": cmd.id }))
}

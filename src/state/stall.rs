//! Commands that never finish: `stalled`, and the likely reason the gateway can see.
//!
//! EVE says nothing when it ignores an answer (a token that differs from its
//! `profile_server_token`, a restart of an app the profile halted), so the gateway infers it:
//! a command EVE received [`STALL_AFTER_DELIVERIES`] times over at least [`STALL_MIN_SPAN_MS`]
//! without reporting it done is `stalled`. It stays open and served (it completes if EVE acts on
//! it later) but is no longer signalled.

use super::effect::{EventName, Key};
use super::machine::{command_event_data, Fx, State};
use super::model::{AppAction, AppTarget, Command, CommandKind, Lifecycle, Now, Outcome};
use super::resolve::find_report;

/// Deliveries before a command counts as stalled: the first (often on a signal) plus two polls.
pub const STALL_AFTER_DELIVERIES: u32 = 3;
/// EVE's shortest poll interval is 3 s, so three deliveries within 6 s are a burst of signalled
/// polls, not two poll intervals.
pub const STALL_MIN_SPAN_MS: u64 = 6_000;

impl State {
    /// The display name of the target if EVE's last report has it HALTED.
    pub fn halted_app(&self, target: &AppTarget) -> Option<String> {
        let apps = self.reports.apps.as_deref()?;
        let report = find_report(target, apps)?;
        (report.info.get("state").and_then(|s| s.as_str()) == Some("HALTED"))
            .then(|| report.name.clone())
    }

    /// What a restart of a halted app is told at acceptance (EVE ignores it).
    pub(super) fn halted_note(&self, target: &AppTarget, action: AppAction) -> Option<String> {
        if action != AppAction::Restart {
            return None;
        }
        self.halted_app(target).map(|name| {
            format!(
                "EVE reports '{name}' HALTED: EVE does not restart an app the current profile halted, so this command completes only once a profile that runs the app is active"
            )
        })
    }

    /// Whether EVE has ever acted on one of our answers (so its token matches ours).
    fn eve_ever_acted(&self) -> bool {
        let desired = &self.meta.desired;
        self.commands
            .values()
            .any(|c| c.lifecycle == Lifecycle::Completed)
            || self.reports.device_last_cmd_timestamp != 0
            || self
                .reports
                .apps
                .iter()
                .flat_map(|apps| apps.iter())
                .any(|a| a.last_cmd_timestamp != 0)
            || [
                &desired.radio.outcome,
                &desired.boot.outcome,
                &desired.network.outcome,
            ]
            .contains(&&Outcome::Applied)
    }

    /// The likeliest reason EVE does not finish `cmd`, from what the gateway can see.
    pub fn stall_reason(&self, cmd: &Command) -> String {
        if let CommandKind::App {
            app,
            action: AppAction::Restart,
        } = &cmd.kind
        {
            if let Some(name) = self.halted_app(app) {
                return format!(
                    "EVE reports '{name}' HALTED: EVE does not restart an app the current profile halted; switch to a profile that runs it first"
                );
            }
        }
        if !self.eve_ever_acted() {
            return "EVE has never acted on an answer from this gateway (no command completed, no setting applied, so the profile it fetched may not be applied either): EVE drops every answer whose token differs from its profile_server_token; check that lps.server_token equals the controller's profile_server_token".into();
        }
        format!(
            "EVE received it {} times without reporting it done",
            cmd.deliveries
        )
    }

    /// Counts one more delivery of an open command and stalls it when the rule says so.
    pub(super) fn count_delivery(&mut self, id: u64, now: Now, fx: &mut Fx) {
        let Some(cmd) = self.commands.get_mut(&id) else {
            return;
        };
        cmd.deliveries = cmd.deliveries.saturating_add(1);
        fx.persist(Key::Command(id));
        let span = cmd
            .delivered_at_ms
            .map_or(0, |first| now.unix_ms().saturating_sub(first));
        if cmd.lifecycle == Lifecycle::Delivered
            && cmd.deliveries >= STALL_AFTER_DELIVERIES
            && span >= STALL_MIN_SPAN_MS
        {
            let reason = self.stall_reason(&self.commands[&id]);
            self.stall(id, reason, fx);
        }
    }

    /// EVE went offline: what it had received and not finished waits on it.
    pub(super) fn stall_delivered(&mut self, last_seen: &str, fx: &mut Fx) {
        let ids: Vec<u64> = self
            .commands
            .values()
            .filter(|c| c.lifecycle == Lifecycle::Delivered)
            .map(|c| c.id)
            .collect();
        for id in ids {
            self.stall(id, format!("EVE has not polled since {last_seen}"), fx);
        }
    }

    fn stall(&mut self, id: u64, reason: String, fx: &mut Fx) {
        let Some(cmd) = self.commands.get_mut(&id) else {
            return;
        };
        cmd.lifecycle = Lifecycle::Stalled;
        cmd.stalled_reason = Some(reason);
        fx.event(EventName::CommandStalled, command_event_data(cmd));
        fx.persist(Key::Command(id));
        fx.publish(super::machine::publish_topic_for(cmd));
    }
}

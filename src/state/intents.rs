//! Operator intents: validate, resolve, record, answer.

use super::effect::{Endpoint, EventName, Key, StateTopic};
use super::input::{Accepted, CancelledRef, CommandRef, Intent, IntentReply};
use super::machine::{command_event_data, Fx, State};
use super::model::{
    AppAction, AppTarget, BootChoice, BootEntry, Command, CommandId, CommandKind, DeviceAction,
    Lifecycle, NetworkPort, Now, Outcome, Serve,
};
use super::refusal::Refusal;
use super::resolve::{resolve_app, Resolved};
use serde_json::json;
use std::collections::BTreeSet;

impl State {
    pub(super) fn intent(
        &mut self,
        intent: Intent,
        source: &str,
        now: Now,
        fx: &mut Fx,
    ) -> IntentReply {
        let result = match intent {
            Intent::SetProfile { profile, force } => {
                self.set_profile(profile, force, source, now, fx)
            }
            Intent::AppCommand { app, action } => self.app_command(&app, action, source, now, fx),
            Intent::SetBoot { app, choice } => self.set_boot(&app, choice, source, fx),
            Intent::CancelApp { app } => self.cancel_app(&app, now, fx),
            Intent::DeviceCommand { action } => Ok(self.device_command(action, source, now, fx)),
            Intent::CancelDevice { id } => self.cancel_device(id, now, fx),
            Intent::SetRadio { radio_silence } => Ok(self.set_radio(radio_silence, source, fx)),
            Intent::SetNetwork { ports } => self.set_network(ports, source, fx),
        };
        match result {
            Ok(accepted) => {
                self.prune(fx);
                IntentReply::Accepted(accepted)
            }
            Err(reason) => IntentReply::Rejected(reason),
        }
    }

    fn resolve(&self, app: &str) -> Result<Resolved, Refusal> {
        resolve_app(app, self.reports.apps.as_deref())
    }

    fn new_command(
        &mut self,
        kind: CommandKind,
        source: &str,
        now: Now,
        fx: &mut Fx,
    ) -> CommandRef {
        let timestamp = self.next_timestamp(now);
        let id = self.next_command_id();
        let cmd = Command {
            id,
            timestamp,
            kind,
            lifecycle: Lifecycle::Accepted,
            source: source.to_string(),
            accepted_at_ms: now.unix_ms(),
            delivered_at_ms: None,
            finished_at_ms: None,
            deliveries: 0,
            stalled_reason: None,
        };
        fx.event(EventName::CommandAccepted, command_event_data(&cmd));
        self.commands.insert(id, cmd);
        fx.persist(Key::Meta);
        fx.persist(Key::Command(id));
        CommandRef { id, timestamp }
    }

    /// Checks a profile name against `[[profiles]]`: a refusal for a misspelling, or a note
    /// when the name could not be checked or was forced.
    fn check_profile(&self, profile: &str, force: bool) -> Result<Option<String>, Refusal> {
        let known = &self.limits.profiles;
        if profile.is_empty() || known.iter().any(|p| p == profile) {
            return Ok(None);
        }
        if known.is_empty() {
            return Ok(Some(
                "no [[profiles]] are configured, so the profile name is not checked; EVE's controller must know it".into(),
            ));
        }
        if force {
            return Ok(Some(format!(
                "'{profile}' is not in [[profiles]]; sent as given (force), EVE's controller must know it"
            )));
        }
        Err(Refusal::UnknownProfile {
            profile: profile.to_string(),
            known: known.to_vec(),
        })
    }

    fn set_profile(
        &mut self,
        profile: String,
        force: bool,
        source: &str,
        now: Now,
        fx: &mut Fx,
    ) -> Result<Accepted, Refusal> {
        let note = self.check_profile(&profile, force)?;
        let desired = &mut self.meta.desired.profile;
        let accepted = Accepted {
            desired: Some(json!({ "profile": profile })),
            note,
            ..Accepted::default()
        };
        if desired.name == profile && desired.set_at_ms != 0 {
            return Ok(Accepted {
                note: Some("the profile was already set to this value".into()),
                ..accepted
            });
        }
        desired.name = profile.clone();
        desired.fetched = false;
        desired.set_at_ms = now.unix_ms();
        self.cancel_settle();
        fx.event(
            EventName::ProfileSet,
            json!({ "profile": profile, "source": source }),
        );
        fx.persist(Key::Meta);
        fx.publish(StateTopic::Profile);
        fx.signal(Endpoint::LocalProfile);
        Ok(accepted)
    }

    fn open_app_command_for(&self, key: &str) -> Option<CommandId> {
        self.open_app_commands()
            .find(|c| matches!(&c.kind, CommandKind::App { app, .. } if app.key() == key))
            .map(|c| c.id)
    }

    fn app_command(
        &mut self,
        app: &str,
        action: AppAction,
        source: &str,
        now: Now,
        fx: &mut Fx,
    ) -> Result<Accepted, Refusal> {
        let Resolved { target, note } = self.resolve(app)?;
        let note = note.or_else(|| self.halted_note(&target, action));
        // EVE keeps one command per app: a new one replaces the old.
        if let Some(old) = self.open_app_command_for(&target.key()) {
            self.finish(old, Lifecycle::Superseded, now, fx);
        }
        let command = self.new_command(
            CommandKind::App {
                app: target,
                action,
            },
            source,
            now,
            fx,
        );
        fx.publish(StateTopic::Apps);
        fx.signal(Endpoint::AppInfo);
        Ok(Accepted {
            command: Some(command),
            note,
            ..Accepted::default()
        })
    }

    fn device_command(
        &mut self,
        action: DeviceAction,
        source: &str,
        now: Now,
        fx: &mut Fx,
    ) -> Accepted {
        let ahead = self.open_device_commands().count();
        let command = self.new_command(CommandKind::Device { action }, source, now, fx);
        fx.publish(StateTopic::Device);
        let note = if ahead == 0 {
            fx.signal(Endpoint::DevInfo);
            None
        } else {
            Some(format!(
                "queued: EVE takes device commands one at a time and {ahead} earlier one(s) are not completed yet"
            ))
        };
        Accepted {
            command: Some(command),
            note,
            ..Accepted::default()
        }
    }

    fn cancelled_ref(&self, id: CommandId) -> Option<CancelledRef> {
        self.commands.get(&id).map(|c| CancelledRef {
            id,
            timestamp: c.timestamp,
            may_have_been_received: c.lifecycle.was_delivered(),
        })
    }

    fn cancel_app(&mut self, app: &str, now: Now, fx: &mut Fx) -> Result<Accepted, Refusal> {
        // A command sent before EVE's first report may be keyed by name; try both forms.
        let key = match self.resolve(app) {
            Ok(r) => r.target.key(),
            Err(e) => return Err(e),
        };
        let id = self
            .open_app_command_for(&key)
            .or_else(|| {
                self.open_app_command_for(
                    &AppTarget {
                        id: String::new(),
                        name: app.to_string(),
                    }
                    .key(),
                )
            })
            .ok_or_else(|| Refusal::NothingToCancelApp {
                app: app.to_string(),
            })?;
        let cancelled = self.cancelled_ref(id).into_iter().collect();
        self.finish(id, Lifecycle::Cancelled, now, fx);
        fx.signal(Endpoint::AppInfo);
        Ok(Accepted {
            cancelled,
            ..Accepted::default()
        })
    }

    fn cancel_device(
        &mut self,
        id: Option<CommandId>,
        now: Now,
        fx: &mut Fx,
    ) -> Result<Accepted, Refusal> {
        let open: Vec<CommandId> = self.open_device_commands().map(|c| c.id).collect();
        let targets = match id {
            Some(id) if open.contains(&id) => vec![id],
            Some(id) => return Err(Refusal::DeviceCommandNotOpen { id, open }),
            None if open.is_empty() => return Err(Refusal::NothingToCancelDevice),
            None => open,
        };
        let cancelled: Vec<CancelledRef> = targets
            .iter()
            .filter_map(|id| self.cancelled_ref(*id))
            .collect();
        for id in targets {
            self.finish(id, Lifecycle::Cancelled, now, fx);
        }
        fx.signal(Endpoint::DevInfo);
        Ok(Accepted {
            cancelled,
            ..Accepted::default()
        })
    }

    fn set_boot(
        &mut self,
        app: &str,
        choice: BootChoice,
        source: &str,
        fx: &mut Fx,
    ) -> Result<Accepted, Refusal> {
        let Resolved { target, note } = self.resolve(app)?;
        let boot = &mut self.meta.desired.boot;
        let key = target.key();
        let note = match choice {
            BootChoice::Default => {
                if boot.entries.remove(&key).is_none() {
                    return Ok(Accepted {
                        note: Some(format!(
                            "no boot order override was set for '{}'",
                            target.label()
                        )),
                        desired: Some(json!({ "boot": "default" })),
                        ..Accepted::default()
                    });
                }
                if boot.entries.is_empty() {
                    boot.serve = Serve::Clearing;
                }
                note
            }
            _ => {
                boot.entries.insert(
                    key,
                    BootEntry {
                        app: target.clone(),
                        choice,
                    },
                );
                boot.serve = Serve::Set;
                note
            }
        };
        boot.outcome = Outcome::Pending;
        boot.delivered = false;
        fx.event(
            EventName::BootOrderSet,
            json!({ "app": target, "boot": choice, "source": source }),
        );
        fx.persist(Key::Meta);
        fx.publish(StateTopic::Apps);
        fx.signal(Endpoint::AppBootInfo);
        Ok(Accepted {
            desired: Some(json!({ "app": target, "boot": choice })),
            note,
            ..Accepted::default()
        })
    }

    fn set_radio(&mut self, radio_silence: bool, source: &str, fx: &mut Fx) -> Accepted {
        let radio = &mut self.meta.desired.radio;
        radio.serve = Serve::Set;
        radio.radio_silence = radio_silence;
        radio.outcome = Outcome::Pending;
        radio.delivered = false;
        fx.event(
            EventName::RadioSet,
            json!({ "radio_silence": radio_silence, "source": source }),
        );
        fx.persist(Key::Meta);
        fx.publish(StateTopic::Radio);
        fx.signal(Endpoint::Radio);
        Accepted {
            desired: Some(json!({ "radio_silence": radio_silence })),
            ..Accepted::default()
        }
    }

    /// The logical labels of the ports EVE reported (its running config and port status), or
    /// `None` before EVE's first network report.
    fn reported_ports(&self) -> Option<BTreeSet<String>> {
        let report = self.reports.network.as_ref()?;
        let labels: BTreeSet<String> = ["latest_config", "port_status"]
            .iter()
            .filter_map(|list| report.get(list)?.as_array())
            .flatten()
            .filter_map(|p| p.get("logical_label")?.as_str())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        (!labels.is_empty()).then_some(labels)
    }

    /// Whether EVE reported holding a local override (its `local_config.ports`).
    fn eve_holds_local_override(&self) -> bool {
        self.reports
            .network
            .as_ref()
            .and_then(|r| r.pointer("/local_config/ports")?.as_array())
            .is_some_and(|ports| !ports.is_empty())
    }

    fn set_network(
        &mut self,
        ports: Vec<NetworkPort>,
        source: &str,
        fx: &mut Fx,
    ) -> Result<Accepted, Refusal> {
        // EVE refuses an override naming a port it does not have, a poll later: refuse it now.
        let note = match self.reported_ports() {
            Some(known) => {
                let unknown: Vec<String> = ports
                    .iter()
                    .map(|p| p.logical_label.clone())
                    .filter(|l| !known.contains(l))
                    .collect();
                if !unknown.is_empty() {
                    return Err(Refusal::UnknownPorts {
                        ports: unknown,
                        known: known.into_iter().collect(),
                    });
                }
                None
            }
            None if ports.is_empty() => None,
            None => Some(
                "EVE has not reported its network ports yet, so the port names are not checked; EVE refuses unknown ones (event network_rejected)".to_string(),
            ),
        };
        let holds_override = self.eve_holds_local_override();
        let network = &mut self.meta.desired.network;
        if ports.is_empty() && network.serve == Serve::Unset && !holds_override {
            return Ok(Accepted {
                note: Some(
                    "no local network override was set; the controller's config is in effect"
                        .into(),
                ),
                desired: Some(json!({ "ports": [] })),
                ..Accepted::default()
            });
        }
        let labels: Vec<String> = ports.iter().map(|p| p.logical_label.clone()).collect();
        fx.event(
            EventName::NetworkSet,
            json!({ "ports": labels, "source": source }),
        );
        network.serve = if ports.is_empty() {
            Serve::Clearing
        } else {
            Serve::Set
        };
        network.ports = ports;
        network.outcome = Outcome::Pending;
        network.delivered = false;
        fx.persist(Key::Meta);
        fx.publish(StateTopic::Network);
        fx.signal(Endpoint::Network);
        Ok(Accepted {
            desired: Some(json!({ "ports": labels })),
            note,
            ..Accepted::default()
        })
    }
}

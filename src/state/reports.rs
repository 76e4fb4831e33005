//! EVE's requests: record each report, move command lifecycles, and compute the answer.

use super::effect::{EventName, Key, ReportKind, StateTopic};
use super::input::{AppCommandOut, Input, Origin};
use super::machine::{Fx, State};
use super::model::{
    AppBootReport, AppReport, BootChoice, BootEntry, CommandId, CommandKind, DeviceAction,
    Lifecycle, NetworkPort, Now, Outcome, Serve,
};
use super::poll;
use super::resolve::find_report;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Stores a report if it changed; returns whether it did.
fn store<T: PartialEq>(
    slot: &mut Option<T>,
    value: T,
    kind: ReportKind,
    topic: StateTopic,
    fx: &mut Fx,
) -> bool {
    if slot.as_ref() == Some(&value) {
        return false;
    }
    *slot = Some(value);
    fx.persist(Key::Report(kind));
    fx.publish(topic);
    true
}

impl Input for poll::LocalProfile {
    type Reply = String;
    const ORIGIN: Origin = Origin::Eve;
    fn run(self, state: &mut State, now: Now, fx: &mut Fx) -> String {
        state.profile_request(now, fx)
    }
}

impl Input for poll::Radio {
    type Reply = Option<bool>;
    const ORIGIN: Origin = Origin::Eve;
    fn run(self, state: &mut State, _now: Now, fx: &mut Fx) -> Option<bool> {
        let slot = &mut state.reports.radio;
        store(slot, self.report, ReportKind::Radio, StateTopic::Radio, fx);
        state.radio_request(self.radio_silence, &self.config_error, fx)
    }
}

impl Input for poll::AppInfo {
    type Reply = Vec<AppCommandOut>;
    const ORIGIN: Origin = Origin::Eve;
    fn run(self, state: &mut State, now: Now, fx: &mut Fx) -> Vec<AppCommandOut> {
        state.app_info(self.apps, now, fx)
    }
}

impl Input for poll::AppBootInfo {
    type Reply = Option<Vec<BootEntry>>;
    const ORIGIN: Origin = Origin::Eve;
    fn run(self, state: &mut State, _now: Now, fx: &mut Fx) -> Option<Vec<BootEntry>> {
        state.app_boot_info(self.apps, fx)
    }
}

impl Input for poll::DevInfo {
    type Reply = Option<(u64, DeviceAction)>;
    const ORIGIN: Origin = Origin::Eve;
    fn run(self, state: &mut State, now: Now, fx: &mut Fx) -> Option<(u64, DeviceAction)> {
        state.dev_info(self.last_cmd_timestamp, self.report, now, fx)
    }
}

impl Input for poll::Network {
    type Reply = Option<Vec<NetworkPort>>;
    const ORIGIN: Origin = Origin::Eve;
    fn run(self, state: &mut State, _now: Now, fx: &mut Fx) -> Option<Vec<NetworkPort>> {
        let slot = &mut state.reports.network;
        store(
            slot,
            self.report,
            ReportKind::Network,
            StateTopic::Network,
            fx,
        );
        state.network_request(&self.local_ports, &self.local_error, &self.port_errors, fx)
    }
}

impl Input for poll::Location {
    type Reply = ();
    const ORIGIN: Origin = Origin::Eve;
    fn run(self, state: &mut State, _now: Now, fx: &mut Fx) {
        let slot = &mut state.reports.location;
        store(
            slot,
            self.report,
            ReportKind::Location,
            StateTopic::Location,
            fx,
        );
    }
}

impl Input for poll::Signal {
    type Reply = ();
    const ORIGIN: Origin = Origin::Eve;
    fn run(self, _state: &mut State, _now: Now, _fx: &mut Fx) {}
}

impl State {
    fn profile_request(&mut self, now: Now, fx: &mut Fx) -> String {
        let profile = &mut self.meta.desired.profile;
        if profile.set_at_ms != 0 && !profile.fetched {
            profile.fetched = true;
            fx.event(
                EventName::ProfileDelivered,
                json!({ "profile": profile.name }),
            );
            fx.persist(Key::Meta);
            fx.publish(StateTopic::Profile);
            self.start_settle(now);
        }
        self.meta.desired.profile.name.clone()
    }

    fn radio_request(&mut self, reported: bool, config_error: &str, fx: &mut Fx) -> Option<bool> {
        let radio = &mut self.meta.desired.radio;
        if radio.serve == Serve::Unset {
            return None;
        }
        // The report that travels with the first delivery predates it: judge only later ones.
        if radio.delivered && radio.outcome == Outcome::Pending {
            if !config_error.is_empty() {
                radio.outcome = Outcome::Failed(config_error.to_string());
                fx.event(
                    EventName::RadioFailed,
                    json!({ "radio_silence": radio.radio_silence, "error": config_error }),
                );
            } else if reported == radio.radio_silence {
                radio.outcome = Outcome::Applied;
                fx.event(
                    EventName::RadioApplied,
                    json!({ "radio_silence": radio.radio_silence }),
                );
            }
            if radio.outcome != Outcome::Pending {
                fx.persist(Key::Meta);
                fx.publish(StateTopic::Radio);
            }
        }
        if !radio.delivered {
            radio.delivered = true;
            fx.persist(Key::Meta);
        }
        Some(radio.radio_silence)
    }

    /// Fills in the UUID of commands accepted by name before EVE's first report.
    fn complete_targets(&mut self, apps: &[AppReport], fx: &mut Fx) {
        // Found first, changed after: only a command that changes is copied out of the snapshot.
        let found: Vec<(CommandId, String, String)> = self
            .open_app_commands()
            .filter_map(|cmd| match &cmd.kind {
                CommandKind::App { app, .. } if app.id.is_empty() || app.name.is_empty() => {
                    find_report(app, apps)
                        .map(|r| (cmd.id, r.id.to_ascii_lowercase(), r.name.clone()))
                }
                _ => None,
            })
            .collect();
        for (id, app_id, name) in found {
            if let Some(CommandKind::App { app, .. }) =
                self.commands.get_mut(&id).map(|c| &mut c.kind)
            {
                app.id = app_id;
                app.name = name;
                fx.persist(Key::Command(id));
            }
        }
    }

    fn app_info(&mut self, apps: Vec<AppReport>, now: Now, fx: &mut Fx) -> Vec<AppCommandOut> {
        if let Some(max) = apps.iter().map(|a| a.last_cmd_timestamp).max() {
            self.note_eve_timestamp(max, fx);
        }
        self.complete_targets(&apps, fx);
        let done: Vec<u64> = self
            .open_app_commands()
            .filter(|c| match &c.kind {
                CommandKind::App { app, .. } => {
                    find_report(app, &apps).is_some_and(|r| r.last_cmd_timestamp >= c.timestamp)
                }
                CommandKind::Device { .. } => false,
            })
            .map(|c| c.id)
            .collect();
        for id in done {
            self.finish(id, Lifecycle::Completed, now, fx);
        }
        self.settle_report(&apps, now, fx);
        store(
            &mut self.reports.apps,
            apps.into(),
            ReportKind::Apps,
            StateTopic::Apps,
            fx,
        );
        let open: Vec<(u64, AppCommandOut)> = self
            .open_app_commands()
            .filter_map(|c| match &c.kind {
                CommandKind::App { app, action } => Some((
                    c.id,
                    AppCommandOut {
                        app: app.clone(),
                        timestamp: c.timestamp,
                        action: *action,
                    },
                )),
                CommandKind::Device { .. } => None,
            })
            .collect();
        for (id, _) in &open {
            self.deliver(*id, now, fx);
        }
        self.prune(fx);
        open.into_iter().map(|(_, out)| out).collect()
    }

    fn app_boot_info(&mut self, apps: Vec<AppBootReport>, fx: &mut Fx) -> Option<Vec<BootEntry>> {
        store(
            &mut self.reports.boot,
            apps.clone(),
            ReportKind::Boot,
            StateTopic::Apps,
            fx,
        );
        let boot = &mut self.meta.desired.boot;
        if boot.delivered && boot.outcome == Outcome::Pending {
            let outcome = match boot.serve {
                Serve::Unset => Outcome::Pending,
                Serve::Clearing => {
                    if apps.iter().all(|a| a.source != "BOOT_ORDER_SOURCE_LPS") {
                        boot.serve = Serve::Unset;
                        Outcome::Applied
                    } else {
                        Outcome::Pending
                    }
                }
                Serve::Set => {
                    let reports: Vec<AppReport> = apps
                        .iter()
                        .map(|a| AppReport {
                            id: a.id.clone(),
                            name: a.name.clone(),
                            last_cmd_timestamp: 0,
                            info: Value::Null,
                        })
                        .collect();
                    let all = boot.entries.values().all(|e| {
                        find_report(&e.app, &reports).is_some_and(|r| {
                            let got = apps.iter().find(|a| a.id == r.id && a.name == r.name);
                            got.is_some_and(|a| {
                                a.source == "BOOT_ORDER_SOURCE_LPS"
                                    && a.boot_order == boot_order_name(e.choice)
                            })
                        })
                    });
                    if all {
                        Outcome::Applied
                    } else {
                        Outcome::Pending
                    }
                }
            };
            if outcome == Outcome::Applied {
                boot.outcome = Outcome::Applied;
                let entries: Vec<Value> = boot
                    .entries
                    .values()
                    .map(|e| json!({ "app": e.app, "boot": e.choice }))
                    .collect();
                fx.event(EventName::BootOrderApplied, json!({ "overrides": entries }));
                fx.persist(Key::Meta);
                fx.publish(StateTopic::Apps);
            }
        }
        let reply = match boot.serve {
            Serve::Unset => None,
            Serve::Set => Some(boot.entries.values().cloned().collect()),
            Serve::Clearing => Some(Vec::new()),
        };
        if reply.is_some() && !boot.delivered {
            boot.delivered = true;
            fx.persist(Key::Meta);
        }
        reply
    }

    fn dev_info(
        &mut self,
        last_cmd_timestamp: u64,
        report: Value,
        now: Now,
        fx: &mut Fx,
    ) -> Option<(u64, DeviceAction)> {
        self.note_eve_timestamp(last_cmd_timestamp, fx);
        self.reports.device_last_cmd_timestamp = last_cmd_timestamp;
        store(
            &mut self.reports.device,
            report,
            ReportKind::Device,
            StateTopic::Device,
            fx,
        );
        let done: Vec<u64> = self
            .open_device_commands()
            .filter(|c| c.timestamp <= last_cmd_timestamp)
            .map(|c| c.id)
            .collect();
        for id in done {
            self.finish(id, Lifecycle::Completed, now, fx);
        }
        self.prune(fx);
        // One at a time: only the oldest open command is served.
        let head = self.open_device_commands().next().map(|c| match c.kind {
            CommandKind::Device { action } => Some((c.id, c.timestamp, action)),
            CommandKind::App { .. } => None,
        });
        let (id, ts, action) = head.flatten()?;
        self.deliver(id, now, fx);
        Some((ts, action))
    }

    fn network_request(
        &mut self,
        local_ports: &[String],
        local_error: &str,
        port_errors: &[(String, String)],
        fx: &mut Fx,
    ) -> Option<Vec<NetworkPort>> {
        let network = &mut self.meta.desired.network;
        if network.delivered && network.outcome == Outcome::Pending {
            let wanted: BTreeSet<&str> = network
                .ports
                .iter()
                .map(|p| p.logical_label.as_str())
                .collect();
            let held: BTreeSet<&str> = local_ports.iter().map(String::as_str).collect();
            let refused: Vec<String> = port_errors
                .iter()
                .filter(|(label, err)| wanted.contains(label.as_str()) && !err.is_empty())
                .map(|(label, err)| format!("{label}: {err}"))
                .collect();
            let outcome = if !local_error.is_empty() {
                Outcome::Failed(local_error.to_string())
            } else if !refused.is_empty() {
                Outcome::Failed(refused.join("; "))
            } else if wanted == held {
                Outcome::Applied
            } else {
                Outcome::Pending
            };
            match &outcome {
                Outcome::Pending => {}
                Outcome::Applied => {
                    let reverted = network.serve == Serve::Clearing;
                    if reverted {
                        network.serve = Serve::Unset;
                    }
                    fx.event(
                        EventName::NetworkApplied,
                        json!({ "ports": wanted, "reverted": reverted }),
                    );
                }
                Outcome::Failed(error) => {
                    // Serving it again would only be rejected again on every poll; a 204 leaves
                    // EVE on what it runs now. An operator re-submitting serves it again.
                    let withdrawn = network.serve == Serve::Set;
                    if withdrawn {
                        network.serve = Serve::Unset;
                    }
                    let mut data = json!({ "ports": wanted, "error": error });
                    if withdrawn {
                        data["served"] = json!(false);
                        data["note"] = json!("no longer served; submit again to retry");
                    }
                    fx.event(EventName::NetworkRejected, data);
                }
            }
            if outcome != Outcome::Pending {
                network.outcome = outcome;
                fx.persist(Key::Meta);
                fx.publish(StateTopic::Network);
            }
        }
        let reply = match network.serve {
            Serve::Unset => None,
            Serve::Set => Some(network.ports.clone()),
            Serve::Clearing => Some(Vec::new()),
        };
        if reply.is_some() && !network.delivered {
            network.delivered = true;
            fx.persist(Key::Meta);
        }
        reply
    }
}

pub fn boot_order_name(choice: BootChoice) -> &'static str {
    match choice {
        BootChoice::Usb => "BOOT_ORDER_USB",
        BootChoice::Nousb => "BOOT_ORDER_NOUSB",
        BootChoice::Default => "BOOT_ORDER_UNSPECIFIED",
    }
}

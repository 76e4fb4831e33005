//! App instances: their lifecycle (boot, halt, restart, purge) and the
//! appinfo endpoint (report, command matching, dedupe, completion).

use uuid::Uuid;

use super::node::{Effect, SimState};
use super::options::real;
use super::snapshot::{Endpoint, SimApp, SimAppCommand};
use eve_proto::info::ZSwState;
use eve_proto::profile::{app_command, AppCommand, LocalAppInfo, LocalAppInfoList};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppOpKind {
    Boot,
    Halt,
    Restart,
    Purge,
}

/// An operation in progress; `seq` tells a stale timer from the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AppOp {
    pub kind: AppOpKind,
    pub seq: u64,
}

/// The last command accepted for an app (EVE's `LocalAppCommand`, persisted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AppCmdRecord {
    pub command: i32,
    pub timestamp: u64,
    pub completed: bool,
    /// The operation this command started; it completes when that ends.
    pub op_seq: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) struct App {
    pub id: Uuid,
    pub name: String,
    pub profiles: Vec<String>,
    pub state: ZSwState,
    pub op: Option<AppOp>,
    pub restart_count: u32,
    pub purge_count: u32,
    pub cmd: Option<AppCmdRecord>,
    /// Timestamp of the last completed command, as reported to the LPS.
    pub last_cmd_timestamp: u64,
    /// The controller deleted the app: EVE no longer reports it nor takes commands for it. Kept
    /// in place (not removed from the list) because app operations refer to apps by index.
    pub removed: bool,
}

impl App {
    pub fn new(id: Uuid, name: &str, profiles: &[String]) -> Self {
        App {
            id,
            name: name.to_string(),
            profiles: profiles.to_vec(),
            state: ZSwState::Halted,
            op: None,
            restart_count: 0,
            purge_count: 0,
            cmd: None,
            last_cmd_timestamp: 0,
            removed: false,
        }
    }

    pub fn idle_and_halted(&self) -> bool {
        self.op.is_none() && self.state == ZSwState::Halted
    }
}

/// Why an app command (or boot config entry) was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    UnparsableId(String),
    NoIdentity,
    NotFound,
    SecondForSameApp,
    AlreadyAccepted,
}

/// Parses an `id`/`displayname` pair as EVE does: an unparsable id skips
/// the entry; the nil UUID counts as unset; at least one must be set.
pub(crate) fn parse_app_ref(id: &str, displayname: &str) -> Result<Option<Uuid>, Skip> {
    let uuid = if id.is_empty() {
        None
    } else {
        match Uuid::parse_str(id) {
            Ok(u) if u.is_nil() => None,
            Ok(u) => Some(u),
            Err(_) => return Err(Skip::UnparsableId(id.to_string())),
        }
    };
    if uuid.is_none() && displayname.is_empty() {
        return Err(Skip::NoIdentity);
    }
    Ok(uuid)
}

/// First app matching the id and/or display name (both must match when both
/// are given; with duplicate names EVE picks an arbitrary one, we the first).
pub(crate) fn find_app(apps: &[App], id: Option<Uuid>, displayname: &str) -> Option<usize> {
    apps.iter().position(|a| {
        id.is_none_or(|u| u == a.id) && (displayname.is_empty() || displayname == a.name)
    })
}

/// A command that passed matching and dedupe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedCmd {
    pub app: usize,
    pub command: i32,
    pub timestamp: u64,
}

/// EVE's `processReceivedAppCommands` selection: match each command to an
/// app, skip a second command for the same app in one response (checked
/// before dedupe), and skip a (command, timestamp) equal to the stored one.
pub(crate) fn plan_app_commands(
    apps: &[App],
    cmds: &[AppCommand],
) -> (Vec<PlannedCmd>, Vec<(usize, Skip)>) {
    let mut planned = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = Vec::new();
    for (n, c) in cmds.iter().enumerate() {
        let id = match parse_app_ref(&c.id, &c.displayname) {
            Ok(id) => id,
            Err(skip) => {
                skipped.push((n, skip));
                continue;
            }
        };
        let Some(i) = find_app(apps, id, &c.displayname) else {
            skipped.push((n, Skip::NotFound));
            continue;
        };
        if seen.contains(&i) {
            skipped.push((n, Skip::SecondForSameApp));
            continue;
        }
        seen.push(i);
        if apps[i]
            .cmd
            .as_ref()
            .is_some_and(|r| r.command == c.command && r.timestamp == c.timestamp)
        {
            skipped.push((n, Skip::AlreadyAccepted));
            continue;
        }
        planned.push(PlannedCmd {
            app: i,
            command: c.command,
            timestamp: c.timestamp,
        });
    }
    (planned, skipped)
}

pub(crate) fn app_command_name(command: i32) -> String {
    app_command::Command::try_from(command)
        .map(|c| c.as_str_name().to_string())
        .unwrap_or_else(|_| command.to_string())
}

impl SimState {
    /// Starts an operation on app `i`, replacing any in progress.
    fn start_app_op(&mut self, i: usize, kind: AppOpKind) -> Vec<Effect> {
        let seq = self.next_seq();
        let (state, duration) = match kind {
            AppOpKind::Boot => (ZSwState::Booting, real::APP_BOOT),
            AppOpKind::Halt => (ZSwState::Halting, real::APP_HALT),
            AppOpKind::Restart => (ZSwState::Restarting, real::APP_RESTART),
            AppOpKind::Purge => (ZSwState::Purging, real::APP_PURGE),
        };
        let after = self.timing.scale(duration);
        let app = &mut self.apps[i];
        tracing::info!(app = %app.name, from = ?app.state, to = ?state, "sim: app state");
        app.state = state;
        app.op = Some(AppOp { kind, seq });
        vec![
            Effect::Trigger(Endpoint::AppInfo),
            Effect::FinishAppOp { app: i, seq, after },
        ]
    }

    /// Boots idle apps that should run and halts idle ones that should not.
    /// Apps busy with an operation are looked at again when it ends.
    pub fn reconcile_apps(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for i in 0..self.apps.len() {
            if self.apps[i].op.is_some() {
                continue;
            }
            let want = self.app_should_run(i);
            match self.apps[i].state {
                ZSwState::Halted if want => effects.extend(self.start_app_op(i, AppOpKind::Boot)),
                ZSwState::Running if !want => effects.extend(self.start_app_op(i, AppOpKind::Halt)),
                _ => {}
            }
        }
        effects.extend(self.device_progress());
        effects
    }

    /// A timer for app `i` fired; ignored unless `seq` is the current op.
    pub fn finish_app_op(&mut self, i: usize, seq: u64) -> Vec<Effect> {
        let Some(op) = self
            .apps
            .get(i)
            .and_then(|a| a.op)
            .filter(|op| op.seq == seq)
        else {
            return Vec::new();
        };
        let should_run = self.app_should_run(i);
        let app = &mut self.apps[i];
        app.op = None;
        let state = match op.kind {
            AppOpKind::Boot | AppOpKind::Restart => ZSwState::Running,
            AppOpKind::Halt => ZSwState::Halted,
            // A purged app comes back only if it is activated.
            AppOpKind::Purge if should_run => ZSwState::Running,
            AppOpKind::Purge => ZSwState::Halted,
        };
        tracing::info!(app = %app.name, from = ?app.state, to = ?state, "sim: app state");
        app.state = state;
        // EVE: complete once the operation the command started is over.
        if let Some(rec) = app.cmd.as_mut() {
            if !rec.completed && rec.op_seq == Some(seq) {
                rec.completed = true;
                app.last_cmd_timestamp = rec.timestamp;
                tracing::info!(
                    app = %app.name,
                    command = %app_command_name(rec.command),
                    timestamp = rec.timestamp,
                    "sim: app command completed"
                );
            }
        }
        let mut effects = vec![Effect::Trigger(Endpoint::AppInfo)];
        effects.extend(self.reconcile_apps());
        effects
    }

    /// The controller deletes an app (by display name): it leaves the next appinfo report.
    /// Returns whether such an app was there.
    pub fn remove_app(&mut self, name: &str) -> (bool, Vec<Effect>) {
        match self.apps.iter_mut().find(|a| a.name == name && !a.removed) {
            Some(app) => {
                app.removed = true;
                app.op = None;
                (true, vec![Effect::Trigger(Endpoint::AppInfo)])
            }
            None => (false, Vec::new()),
        }
    }

    /// A 200 from POST appinfo with commands and a good token.
    pub fn apply_app_commands(&mut self, cmds: &[AppCommand]) -> Vec<Effect> {
        let (planned, skipped) = plan_app_commands(&self.apps, cmds);
        for (n, why) in skipped {
            if why != Skip::AlreadyAccepted {
                tracing::warn!(index = n, reason = ?why, "sim: app command skipped");
            }
        }
        let mut effects = Vec::new();
        for p in planned {
            if self.apps[p.app].removed {
                continue;
            }
            let name = self.apps[p.app].name.clone();
            self.apps[p.app].cmd = Some(AppCmdRecord {
                command: p.command,
                timestamp: p.timestamp,
                completed: false,
                op_seq: None,
            });
            self.receive(
                Endpoint::AppInfo,
                app_command_name(p.command),
                Some(name.clone()),
                p.timestamp,
            );
            let kind = match app_command::Command::try_from(p.command) {
                Ok(app_command::Command::Restart) => {
                    self.apps[p.app].restart_count += 1;
                    // zedmanager ignores a restart of an app that is not activated.
                    if !self.app_should_run(p.app) {
                        tracing::info!(app = %name, "sim: restart ignored, app not activated");
                        continue;
                    }
                    AppOpKind::Restart
                }
                Ok(app_command::Command::Purge) => {
                    self.apps[p.app].purge_count += 1;
                    AppOpKind::Purge
                }
                // Recorded, does nothing (and so never completes).
                _ => continue,
            };
            let op = self.start_app_op(p.app, kind);
            if let Some(Effect::FinishAppOp { seq, .. }) = op.last() {
                if let Some(rec) = self.apps[p.app].cmd.as_mut() {
                    rec.op_seq = Some(*seq);
                }
            }
            effects.extend(op);
        }
        effects
    }

    pub fn build_appinfo(&self) -> LocalAppInfoList {
        LocalAppInfoList {
            apps_info: self
                .apps
                .iter()
                .filter(|a| !a.removed)
                .map(|a| LocalAppInfo {
                    id: a.id.to_string(),
                    version: "1".to_string(),
                    name: a.name.clone(),
                    err: None,
                    state: a.state as i32,
                    last_cmd_timestamp: a.last_cmd_timestamp,
                })
                .collect(),
        }
    }

    pub fn sim_app(&self, i: usize) -> SimApp {
        let a = &self.apps[i];
        let (boot_order, boot_source) = self.effective_boot(i);
        SimApp {
            id: a.id.to_string(),
            name: a.name.clone(),
            state: a.state,
            last_cmd_timestamp: a.last_cmd_timestamp,
            restart_count: a.restart_count,
            purge_count: a.purge_count,
            boot_order: eve_proto::common::BootOrder::try_from(boot_order).unwrap_or_default(),
            boot_source,
            profiles: a.profiles.clone(),
            command: a.cmd.as_ref().map(|r| SimAppCommand {
                command: app_command_name(r.command),
                timestamp: r.timestamp,
                completed: r.completed,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::{settle, state_with};

    fn cmd(id: &str, name: &str, c: app_command::Command, ts: u64) -> AppCommand {
        AppCommand {
            id: id.to_string(),
            displayname: name.to_string(),
            timestamp: ts,
            command: c as i32,
        }
    }

    use app_command::Command::{Purge, Restart, Unspecified};

    #[test]
    fn matching_by_id_name_or_both() {
        let s = state_with("");
        let plc = s.apps[0].id.to_string();
        let day = s.apps[1].id.to_string();
        let (p, skipped) = plan_app_commands(
            &s.apps,
            &[
                cmd(&plc, "", Restart, 1),
                cmd("", "day", Restart, 2),
                cmd(&day, "plc", Restart, 3), // both set, must both match
                cmd("not-a-uuid", "night", Restart, 4),
                cmd("", "", Restart, 5),
                cmd("", "nosuchapp", Restart, 6),
                cmd(&plc.to_uppercase(), "", Purge, 7), // second for plc
            ],
        );
        assert_eq!(
            p,
            vec![
                PlannedCmd {
                    app: 0,
                    command: Restart as i32,
                    timestamp: 1
                },
                PlannedCmd {
                    app: 1,
                    command: Restart as i32,
                    timestamp: 2
                },
            ]
        );
        assert_eq!(
            skipped,
            vec![
                (2, Skip::NotFound),
                (3, Skip::UnparsableId("not-a-uuid".into())),
                (4, Skip::NoIdentity),
                (5, Skip::NotFound),
                (6, Skip::SecondForSameApp),
            ]
        );
        // The nil UUID counts as unset, so the name decides.
        let (p, _) =
            plan_app_commands(&s.apps, &[cmd(&Uuid::nil().to_string(), "night", Purge, 9)]);
        assert_eq!(p[0].app, 2);
    }

    #[test]
    fn restart_runs_then_completes_and_dedupes() {
        let mut s = state_with("");
        let e = s.apply_app_commands(&[cmd("", "plc", Restart, 100)]);
        assert_eq!(s.apps[0].state, ZSwState::Restarting);
        assert_eq!(s.apps[0].restart_count, 1);
        assert_eq!(s.apps[0].last_cmd_timestamp, 0, "not completed yet");
        assert!(e.contains(&Effect::Trigger(Endpoint::AppInfo)));
        settle(&mut s, e);
        assert_eq!(s.apps[0].state, ZSwState::Running);
        assert_eq!(s.apps[0].last_cmd_timestamp, 100);
        assert_eq!(s.received.len(), 1);

        // Same (command, timestamp) again: ignored.
        assert!(s
            .apply_app_commands(&[cmd("", "plc", Restart, 100)])
            .is_empty());
        assert_eq!(s.apps[0].restart_count, 1);
        assert_eq!(s.received.len(), 1);

        // Same timestamp, other command: new.
        let e = s.apply_app_commands(&[cmd("", "plc", Purge, 100)]);
        assert_eq!(s.apps[0].state, ZSwState::Purging);
        settle(&mut s, e);
        assert_eq!(s.apps[0].purge_count, 1);
        assert_eq!(s.apps[0].state, ZSwState::Running);
        assert_eq!(s.received.len(), 2);
    }

    #[test]
    fn second_command_for_same_app_in_one_response_is_skipped() {
        let mut s = state_with("");
        let e = s.apply_app_commands(&[cmd("", "plc", Restart, 1), cmd("", "plc", Purge, 2)]);
        settle(&mut s, e);
        assert_eq!(s.apps[0].restart_count, 1);
        assert_eq!(s.apps[0].purge_count, 0);
        assert_eq!(s.apps[0].last_cmd_timestamp, 1);
    }

    #[test]
    fn unspecified_is_recorded_but_does_nothing() {
        let mut s = state_with("");
        let e = s.apply_app_commands(&[cmd("", "plc", Unspecified, 5)]);
        assert!(e.is_empty());
        assert_eq!(s.apps[0].state, ZSwState::Running);
        assert_eq!(s.apps[0].cmd.as_ref().unwrap().timestamp, 5);
        assert!(!s.apps[0].cmd.as_ref().unwrap().completed);
        assert_eq!(s.received[0].command, "COMMAND_UNSPECIFIED");
    }

    #[test]
    fn restart_of_halted_app_is_ignored_but_purge_runs() {
        let mut s = state_with("day"); // `night` is halted
        let e = s.apply_app_commands(&[cmd("", "night", Restart, 7)]);
        assert!(e.is_empty());
        assert_eq!(s.apps[2].state, ZSwState::Halted);
        assert_eq!(s.apps[2].restart_count, 1);
        assert_eq!(s.apps[2].last_cmd_timestamp, 0);

        let e = s.apply_app_commands(&[cmd("", "night", Purge, 8)]);
        assert_eq!(s.apps[2].state, ZSwState::Purging);
        settle(&mut s, e);
        assert_eq!(s.apps[2].state, ZSwState::Halted);
        assert_eq!(s.apps[2].last_cmd_timestamp, 8);
    }

    #[test]
    fn stale_timer_is_ignored() {
        let mut s = state_with("");
        let first = s.apply_app_commands(&[cmd("", "plc", Restart, 1)]);
        let second = s.apply_app_commands(&[cmd("", "plc", Purge, 2)]);
        // The restart timer fires after the purge replaced it: no effect.
        settle(&mut s, first);
        assert_eq!(s.apps[0].state, ZSwState::Purging);
        settle(&mut s, second);
        assert_eq!(s.apps[0].state, ZSwState::Running);
        assert_eq!(s.apps[0].last_cmd_timestamp, 2);
    }

    #[test]
    fn appinfo_reports_every_app() {
        let s = state_with("day");
        let list = s.build_appinfo();
        assert_eq!(list.apps_info.len(), 3);
        assert_eq!(list.apps_info[2].name, "night");
        assert_eq!(list.apps_info[2].state, ZSwState::Halted as i32);
        assert_eq!(list.apps_info[0].version, "1");
        assert_eq!(list.apps_info[0].id, s.apps[0].id.to_string());
    }

    #[test]
    fn a_removed_app_leaves_the_report_and_takes_no_commands() {
        let mut s = state_with("");
        let (found, effects) = s.remove_app("day");
        assert!(found);
        assert!(effects.contains(&Effect::Trigger(Endpoint::AppInfo)));
        let names: Vec<_> = s
            .build_appinfo()
            .apps_info
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["plc", "night"]);
        assert!(!s.remove_app("day").0, "already gone");
        assert!(!s.snapshot().apps.iter().any(|a| a.name == "day"));
    }
}

//! The device: devinfo report, device commands (EVE
//! `processReceivedDevCommand` + zedagent `ApplyLocalDeviceCommand`),
//! the shutdown / poweroff / reboot sequences.

use super::node::{Effect, SimState};
use super::options::real;
use super::snapshot::{CollectInfo, Endpoint};
use eve_proto::info::{BootReason, ZDeviceState};
use eve_proto::profile::{local_dev_cmd, LocalDevCmd, LocalDevInfo};

/// Device runtime state. `last_cmd_timestamp` is persisted on EVE; the
/// command flags live until the next boot.
#[derive(Clone, Debug)]
pub(crate) struct DevState {
    /// Unix seconds.
    pub boot_time: i64,
    pub boot_count: u32,
    pub last_boot_reason: BootReason,
    pub last_cmd_timestamp: u64,
    pub shutdown_cmd: bool,
    pub poweroff_cmd: bool,
    pub reboot_cmd: bool,
    /// Every app is halted; the node goes down after reporting it.
    pub ready_down: bool,
    /// The final devinfo POST happened (or the fallback timer fired).
    pub down_requested: bool,
}

impl DevState {
    pub fn first_boot(now: i64) -> Self {
        DevState {
            boot_time: now,
            boot_count: 1,
            last_boot_reason: BootReason::First,
            last_cmd_timestamp: 0,
            shutdown_cmd: false,
            poweroff_cmd: false,
            reboot_cmd: false,
            ready_down: false,
            down_requested: false,
        }
    }

    pub fn reboot_completed(&mut self, now: i64) {
        self.boot_time = now;
        self.boot_count += 1;
        self.last_boot_reason = BootReason::RebootCmd;
        self.shutdown_cmd = false;
        self.poweroff_cmd = false;
        self.reboot_cmd = false;
        self.ready_down = false;
        self.down_requested = false;
    }

    pub fn apps_shut_down(&self) -> bool {
        self.shutdown_cmd || self.poweroff_cmd || self.reboot_cmd
    }

    /// Like zedagent `getDeviceState`: poweroff before reboot.
    pub fn state(&self) -> ZDeviceState {
        if self.poweroff_cmd {
            if self.ready_down {
                ZDeviceState::ZdeviceStatePoweringOff
            } else {
                ZDeviceState::ZdeviceStatePreparingPoweroff
            }
        } else if self.reboot_cmd {
            ZDeviceState::ZdeviceStateRebooting
        } else {
            ZDeviceState::ZdeviceStateOnline
        }
    }

    /// Which way the node goes down, if it does.
    pub fn going_down(&self) -> Option<DownKind> {
        if self.poweroff_cmd {
            Some(DownKind::Poweroff)
        } else if self.reboot_cmd {
            Some(DownKind::Reboot)
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DownKind {
    Reboot,
    Poweroff,
}

pub(crate) fn dev_command_name(command: i32) -> String {
    local_dev_cmd::Command::try_from(command)
        .map(|c| c.as_str_name().to_string())
        .unwrap_or_else(|_| command.to_string())
}

/// RFC 3339 (UTC) of a Unix-nanosecond time, for the collect-info record.
fn rfc3339_from_nanos(nanos: u64) -> String {
    let secs = (nanos / 1_000_000_000) as i64;
    let sub = nanos % 1_000_000_000;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant), valid for the whole u64 nanosecond range.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{sub:09}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

impl SimState {
    pub fn build_devinfo(&self) -> LocalDevInfo {
        LocalDevInfo {
            device_uuid: self.device_uuid.clone(),
            state: self.dev.state() as i32,
            maintenance_mode_reasons: Vec::new(),
            boot_time: Some(pbjson_types::Timestamp {
                seconds: self.dev.boot_time,
                nanos: 0,
            }),
            last_boot_reason: self.dev.last_boot_reason as i32,
            last_cmd_timestamp: self.dev.last_cmd_timestamp,
        }
    }

    /// A 200 from POST devinfo with a good token. A command whose timestamp
    /// equals the stored one is ignored; otherwise the stored timestamp
    /// becomes this one as soon as the command triggers something.
    pub fn apply_dev_cmd(&mut self, cmd: &LocalDevCmd) -> Vec<Effect> {
        if cmd.timestamp == self.dev.last_cmd_timestamp {
            return Vec::new();
        }
        use local_dev_cmd::Command;
        let mut effects = Vec::new();
        let triggered = match Command::try_from(cmd.command) {
            Ok(Command::CollectInfo) => {
                let record = CollectInfo {
                    timestamp: cmd.timestamp,
                    time: rfc3339_from_nanos(cmd.timestamp),
                };
                tracing::info!(time = %record.time, "sim: collect-info published");
                self.collect_info.push(record);
                true
            }
            Ok(Command::Shutdown) if !self.dev.shutdown_cmd => {
                self.dev.shutdown_cmd = true;
                true
            }
            Ok(Command::GracefulPoweroff) if !self.dev.poweroff_cmd => {
                self.dev.poweroff_cmd = true;
                true
            }
            Ok(Command::GracefulReboot) if !self.dev.reboot_cmd => {
                self.dev.reboot_cmd = true;
                true
            }
            Ok(Command::Unspecified) => false,
            Ok(other) => {
                tracing::warn!(command = other.as_str_name(), "sim: already in progress");
                false
            }
            Err(_) => false,
        };
        if !triggered {
            return effects;
        }
        self.dev.last_cmd_timestamp = cmd.timestamp;
        self.receive(
            Endpoint::DevInfo,
            dev_command_name(cmd.command),
            None,
            cmd.timestamp,
        );
        if cmd.command != Command::CollectInfo as i32 {
            // Shut the apps down, publish the device state to the LPS.
            effects.extend(self.reconcile_apps());
            effects.push(Effect::Trigger(Endpoint::DevInfo));
        }
        effects
    }

    /// After app changes: once a poweroff or reboot has every app halted,
    /// report the final state and go down.
    pub fn device_progress(&mut self) -> Vec<Effect> {
        if self.dev.going_down().is_none()
            || self.dev.ready_down
            || !self.apps.iter().all(|a| a.idle_and_halted())
        {
            return Vec::new();
        }
        self.dev.ready_down = true;
        tracing::info!(state = ?self.dev.state(), "sim: apps halted, going down after devinfo");
        vec![
            Effect::Trigger(Endpoint::DevInfo),
            Effect::GoDownAfter(self.timing.scale(real::DOWN_FALLBACK)),
        ]
    }

    /// The final devinfo POST is done: go down now.
    pub fn request_down(&mut self) -> Vec<Effect> {
        if !self.dev.ready_down || self.dev.down_requested {
            return Vec::new();
        }
        self.dev.down_requested = true;
        vec![Effect::GoDown]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::{settle, state_with};
    use eve_proto::info::ZSwState;
    use local_dev_cmd::Command;

    fn dev(c: Command, ts: u64) -> LocalDevCmd {
        LocalDevCmd {
            server_token: "tok".into(),
            timestamp: ts,
            command: c as i32,
        }
    }

    #[test]
    fn timestamp_rule_and_dedupe() {
        let mut s = state_with("");
        s.apply_dev_cmd(&dev(Command::CollectInfo, 1_700_000_000_000_000_000));
        assert_eq!(s.dev.last_cmd_timestamp, 1_700_000_000_000_000_000);
        assert_eq!(s.collect_info.len(), 1);
        assert_eq!(s.collect_info[0].time, "2023-11-14T22:13:20.000000000Z");

        // Same timestamp: ignored, whatever the command.
        assert!(s
            .apply_dev_cmd(&dev(Command::Shutdown, 1_700_000_000_000_000_000))
            .is_empty());
        assert!(!s.dev.shutdown_cmd);
        assert_eq!(s.received.len(), 1);

        // UNSPECIFIED triggers nothing: timestamp not updated.
        s.apply_dev_cmd(&dev(Command::Unspecified, 5));
        assert_eq!(s.dev.last_cmd_timestamp, 1_700_000_000_000_000_000);
        assert_eq!(s.received.len(), 1);
    }

    #[test]
    fn shutdown_halts_apps_device_stays_online() {
        let mut s = state_with("");
        let e = s.apply_dev_cmd(&dev(Command::Shutdown, 10));
        assert_eq!(s.dev.last_cmd_timestamp, 10, "set as soon as triggered");
        assert!(e.contains(&Effect::Trigger(Endpoint::DevInfo)));
        assert!(s.apps.iter().all(|a| a.state == ZSwState::Halting));
        settle(&mut s, e);
        assert!(s.apps.iter().all(|a| a.state == ZSwState::Halted));
        assert_eq!(s.dev.state(), ZDeviceState::ZdeviceStateOnline);

        // A second shutdown is "already in progress": timestamp unchanged.
        s.apply_dev_cmd(&dev(Command::Shutdown, 11));
        assert_eq!(s.dev.last_cmd_timestamp, 10);
        // Profile changes do not bring apps back.
        let e = s.apply_local_profile("night");
        settle(&mut s, e);
        assert!(s.apps.iter().all(|a| a.state == ZSwState::Halted));
    }

    #[test]
    fn poweroff_sequence() {
        let mut s = state_with("");
        let e = s.apply_dev_cmd(&dev(Command::GracefulPoweroff, 20));
        assert_eq!(s.dev.state(), ZDeviceState::ZdeviceStatePreparingPoweroff);
        let rest = settle(&mut s, e);
        assert_eq!(s.dev.state(), ZDeviceState::ZdeviceStatePoweringOff);
        assert!(rest.iter().any(|e| matches!(e, Effect::GoDownAfter(_))));
        assert_eq!(
            s.build_devinfo().state,
            ZDeviceState::ZdeviceStatePoweringOff as i32
        );
        assert_eq!(s.request_down(), vec![Effect::GoDown]);
        assert!(s.request_down().is_empty(), "only once");
        // Another poweroff while in progress does not update the timestamp.
        s.apply_dev_cmd(&dev(Command::GracefulPoweroff, 21));
        assert_eq!(s.dev.last_cmd_timestamp, 20);
    }

    #[test]
    fn reboot_keeps_persisted_state() {
        let mut s = state_with("day");
        let e = s.apply_local_profile("night");
        settle(&mut s, e);
        s.boot_cache.insert(s.apps[0].id, 1);
        let e = s.apply_dev_cmd(&dev(Command::GracefulReboot, 30));
        assert_eq!(s.dev.state(), ZDeviceState::ZdeviceStateRebooting);
        settle(&mut s, e);
        assert!(s.dev.ready_down);
        assert!(s.request_down().contains(&Effect::GoDown));
        let e = s.boot_after_reboot();
        assert_eq!(s.dev.state(), ZDeviceState::ZdeviceStateOnline);
        assert_eq!(s.dev.last_boot_reason, BootReason::RebootCmd);
        assert_eq!(s.dev.boot_count, 2);
        assert_eq!(s.dev.last_cmd_timestamp, 30);
        assert_eq!(s.local_profile, "night");
        assert_eq!(s.boot_cache.len(), 1);
        assert_eq!(s.apps[0].state, ZSwState::Booting);
        assert_eq!(s.apps[1].state, ZSwState::Halted, "day app not allowed");
        settle(&mut s, e);
        assert_eq!(s.apps[0].state, ZSwState::Running);
        assert_eq!(s.apps[2].state, ZSwState::Running);
        // The same reboot command after the boot is ignored (timestamp kept).
        assert!(s
            .apply_dev_cmd(&dev(Command::GracefulReboot, 30))
            .is_empty());
    }

    #[test]
    fn devinfo_report() {
        let s = state_with("");
        let d = s.build_devinfo();
        assert_eq!(d.device_uuid, s.device_uuid);
        assert_eq!(d.state, ZDeviceState::ZdeviceStateOnline as i32);
        assert!(d.maintenance_mode_reasons.is_empty());
        assert_eq!(d.last_boot_reason, BootReason::First as i32);
        assert!(d.boot_time.is_some());
    }
}

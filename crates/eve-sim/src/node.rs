//! The simulated node's whole state and the bookkeeping shared by all
//! transitions. Transitions are plain methods (split over `apps.rs`,
//! `boot.rs`, `device.rs`, `radio.rs`, `network.rs`, `profile.rs`) that
//! return [`Effect`]s; the runtime executes those (timers, immediate polls).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::apps::App;
use super::device::DevState;
use super::location::LocationState;
use super::network::NetState;
use super::options::{app_uuid, default_device_uuid, SimOptions, Timing};
use super::profile;
use super::radio::RadioState;
use super::snapshot::{
    CollectInfo, Endpoint, EndpointCounters, ReceivedCommand, SignalStats, SimSnapshot,
};

/// Something a transition wants done outside the state lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Poll this endpoint now (EVE's `tickNow`).
    Trigger(Endpoint),
    /// Poll this endpoint after a delay.
    TriggerAfter(Endpoint, Duration),
    /// An app operation (boot, halt, restart, purge) ends after `after`.
    FinishAppOp {
        app: usize,
        seq: u64,
        after: Duration,
    },
    /// The requested radio state is in effect after `after`.
    FinishRadioChange { seq: u64, after: Duration },
    /// Take the node down (reboot or poweroff) after `after`, even if the
    /// final devinfo POST never happened.
    GoDownAfter(Duration),
    /// Take the node down now.
    GoDown,
}

pub(crate) struct SimState {
    pub timing: Timing,
    pub token: String,
    pub device_uuid: String,
    pub global_profile: String,
    // Persisted on EVE (survive a reboot).
    pub local_profile: String,
    pub boot_cache: BTreeMap<Uuid, i32>,
    pub radio: RadioState,
    pub net: NetState,
    pub apps: Vec<App>,
    pub dev: DevState,
    // Observability.
    pub collect_info: Vec<CollectInfo>,
    pub received: Vec<ReceivedCommand>,
    pub endpoints: BTreeMap<Endpoint, EndpointCounters>,
    pub signal: SignalStats,
    pub location: LocationState,
    pub powered_off: bool,
    next_seq: u64,
}

impl SimState {
    pub fn new(opts: &SimOptions) -> Self {
        let timing = Timing::new(opts.speed);
        let apps = opts
            .apps
            .iter()
            .map(|spec| App::new(app_uuid(&spec.name), &spec.name, &spec.profiles))
            .collect();
        let device_uuid = opts
            .device_uuid
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(default_device_uuid);
        let mut state = SimState {
            timing,
            token: opts.token.clone(),
            device_uuid,
            global_profile: opts.global_profile.clone(),
            local_profile: String::new(),
            boot_cache: BTreeMap::new(),
            radio: RadioState::default(),
            net: NetState::new(),
            apps,
            dev: DevState::first_boot(now_unix_secs()),
            collect_info: Vec::new(),
            received: Vec::new(),
            endpoints: BTreeMap::new(),
            signal: SignalStats::default(),
            location: LocationState::new(),
            powered_off: false,
            next_seq: 0,
        };
        // Apps the controller deployed are already up (or halted) at start.
        for i in 0..state.apps.len() {
            state.apps[i].state = if state.app_should_run(i) {
                eve_proto::info::ZSwState::Running
            } else {
                eve_proto::info::ZSwState::Halted
            };
        }
        state
    }

    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Local profile if set, else the controller's global profile.
    pub fn effective_profile(&self) -> &str {
        profile::current_profile(&self.local_profile, &self.global_profile)
    }

    /// EVE's effective activation of app `i`: the profile allows it and no
    /// device command has shut the apps down.
    pub fn app_should_run(&self, i: usize) -> bool {
        !self.dev.apps_shut_down()
            && profile::profile_allows(self.effective_profile(), &self.apps[i].profiles)
    }

    pub fn counters(&mut self, ep: Endpoint) -> &mut EndpointCounters {
        self.endpoints.entry(ep).or_default()
    }

    /// Counts an unusable response; logs the first of a streak as a warning
    /// (an unreachable LPS would otherwise log every few seconds).
    pub fn note_failure(&mut self, ep: Endpoint, why: &str) {
        let c = self.counters(ep);
        c.failures += 1;
        c.consecutive_failures += 1;
        c.last_error = Some(why.to_string());
        if c.consecutive_failures == 1 {
            tracing::warn!(endpoint = ep.name(), error = why, "sim: LPS request failed");
        } else {
            tracing::debug!(endpoint = ep.name(), error = why, "sim: LPS request failed");
        }
    }

    /// Records a new command or desired-state change accepted from the LPS.
    pub fn receive(&mut self, endpoint: Endpoint, command: String, app: Option<String>, ts: u64) {
        tracing::info!(
            endpoint = endpoint.name(),
            command = %command,
            app = app.as_deref().unwrap_or(""),
            timestamp = ts,
            "sim: accepted from LPS"
        );
        self.received.push(ReceivedCommand {
            endpoint,
            command,
            app,
            timestamp: ts,
            at_ms: now_unix_millis(),
        });
    }

    /// A simulated reboot completes: fresh boot time and reason, apps boot
    /// again; what EVE persists (profile, radio, boot orders, network, command
    /// records and timestamps) is kept.
    pub fn boot_after_reboot(&mut self) -> Vec<Effect> {
        self.dev.reboot_completed(now_unix_secs());
        for app in &mut self.apps {
            app.state = eve_proto::info::ZSwState::Halted;
            app.op = None;
        }
        self.radio.after_boot();
        self.location.after_boot();
        tracing::info!(boot_count = self.dev.boot_count, "sim: node booted");
        // The supervisor triggers every poll of the new boot.
        self.reconcile_apps()
    }

    pub fn snapshot(&self) -> SimSnapshot {
        SimSnapshot {
            device_uuid: self.device_uuid.clone(),
            device_state: self.dev.state(),
            boot_time: self.dev.boot_time,
            boot_count: self.dev.boot_count,
            last_boot_reason: self.dev.last_boot_reason,
            dev_last_cmd_timestamp: self.dev.last_cmd_timestamp,
            apps_shut_down: self.dev.apps_shut_down(),
            apps: (0..self.apps.len())
                .filter(|&i| !self.apps[i].removed)
                .map(|i| self.sim_app(i))
                .collect(),
            local_profile: self.local_profile.clone(),
            global_profile: self.global_profile.clone(),
            effective_profile: self.effective_profile().to_string(),
            radio_silence: self.radio.applied,
            radio_desired: self.radio.desired,
            radio_change_in_progress: self.radio.in_progress.is_some(),
            network: self.net.snapshot(self.radio.applied),
            received: self.received.clone(),
            collect_info: self.collect_info.clone(),
            endpoints: self.endpoints.clone(),
            signal: self.signal.clone(),
            location: self.location.last.clone(),
            location_throttled: self.location.throttled,
            powered_off: self.powered_off,
        }
    }
}

pub(crate) fn now_unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn now_unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn now_timestamp() -> pbjson_types::Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::options::AppSpec;
    use eve_proto::info::ZSwState;

    /// A state with apps `plc` (every profile), `day@day`, `night@night`.
    pub(crate) fn state_with(global: &str) -> SimState {
        let mut opts = SimOptions::new("http://127.0.0.1:1", "tok");
        opts.apps = AppSpec::parse_list("plc,day@day,night@night").unwrap();
        opts.global_profile = global.to_string();
        SimState::new(&opts)
    }

    /// Runs every pending app operation to completion, like the timers would.
    pub(crate) fn settle(s: &mut SimState, mut effects: Vec<Effect>) -> Vec<Effect> {
        let mut seen = Vec::new();
        while let Some(e) = effects.pop() {
            match e {
                Effect::FinishAppOp { app, seq, .. } => {
                    effects.extend(s.finish_app_op(app, seq));
                }
                Effect::FinishRadioChange { seq, .. } => {
                    effects.extend(s.finish_radio_change(seq));
                }
                other => seen.push(other),
            }
        }
        seen
    }

    #[test]
    fn apps_start_in_the_state_the_profile_gives() {
        let s = state_with("day");
        let states: Vec<_> = s.apps.iter().map(|a| a.state).collect();
        assert_eq!(
            states,
            vec![ZSwState::Running, ZSwState::Running, ZSwState::Halted]
        );
        let s = state_with("");
        assert!(s.apps.iter().all(|a| a.state == ZSwState::Running));
    }

    #[test]
    fn snapshot_serializes_to_readable_json() {
        let mut s = state_with("day");
        s.counters(Endpoint::DevInfo).requests = 1;
        let v = serde_json::to_value(s.snapshot()).unwrap();
        assert_eq!(v["device_state"], "ZDEVICE_STATE_ONLINE");
        assert_eq!(v["last_boot_reason"], "BOOT_REASON_FIRST");
        assert_eq!(v["apps"][0]["state"], "RUNNING");
        assert_eq!(v["apps"][0]["boot_order"], "BOOT_ORDER_UNSPECIFIED");
        assert_eq!(v["endpoints"]["devinfo"]["requests"], 1);
        assert_eq!(v["effective_profile"], "day");
        assert_eq!(v["network"]["ports"][0]["logical_label"], "eth0");
    }

    #[test]
    fn device_uuid_is_given_or_fixed() {
        let mut opts = SimOptions::new("http://x", "t");
        assert_eq!(SimState::new(&opts).device_uuid, default_device_uuid());
        opts.device_uuid = Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8".into());
        assert_eq!(
            SimState::new(&opts).device_uuid,
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
        );
    }
}

//! Unit tests of `apply`: EVE's rules as plain tables of inputs and expected outcomes.

use super::*;
use serde_json::{json, Value};

const T0: u64 = 1_700_000_000_000_000_000;

fn now(offset_ms: u64) -> Now {
    Now {
        unix_ns: T0 + offset_ms * 1_000_000,
        mono_ms: 1_000 + offset_ms,
    }
}

fn state() -> State {
    State::new(Limits {
        eve_offline_after_ms: 10_000,
        keep_finished_commands: 3,
        ..Limits::default()
    })
}

fn intent(s: &mut State, intent: Intent, at: u64) -> Applied<IntentReply> {
    apply(
        s,
        Submission {
            intent,
            source: "test".into(),
        },
        now(at),
    )
}

fn eve<I: Input>(s: &mut State, request: I, at: u64) -> Applied<I::Reply> {
    apply(s, request, now(at))
}

fn app(id: &str, name: &str, last: u64) -> AppReport {
    AppReport {
        id: id.into(),
        name: name.into(),
        last_cmd_timestamp: last,
        info: json!({ "name": name }),
    }
}

const VISION: &str = "6f1c2a3e-0000-4000-8000-000000000001";
const LOGGER: &str = "6f1c2a3e-0000-4000-8000-000000000002";
const DUP1: &str = "6f1c2a3e-0000-4000-8000-000000000003";
const DUP2: &str = "6f1c2a3e-0000-4000-8000-000000000004";

fn report_apps(
    s: &mut State,
    vision_last: u64,
    logger_last: u64,
    at: u64,
) -> Applied<Vec<AppCommandOut>> {
    eve(
        s,
        poll::AppInfo {
            apps: vec![
                app(VISION, "vision", vision_last),
                app(LOGGER, "logger", logger_last),
            ],
        },
        at,
    )
}

fn accepted(a: &Applied<IntentReply>) -> &Accepted {
    match &a.reply {
        IntentReply::Accepted(acc) => acc,
        other => panic!("expected accepted, got {other:?}"),
    }
}

fn rejected(a: &Applied<IntentReply>) -> &Refusal {
    match &a.reply {
        IntentReply::Rejected(why) => why,
        other => panic!("expected rejected, got {other:?}"),
    }
}

fn events<R>(a: &Applied<R>) -> Vec<&'static str> {
    a.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some(ev.event.as_str()),
            _ => None,
        })
        .collect()
}

fn app_cmds(a: &Applied<Vec<AppCommandOut>>) -> &[AppCommandOut] {
    &a.reply
}

fn restart(s: &mut State, name: &str, at: u64) -> Applied<IntentReply> {
    intent(
        s,
        Intent::AppCommand {
            app: name.into(),
            action: AppAction::Restart,
        },
        at,
    )
}

fn device(s: &mut State, action: DeviceAction, at: u64) -> Applied<IntentReply> {
    intent(s, Intent::DeviceCommand { action }, at)
}

fn devinfo(s: &mut State, last: u64, at: u64) -> Option<(u64, DeviceAction)> {
    eve(
        s,
        poll::DevInfo {
            last_cmd_timestamp: last,
            report: json!({}),
        },
        at,
    )
    .reply
}

#[test]
fn new_app_command_supersedes_the_open_one() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    let first = accepted(&restart(&mut s, "vision", 1)).command.unwrap();
    let second = intent(
        &mut s,
        Intent::AppCommand {
            app: "vision".into(),
            action: AppAction::Purge,
        },
        2,
    );
    assert_eq!(
        events(&second),
        vec!["command_superseded", "command_accepted"]
    );
    assert_eq!(s.commands[&first.id].lifecycle, Lifecycle::Superseded);
    let served = report_apps(&mut s, 0, 0, 3);
    let cmds = app_cmds(&served);
    assert_eq!(cmds.len(), 1, "at most one command per app");
    assert_eq!(cmds[0].action, AppAction::Purge);
    assert_eq!(
        cmds[0].app,
        AppTarget {
            id: VISION.into(),
            name: "vision".into()
        },
        "both id and name sent"
    );
}

#[test]
fn app_command_lifecycle_accepted_delivered_completed() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    let cmd = accepted(&restart(&mut s, "vision", 1)).command.unwrap();
    assert_eq!(s.commands[&cmd.id].lifecycle, Lifecycle::Accepted);
    let served = report_apps(&mut s, 0, 0, 2);
    assert_eq!(app_cmds(&served)[0].timestamp, cmd.timestamp);
    assert!(events(&served).contains(&"command_delivered"));
    assert_eq!(s.commands[&cmd.id].lifecycle, Lifecycle::Delivered);
    // Still served until EVE reports its timestamp.
    assert_eq!(app_cmds(&report_apps(&mut s, 0, 0, 3)).len(), 1);
    let done = report_apps(&mut s, cmd.timestamp, 0, 4);
    assert!(events(&done).contains(&"command_completed"));
    assert_eq!(s.commands[&cmd.id].lifecycle, Lifecycle::Completed);
    assert!(app_cmds(&done).is_empty(), "nothing left to serve: 204");
}

#[test]
fn commands_for_different_apps_are_served_together() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    restart(&mut s, "vision", 1);
    restart(&mut s, LOGGER, 2);
    assert_eq!(app_cmds(&report_apps(&mut s, 0, 0, 3)).len(), 2);
}

#[test]
fn unknown_and_ambiguous_apps_are_errors_listing_known_apps() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    match rejected(&restart(&mut s, "visoin", 1)) {
        Refusal::UnknownApp { app, known, more } => {
            assert_eq!((app.as_str(), *more), ("visoin", 0));
            assert_eq!(
                known,
                &vec![format!("vision ({VISION})"), format!("logger ({LOGGER})")]
            );
        }
        other => panic!("{other:?}"),
    }
    eve(
        &mut s,
        poll::AppInfo {
            apps: vec![app(DUP1, "cam", 0), app(DUP2, "cam", 0)],
        },
        2,
    );
    assert_eq!(
        rejected(&restart(&mut s, "cam", 3)),
        &Refusal::AmbiguousApp {
            app: "cam".into(),
            count: 2,
            ids: vec![DUP1.into(), DUP2.into()]
        }
    );
    assert!(
        accepted(&restart(&mut s, DUP2, 4)).command.is_some(),
        "a UUID picks one of them"
    );
    assert_eq!(s.commands.len(), 1, "rejections changed nothing");
}

#[test]
fn before_first_report_the_reference_is_taken_as_given() {
    let mut s = state();
    let a = restart(&mut s, "vision", 1);
    let acc = accepted(&a);
    assert!(
        acc.note.as_deref().unwrap().contains("not reported"),
        "{acc:?}"
    );
    let b = restart(&mut s, VISION, 2);
    assert!(accepted(&b).note.is_some());
    // Once EVE reports, the name-only command gets its UUID and the two collapse into one app...
    let served = report_apps(&mut s, 0, 0, 3);
    for c in app_cmds(&served) {
        assert_eq!(c.app.id, VISION);
        assert_eq!(c.app.name, "vision");
    }
}

#[test]
fn timestamps_are_unix_ns_and_strictly_increasing_even_if_clock_steps_back() {
    let mut s = state();
    let a = accepted(&device(&mut s, DeviceAction::CollectInfo, 10))
        .command
        .unwrap();
    assert_eq!(a.timestamp, T0 + 10_000_000, "Unix nanoseconds");
    // Wall clock jumps back an hour.
    let back = Now {
        unix_ns: T0 - 3_600_000_000_000,
        mono_ms: 50_000,
    };
    let b = apply(
        &mut s,
        Submission {
            intent: Intent::DeviceCommand {
                action: DeviceAction::Reboot,
            },
            source: "t".into(),
        },
        back,
    );
    let b = accepted(&b).command.unwrap();
    assert!(b.timestamp > a.timestamp);
    let c = accepted(&device(&mut s, DeviceAction::Shutdown, 10))
        .command
        .unwrap();
    assert!(c.timestamp > b.timestamp);
    assert_eq!(
        s.meta.last_timestamp, c.timestamp,
        "persisted counter follows"
    );
}

#[test]
fn timestamps_stay_above_what_eve_has_seen() {
    let mut s = state();
    let future = T0 + 10_000_000_000_000;
    devinfo(&mut s, future, 0);
    let c = accepted(&device(&mut s, DeviceAction::Reboot, 1))
        .command
        .unwrap();
    assert!(c.timestamp > future);
}

#[test]
fn every_accepted_command_is_persisted_with_the_counter() {
    let mut s = state();
    let a = device(&mut s, DeviceAction::Shutdown, 1);
    let id = accepted(&a).command.unwrap().id;
    assert!(a.effects.contains(&Effect::Persist(Key::Meta)));
    assert!(a.effects.contains(&Effect::Persist(Key::Command(id))));
}

#[test]
fn device_commands_are_served_one_at_a_time() {
    let mut s = state();
    let first = accepted(&device(&mut s, DeviceAction::CollectInfo, 1))
        .command
        .unwrap();
    let second = device(&mut s, DeviceAction::Reboot, 2);
    assert!(accepted(&second)
        .note
        .as_deref()
        .unwrap()
        .contains("queued"));
    let second = accepted(&second).command.unwrap();
    assert_eq!(
        devinfo(&mut s, 0, 3),
        Some((first.timestamp, DeviceAction::CollectInfo))
    );
    assert_eq!(
        devinfo(&mut s, 0, 4),
        Some((first.timestamp, DeviceAction::CollectInfo)),
        "repeated until reported"
    );
    assert_eq!(
        devinfo(&mut s, first.timestamp, 5),
        Some((second.timestamp, DeviceAction::Reboot))
    );
    assert_eq!(s.commands[&first.id].lifecycle, Lifecycle::Completed);
    assert_eq!(
        devinfo(&mut s, second.timestamp, 6),
        None,
        "204 when the queue is empty"
    );
}

#[test]
fn cancelled_device_command_unblocks_the_queue() {
    let mut s = state();
    let stuck = accepted(&device(&mut s, DeviceAction::Shutdown, 1))
        .command
        .unwrap();
    let next = accepted(&device(&mut s, DeviceAction::CollectInfo, 2))
        .command
        .unwrap();
    devinfo(&mut s, 0, 3); // delivered; EVE never acknowledges it
    let c = intent(&mut s, Intent::CancelDevice { id: Some(stuck.id) }, 4);
    let acc = accepted(&c);
    assert_eq!(acc.cancelled.len(), 1);
    assert!(acc.cancelled[0].may_have_been_received);
    assert!(events(&c).contains(&"command_cancelled"));
    assert_eq!(
        devinfo(&mut s, 0, 5),
        Some((next.timestamp, DeviceAction::CollectInfo))
    );
}

#[test]
fn cancel_all_device_commands_and_errors_when_nothing_open() {
    let mut s = state();
    device(&mut s, DeviceAction::Shutdown, 1);
    device(&mut s, DeviceAction::Poweroff, 2);
    let c = intent(&mut s, Intent::CancelDevice { id: None }, 3);
    let acc = accepted(&c);
    assert_eq!(acc.cancelled.len(), 2);
    assert!(acc.cancelled.iter().all(|c| !c.may_have_been_received));
    assert_eq!(devinfo(&mut s, 0, 4), None);
    assert_eq!(
        rejected(&intent(&mut s, Intent::CancelDevice { id: None }, 5)),
        &Refusal::NothingToCancelDevice
    );
}

#[test]
fn cancelled_app_command_is_no_longer_served() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    restart(&mut s, "vision", 1);
    let c = intent(
        &mut s,
        Intent::CancelApp {
            app: "vision".into(),
        },
        2,
    );
    assert!(!accepted(&c).cancelled[0].may_have_been_received);
    assert!(app_cmds(&report_apps(&mut s, 0, 0, 3)).is_empty());
    assert_eq!(
        rejected(&intent(
            &mut s,
            Intent::CancelApp {
                app: "vision".into(),
            },
            4,
        )),
        &Refusal::NothingToCancelApp {
            app: "vision".into()
        }
    );
}

#[test]
fn cancel_after_delivery_says_eve_may_have_it() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    restart(&mut s, "vision", 1);
    report_apps(&mut s, 0, 0, 2);
    let c = intent(&mut s, Intent::CancelApp { app: VISION.into() }, 3);
    assert!(accepted(&c).cancelled[0].may_have_been_received);
}

#[test]
fn profile_is_served_and_delivery_reported_once() {
    let mut s = state();
    assert_eq!(eve(&mut s, poll::LocalProfile, 0).reply, String::new());
    let set = intent(
        &mut s,
        Intent::SetProfile {
            profile: "night".into(),
            force: false,
        },
        1,
    );
    assert!(set
        .effects
        .contains(&Effect::Signal(Endpoint::LocalProfile)));
    assert!(pending_endpoints(&s).contains(&Endpoint::LocalProfile));
    let got = eve(&mut s, poll::LocalProfile, 2);
    assert_eq!(got.reply, String::from("night"));
    assert_eq!(events(&got), vec!["profile_delivered"]);
    assert!(events(&eve(&mut s, poll::LocalProfile, 3)).is_empty());
    assert!(pending_endpoints(&s).is_empty());
    intent(
        &mut s,
        Intent::SetProfile {
            profile: String::new(),
            force: false,
        },
        4,
    );
    assert_eq!(
        eve(&mut s, poll::LocalProfile, 5).reply,
        String::new(),
        "cleared"
    );
}

fn radio(s: &mut State, silence: bool, err: &str, at: u64) -> Applied<Option<bool>> {
    eve(
        s,
        poll::Radio {
            radio_silence: silence,
            config_error: err.into(),
            report: json!({ "radio_silence": silence }),
        },
        at,
    )
}

#[test]
fn radio_is_204_until_set_then_full_state_and_outcome_from_status() {
    let mut s = state();
    assert_eq!(radio(&mut s, false, "", 0).reply, (None));
    intent(
        &mut s,
        Intent::SetRadio {
            radio_silence: true,
        },
        1,
    );
    let first = radio(&mut s, false, "", 2);
    assert_eq!(first.reply, (Some(true)));
    assert!(
        events(&first).is_empty(),
        "the report sent with the first delivery predates it"
    );
    assert!(events(&radio(&mut s, true, "", 3)).contains(&"radio_applied"));
    assert_eq!(s.meta.desired.radio.outcome, Outcome::Applied);
    intent(
        &mut s,
        Intent::SetRadio {
            radio_silence: false,
        },
        4,
    );
    radio(&mut s, true, "", 5);
    let failed = radio(&mut s, true, "modem busy", 6);
    assert!(events(&failed).contains(&"radio_failed"));
    assert_eq!(failed.reply, (Some(false)), "still full desired state");
}

fn boot_report(
    s: &mut State,
    entries: &[(&str, &str, &str, &str)],
    at: u64,
) -> Applied<Option<Vec<BootEntry>>> {
    let apps = entries
        .iter()
        .map(|(id, name, order, source)| AppBootReport {
            id: (*id).into(),
            name: (*name).into(),
            boot_order: (*order).into(),
            source: (*source).into(),
        })
        .collect();
    eve(s, poll::AppBootInfo { apps }, at)
}

#[test]
fn boot_order_full_state_applied_and_cleared() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    let none = [(
        VISION,
        "vision",
        "BOOT_ORDER_UNSPECIFIED",
        "BOOT_ORDER_SOURCE_UNSPECIFIED",
    )];
    assert_eq!(boot_report(&mut s, &none, 1).reply, (None));
    intent(
        &mut s,
        Intent::SetBoot {
            app: "vision".into(),
            choice: BootChoice::Usb,
        },
        2,
    );
    let served = boot_report(&mut s, &none, 3);
    match &served.reply {
        Some(entries) => {
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].app.id, VISION);
            assert_eq!(entries[0].choice, BootChoice::Usb);
        }
        other => panic!("{other:?}"),
    }
    let usb = [(VISION, "vision", "BOOT_ORDER_USB", "BOOT_ORDER_SOURCE_LPS")];
    assert!(events(&boot_report(&mut s, &usb, 4)).contains(&"boot_order_applied"));
    intent(
        &mut s,
        Intent::SetBoot {
            app: "vision".into(),
            choice: BootChoice::Default,
        },
        5,
    );
    assert_eq!(
        boot_report(&mut s, &usb, 6).reply,
        (Some(vec![])),
        "clearing sends empty state"
    );
    assert_eq!(
        boot_report(&mut s, &usb, 7).reply,
        (Some(vec![])),
        "until EVE reports it gone"
    );
    assert!(events(&boot_report(&mut s, &none, 8)).contains(&"boot_order_applied"));
    assert_eq!(
        boot_report(&mut s, &none, 9).reply,
        (None),
        "then 204 again"
    );
}

fn port(label: &str) -> NetworkPort {
    NetworkPort {
        logical_label: label.into(),
        config: json!({ "logical_label": label, "mtu": 1400 }),
    }
}

fn network(
    s: &mut State,
    held: &[&str],
    local_error: &str,
    port_errors: &[(&str, &str)],
    at: u64,
) -> Applied<Option<Vec<NetworkPort>>> {
    eve(
        s,
        poll::Network {
            local_ports: held.iter().map(|l| l.to_string()).collect(),
            local_error: local_error.into(),
            port_errors: port_errors
                .iter()
                .map(|(l, e)| (l.to_string(), e.to_string()))
                .collect(),
            report: network_report(held),
        },
        at,
    )
}

/// EVE's ports: eth0, eth1, wwan0; `held` is the local override it runs.
fn network_report(held: &[&str]) -> Value {
    let labels = |list: &[&str]| -> Vec<Value> {
        list.iter().map(|l| json!({ "logical_label": l })).collect()
    };
    json!({
        "latest_config": labels(&["eth0", "eth1", "wwan0"]),
        "local_config": { "ports": labels(held) },
    })
}

#[test]
fn network_applied_rejected_and_reverted() {
    let mut s = state();
    assert_eq!(network(&mut s, &[], "", &[], 0).reply, (None));
    intent(
        &mut s,
        Intent::SetNetwork {
            ports: vec![port("eth1")],
        },
        1,
    );
    assert_eq!(
        network(&mut s, &[], "old error", &[], 2).reply,
        (Some(vec![port("eth1")]))
    );
    assert_eq!(
        s.meta.desired.network.outcome,
        Outcome::Pending,
        "a stale error is not judged"
    );
    assert!(events(&network(&mut s, &["eth1"], "", &[], 3)).contains(&"network_applied"));

    intent(
        &mut s,
        Intent::SetNetwork {
            ports: vec![port("wwan0")],
        },
        4,
    );
    network(&mut s, &["eth1"], "", &[], 5);
    let refused = network(
        &mut s,
        &["wwan0"],
        "",
        &[("wwan0", "local modifications not permitted for port wwan0")],
        6,
    );
    assert!(events(&refused).contains(&"network_rejected"));
    assert!(
        matches!(&s.meta.desired.network.outcome, Outcome::Failed(e) if e.contains("not permitted"))
    );

    intent(
        &mut s,
        Intent::SetNetwork {
            ports: vec![port("eth0")],
        },
        7,
    );
    network(&mut s, &["wwan0"], "", &[], 8);
    assert!(
        events(&network(&mut s, &["wwan0"], "eth0: bad dhcp", &[], 9))
            .contains(&"network_rejected")
    );

    intent(&mut s, Intent::SetNetwork { ports: vec![] }, 10);
    assert_eq!(
        network(&mut s, &["wwan0"], "", &[], 11).reply,
        (Some(vec![]))
    );
    assert!(events(&network(&mut s, &[], "", &[], 12)).contains(&"network_applied"));
    assert_eq!(network(&mut s, &[], "", &[], 13).reply, (None));
}

#[test]
fn unknown_ports_are_refused_once_eve_reported_its_ports() {
    let mut s = state();
    let before = intent(
        &mut s,
        Intent::SetNetwork {
            ports: vec![port("eth9")],
        },
        1,
    );
    assert!(
        accepted(&before)
            .note
            .as_deref()
            .unwrap()
            .contains("not checked"),
        "before EVE's first network report the names are taken as given"
    );
    network(&mut s, &[], "", &[], 2);
    let a = intent(
        &mut s,
        Intent::SetNetwork {
            ports: vec![port("eth1"), port("eth9")],
        },
        3,
    );
    assert_eq!(
        rejected(&a),
        &Refusal::UnknownPorts {
            ports: vec!["eth9".into()],
            known: vec!["eth0".into(), "eth1".into(), "wwan0".into()],
        }
    );
    assert!(a.effects.is_empty(), "a refusal changes nothing");
    let ok = intent(
        &mut s,
        Intent::SetNetwork {
            ports: vec![port("eth1")],
        },
        4,
    );
    assert_eq!(accepted(&ok).note, None);
}

#[test]
fn a_rejected_network_override_is_no_longer_served_until_submitted_again() {
    let mut s = state();
    network(&mut s, &[], "", &[], 0);
    let set = Intent::SetNetwork {
        ports: vec![port("wwan0")],
    };
    intent(&mut s, set.clone(), 1);
    assert!(network(&mut s, &[], "", &[], 2).reply.is_some());
    let refused = network(&mut s, &[], "", &[("wwan0", "not permitted")], 3);
    let event = refused
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Event(ev) if ev.event == EventName::NetworkRejected => Some(ev.data.clone()),
            _ => None,
        })
        .expect("network_rejected");
    assert_eq!(event["served"], json!(false));
    assert_eq!(
        event["note"],
        json!("no longer served; submit again to retry")
    );
    assert_eq!(
        network(&mut s, &[], "", &[], 4).reply,
        None,
        "not served again"
    );
    assert!(pending_endpoints(&s)
        .iter()
        .all(|e| *e != Endpoint::Network));
    intent(&mut s, set, 5);
    assert_eq!(
        network(&mut s, &[], "", &[], 6).reply,
        Some(vec![port("wwan0")]),
        "re-submitted: served again"
    );
}

#[test]
fn reverting_network_with_nothing_set_changes_nothing() {
    let mut s = state();
    let a = intent(&mut s, Intent::SetNetwork { ports: vec![] }, 1);
    assert!(accepted(&a).note.is_some());
    assert!(a.effects.is_empty());
}

#[test]
fn eve_online_then_offline_after_silence() {
    let mut s = state();
    let first = eve(&mut s, poll::Signal, 0);
    assert_eq!(events(&first), vec!["eve_online"]);
    assert!(events(&eve(&mut s, poll::Signal, 1)).is_empty());
    assert!(events(&apply(&mut s, Tick, now(5_000))).is_empty());
    let off = apply(&mut s, Tick, now(10_002));
    assert_eq!(events(&off), vec!["eve_offline"]);
    assert!(off.effects.contains(&Effect::Publish(StateTopic::Eve)));
    assert_eq!(
        events(&eve(&mut s, poll::LocalProfile, 10_003)),
        vec!["eve_online"]
    );
}

#[test]
fn pending_lists_what_eve_has_not_picked_up() {
    let mut s = state();
    assert!(pending_endpoints(&s).is_empty());
    report_apps(&mut s, 0, 0, 0);
    restart(&mut s, "vision", 1);
    device(&mut s, DeviceAction::Reboot, 2);
    intent(
        &mut s,
        Intent::SetRadio {
            radio_silence: true,
        },
        3,
    );
    intent(
        &mut s,
        Intent::SetNetwork {
            ports: vec![port("eth0")],
        },
        4,
    );
    intent(
        &mut s,
        Intent::SetBoot {
            app: "logger".into(),
            choice: BootChoice::Nousb,
        },
        5,
    );
    intent(
        &mut s,
        Intent::SetProfile {
            profile: "day".into(),
            force: false,
        },
        6,
    );
    let all: Vec<Endpoint> = pending_endpoints(&s).into_iter().collect();
    assert_eq!(
        all,
        vec![
            Endpoint::LocalProfile,
            Endpoint::Radio,
            Endpoint::AppInfo,
            Endpoint::AppBootInfo,
            Endpoint::DevInfo,
            Endpoint::Network
        ]
    );
}

#[test]
fn finished_commands_are_pruned_beyond_the_history_limit() {
    let mut s = state();
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = accepted(&device(&mut s, DeviceAction::CollectInfo, i))
            .command
            .unwrap();
        devinfo(&mut s, c.timestamp, i);
        ids.push(c.id);
    }
    let last = s.meta.last_timestamp;
    devinfo(&mut s, last, 10);
    assert_eq!(s.commands.len(), 3, "keep_finished_commands = 3");
    assert!(!s.commands.contains_key(&ids[0]));
    assert_index_matches(&s);
}

/// The finished-command index matches the log: every finished command, oldest first.
fn assert_index_matches(s: &State) {
    let finished: Vec<CommandId> = s
        .commands
        .values()
        .filter(|c| !c.lifecycle.is_open())
        .map(|c| c.id)
        .collect();
    assert_eq!(s.finished_ids().collect::<Vec<_>>(), finished);
}

#[test]
fn pruning_looks_only_at_what_it_drops() {
    // A long history (as the reliability suite's `keep_finished_commands = 1000000`): pruning
    // used to scan every command on every apply, so each command cost more than the last.
    let mut s = State::new(Limits {
        keep_finished_commands: 1_000_000,
        ..Limits::default()
    });
    report_apps(&mut s, 0, 0, 0);
    for i in 1..=2_000 {
        // Each restart of the same app supersedes the previous one: one finished per command.
        accepted(&restart(&mut s, "vision", i));
    }
    assert_eq!(s.commands.len(), 2_000);
    assert_index_matches(&s);
    let mut fx = super::machine::Fx {
        effects: Vec::new(),
    };
    assert_eq!(
        s.prune(&mut fx),
        0,
        "nothing beyond the history: nothing looked at"
    );
    assert!(fx.effects.is_empty());

    // The history shrinks (a restart with a smaller setting): exactly the excess is visited.
    s.limits.keep_finished_commands = 1_500;
    assert_eq!(s.prune(&mut fx), 499);
    assert_eq!(fx.effects.len(), 499);
    assert_eq!(s.commands.len(), 1_501, "1,500 finished and the open one");
    assert_index_matches(&s);
}

#[test]
fn restored_commands_are_indexed_like_live_ones() {
    let mut live = state();
    for i in 0..5 {
        let c = accepted(&device(&mut live, DeviceAction::CollectInfo, i))
            .command
            .unwrap();
        devinfo(&mut live, c.timestamp, i);
    }
    let mut restored = state();
    for cmd in live.commands.values() {
        restored.restore_command(cmd.clone());
    }
    assert_eq!(
        restored.finished_ids().collect::<Vec<_>>(),
        live.finished_ids().collect::<Vec<_>>()
    );
    assert_index_matches(&restored);
}

#[test]
fn command_json_uses_string_timestamps() {
    let mut s = state();
    let c = accepted(&device(&mut s, DeviceAction::Poweroff, 1))
        .command
        .unwrap();
    let v: Value = serde_json::to_value(&s.commands[&c.id]).unwrap();
    assert_eq!(v["timestamp"], json!(c.timestamp.to_string()));
    assert_eq!(v["kind"], json!("device"));
    assert_eq!(v["action"], json!("poweroff"));
    let back: Command = serde_json::from_value(v).unwrap();
    assert_eq!(back, s.commands[&c.id]);
}

fn report_vision_halted(s: &mut State, vision_last: u64, at: u64) -> Applied<Vec<AppCommandOut>> {
    eve(
        s,
        poll::AppInfo {
            apps: vec![AppReport {
                id: VISION.into(),
                name: "vision".into(),
                last_cmd_timestamp: vision_last,
                info: json!({ "name": "vision", "state": "HALTED" }),
            }],
        },
        at,
    )
}

fn stalled_event<R>(a: &Applied<R>) -> Option<&Event> {
    a.effects.iter().find_map(|e| match e {
        Effect::Event(ev) if ev.event == EventName::CommandStalled => Some(ev),
        _ => None,
    })
}

#[test]
fn command_eve_never_acts_on_stalls_after_three_deliveries_over_two_polls() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    let cmd = accepted(&restart(&mut s, "vision", 1)).command.unwrap();
    report_apps(&mut s, 0, 0, 100);
    report_apps(&mut s, 0, 0, 3_100);
    assert_eq!(s.commands[&cmd.id].lifecycle, Lifecycle::Delivered);
    assert_eq!(s.commands[&cmd.id].deliveries, 2);
    let third = report_apps(&mut s, 0, 0, 100 + STALL_MIN_SPAN_MS);
    let ev = stalled_event(&third).expect("command_stalled");
    let reason = ev.data["stalled_reason"].as_str().unwrap();
    assert!(reason.contains("profile_server_token"), "{reason}");
    assert_eq!(ev.data["lifecycle"], "stalled");
    assert!(third
        .effects
        .contains(&Effect::Persist(Key::Command(cmd.id))));
    assert!(third.effects.contains(&Effect::Publish(StateTopic::Apps)));
    // Still served (EVE may act on it once its token is fixed), no longer signalled.
    assert_eq!(app_cmds(&third).len(), 1);
    assert!(!pending_endpoints(&s).contains(&Endpoint::AppInfo));
    let later = report_apps(&mut s, 0, 0, 20_000);
    assert!(stalled_event(&later).is_none(), "reported once");
    let done = report_apps(&mut s, cmd.timestamp, 0, 21_000);
    assert!(events(&done).contains(&"command_completed"));
    assert_eq!(s.commands[&cmd.id].lifecycle, Lifecycle::Completed);
}

#[test]
fn a_burst_of_signalled_polls_is_not_a_stall() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    let cmd = accepted(&restart(&mut s, "vision", 1)).command.unwrap();
    for at in [10, 20, 30, 40, 50] {
        assert!(stalled_event(&report_apps(&mut s, 0, 0, at)).is_none());
    }
    assert_eq!(s.commands[&cmd.id].lifecycle, Lifecycle::Delivered);
    assert_eq!(s.commands[&cmd.id].deliveries, 5);
    assert!(pending_endpoints(&s).contains(&Endpoint::AppInfo));
}

#[test]
fn restart_of_a_halted_app_says_so_at_acceptance_and_when_stalled() {
    let mut s = state();
    report_vision_halted(&mut s, 0, 0);
    let acc = restart(&mut s, "vision", 1);
    let note = accepted(&acc).note.clone().unwrap();
    assert!(
        note.contains("HALTED") && note.contains("profile"),
        "{note}"
    );
    let purge = intent(
        &mut s,
        Intent::AppCommand {
            app: "vision".into(),
            action: AppAction::Purge,
        },
        2,
    );
    assert_eq!(accepted(&purge).note, None, "EVE purges a halted app");
    let cmd = accepted(&restart(&mut s, "vision", 3)).command.unwrap();
    for at in [10, 3_000] {
        report_vision_halted(&mut s, 0, at);
    }
    let third = report_vision_halted(&mut s, 0, 10 + STALL_MIN_SPAN_MS);
    let reason = stalled_event(&third).unwrap().data["stalled_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("HALTED") && reason.contains("switch to a profile"),
        "{reason}"
    );
    assert_eq!(
        s.commands[&cmd.id].stalled_reason.as_deref(),
        Some(reason.as_str())
    );
}

#[test]
fn once_eve_has_acted_the_reason_is_only_the_count() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    let first = accepted(&restart(&mut s, "logger", 1)).command.unwrap();
    report_apps(&mut s, 0, first.timestamp, 2);
    let cmd = accepted(&restart(&mut s, "vision", 3)).command.unwrap();
    for at in [10, 3_000, 10 + STALL_MIN_SPAN_MS] {
        report_apps(&mut s, 0, first.timestamp, at);
    }
    let c = &s.commands[&cmd.id];
    assert_eq!(c.lifecycle, Lifecycle::Stalled);
    assert_eq!(
        c.stalled_reason.as_deref(),
        Some("EVE received it 3 times without reporting it done")
    );
}

#[test]
fn device_command_stalls_and_cancel_says_eve_may_have_it() {
    let mut s = state();
    let cmd = accepted(&device(&mut s, DeviceAction::Reboot, 0))
        .command
        .unwrap();
    for at in [10, 3_000, 10 + STALL_MIN_SPAN_MS] {
        assert!(devinfo(&mut s, 0, at).is_some(), "still served");
    }
    assert_eq!(s.commands[&cmd.id].lifecycle, Lifecycle::Stalled);
    assert!(!pending_endpoints(&s).contains(&Endpoint::DevInfo));
    let cancel = intent(&mut s, Intent::CancelDevice { id: None }, 7_000);
    assert!(accepted(&cancel).cancelled[0].may_have_been_received);
}

#[test]
fn delivered_commands_stall_when_eve_stops_polling() {
    let mut s = state();
    report_apps(&mut s, 0, 0, 0);
    let cmd = accepted(&restart(&mut s, "vision", 1)).command.unwrap();
    report_apps(&mut s, 0, 0, 2);
    let off = apply(&mut s, Tick, now(10_003));
    assert_eq!(events(&off), vec!["eve_offline", "command_stalled"]);
    let reason = s.commands[&cmd.id].stalled_reason.clone().unwrap();
    assert!(
        reason.starts_with("EVE has not polled since 20"),
        "{reason}"
    );
}

#[test]
fn last_seen_is_published_and_persisted_at_most_every_interval_and_survives_a_restart() {
    let mut s = state();
    let eve_topic = |a: &Applied<()>| a.effects.contains(&Effect::Publish(StateTopic::Eve));
    let first = eve(&mut s, poll::Signal, 0);
    assert!(eve_topic(&first) && first.effects.contains(&Effect::Persist(Key::Meta)));
    let soon = eve(&mut s, poll::Signal, 5_000);
    assert!(!eve_topic(&soon) && soon.effects.is_empty(), "rate-limited");
    assert_eq!(
        s.eve.last_seen_ms,
        Some(now(5_000).unix_ms()),
        "kept exact in memory"
    );
    let later = eve(&mut s, poll::Signal, LAST_SEEN_EVERY_MS);
    assert!(eve_topic(&later) && later.effects.contains(&Effect::Persist(Key::Meta)));
    assert_eq!(
        s.meta.eve_last_seen_ms,
        Some(now(LAST_SEEN_EVERY_MS).unix_ms())
    );
    // A restart loads only what is persisted: Meta, not the link.
    let restarted = State {
        meta: s.meta.clone(),
        ..state()
    };
    assert_eq!(
        restarted.eve_last_seen_ms(),
        Some(now(LAST_SEEN_EVERY_MS).unix_ms())
    );
    assert!(!restarted.eve.online);
}

#[test]
fn an_announced_event_goes_out_and_changes_nothing() {
    let mut s = state();
    let before = s.clone();
    let event = Event::new(EventName::RuleFired, json!({ "rule": "ups" }));
    let applied = apply(&mut s, Announce(event.clone()), now(1));
    assert_eq!(applied.effects, vec![Effect::Event(event)]);
    assert_eq!(s, before);
}

fn set_profile(s: &mut State, profile: &str, force: bool, at: u64) -> Applied<IntentReply> {
    intent(
        s,
        Intent::SetProfile {
            profile: profile.into(),
            force,
        },
        at,
    )
}

#[test]
fn profiles_outside_the_configured_ones_are_refused_unless_forced() {
    let mut s = State::new(Limits {
        profiles: vec!["day".to_string(), "night".to_string()].into(),
        ..Limits::default()
    });
    let a = set_profile(&mut s, "nigth", false, 1);
    assert_eq!(
        rejected(&a),
        &Refusal::UnknownProfile {
            profile: "nigth".into(),
            known: vec!["day".into(), "night".into()],
        }
    );
    assert!(a.effects.is_empty(), "a refusal changes nothing");
    assert_eq!(s.meta.desired.profile.name, "");
    assert_eq!(accepted(&set_profile(&mut s, "night", false, 2)).note, None);
    assert!(
        accepted(&set_profile(&mut s, "", false, 3)).note.is_none(),
        "clearing is always fine"
    );
    let forced = set_profile(&mut s, "maintenance", true, 4);
    assert!(accepted(&forced).note.as_deref().unwrap().contains("force"));
    assert_eq!(s.meta.desired.profile.name, "maintenance");
}

#[test]
fn without_configured_profiles_the_name_is_taken_with_a_note() {
    let mut s = state();
    let a = set_profile(&mut s, "nigth", false, 1);
    assert!(accepted(&a)
        .note
        .as_deref()
        .unwrap()
        .contains("not checked"));
    assert_eq!(s.meta.desired.profile.name, "nigth");
}

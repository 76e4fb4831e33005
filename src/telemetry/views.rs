//! JSON views of the state: what the retained MQTT topics (and later the REST API) show.

pub use crate::state::model::rfc3339_ms;
use crate::state::resolve::app_levels;
use crate::state::{
    boot_order_name, AppBootReport, AppTarget, BootEntry, Command, CommandKind, Outcome, Serve,
    State, StoreStatus,
};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The wall clock in Unix milliseconds, for the `at` of events and other display times.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An event as `B/events` and the SSE stream carry it: its fields plus `at`.
pub fn event(event: &crate::state::Event, at_ms: u64) -> Value {
    let mut body = serde_json::to_value(event).unwrap_or_default();
    body["at"] = json!(rfc3339_ms(at_ms));
    body
}

fn outcome(o: &Outcome) -> Value {
    match o {
        Outcome::Pending => json!({ "status": "pending" }),
        Outcome::Applied => json!({ "status": "applied" }),
        Outcome::Failed(e) => json!({ "status": "failed", "error": e }),
    }
}

pub fn command(cmd: &Command) -> Value {
    serde_json::to_value(cmd).unwrap_or(Value::Null)
}

pub fn eve(state: &State) -> Value {
    json!({
        "state": if state.eve.online { "online" } else { "offline" },
        "last_seen": state.eve_last_seen_ms().map(rfc3339_ms),
    })
}

/// Whether the store takes writes: in `/api/state`, the SSE state and `B/bridge/state`.
pub fn store(state: &State) -> Value {
    match &state.store {
        StoreStatus::Writable => json!({ "state": "writable" }),
        StoreStatus::ReadOnly { reason, since_ms } => json!({
            "state": "read-only",
            "reason": reason,
            "since": rfc3339_ms(*since_ms),
        }),
    }
}

/// `B/bridge/state` while the gateway runs: online, and whether its store takes writes.
pub fn bridge_state(state: &State) -> Value {
    match state.store.reason() {
        None => json!({ "state": "online", "store": "writable" }),
        Some(reason) => json!({ "state": "online", "store": "read-only", "store_reason": reason }),
    }
}

pub fn device(state: &State) -> Value {
    let mut body = match &state.reports.device {
        Some(Value::Object(report)) => report.clone(),
        _ => Map::new(),
    };
    let mut open = state.open_device_commands();
    body.insert(
        "command".into(),
        open.next().map(command).unwrap_or(Value::Null),
    );
    body.insert(
        "queued_commands".into(),
        Value::Array(open.map(command).collect()),
    );
    Value::Object(body)
}

fn target_matches(target: &AppTarget, id: &str, name: &str) -> bool {
    if target.id.is_empty() {
        target.name == name
    } else {
        target.id.eq_ignore_ascii_case(id)
    }
}

fn app_command<'a>(state: &'a State, id: &str, name: &str) -> Option<&'a Command> {
    state
        .commands
        .values()
        .rev()
        .find(|c| matches!(&c.kind, CommandKind::App { app, .. } if target_matches(app, id, name)))
}

fn boot_entry<'a>(state: &'a State, id: &str, name: &str) -> Option<&'a BootEntry> {
    let boot = &state.meta.desired.boot;
    if boot.serve == Serve::Unset {
        return None;
    }
    boot.entries
        .values()
        .find(|e| target_matches(&e.app, id, name))
}

/// What an app's view shows beside EVE's report.
struct Related<'a> {
    reported: Option<&'a AppBootReport>,
    boot: Option<&'a BootEntry>,
    command: Option<&'a Command>,
}

/// One app: EVE's report plus boot order, the desired override and the latest command.
pub fn app(state: &State, id: &str, name: &str, info: &Value) -> Value {
    let related = Related {
        reported: state
            .reports
            .boot
            .as_ref()
            .and_then(|list| list.iter().find(|b| b.id.eq_ignore_ascii_case(id))),
        boot: boot_entry(state, id, name),
        command: app_command(state, id, name),
    };
    app_view(id, name, info, &related)
}

fn app_view(id: &str, name: &str, info: &Value, related: &Related) -> Value {
    let mut body = match info {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    body.insert("id".into(), json!(id));
    body.insert("name".into(), json!(name));
    body.insert(
        "boot_order".into(),
        related
            .reported
            .map(|b| json!(b.boot_order))
            .unwrap_or(Value::Null),
    );
    body.insert(
        "boot_source".into(),
        related
            .reported
            .map(|b| json!(b.source))
            .unwrap_or(Value::Null),
    );
    body.insert(
        "boot_desired".into(),
        related
            .boot
            .map(|e| json!(boot_order_name(e.choice)))
            .unwrap_or(Value::Null),
    );
    body.insert(
        "command".into(),
        related.command.map(command).unwrap_or(Value::Null),
    );
    Value::Object(body)
}

/// Finds, for many apps at once, what [`app`] finds for one: one pass over the commands, boot
/// entries and boot reports instead of one pass per app (10,000 apps × 20,000 commands).
struct Index<'a> {
    command_by_id: HashMap<String, &'a Command>,
    command_by_name: HashMap<&'a str, &'a Command>,
    /// First match wins, as in [`boot_entry`]: the position keeps the entries' order.
    boot_by_id: HashMap<String, (usize, &'a BootEntry)>,
    boot_by_name: HashMap<&'a str, (usize, &'a BootEntry)>,
    reported: HashMap<String, &'a AppBootReport>,
}

impl<'a> Index<'a> {
    fn new(state: &'a State) -> Index<'a> {
        let mut index = Index {
            command_by_id: HashMap::new(),
            command_by_name: HashMap::new(),
            boot_by_id: HashMap::new(),
            boot_by_name: HashMap::new(),
            reported: HashMap::new(),
        };
        // Ascending ids: a later command overwrites, so each slot ends with the latest.
        for c in state.commands.values() {
            if let CommandKind::App { app, .. } = &c.kind {
                if app.id.is_empty() {
                    index.command_by_name.insert(&app.name, c);
                } else {
                    index.command_by_id.insert(app.id.to_ascii_lowercase(), c);
                }
            }
        }
        let boot = &state.meta.desired.boot;
        if boot.serve != Serve::Unset {
            for (i, e) in boot.entries.values().enumerate() {
                if e.app.id.is_empty() {
                    index.boot_by_name.entry(&e.app.name).or_insert((i, e));
                } else {
                    index
                        .boot_by_id
                        .entry(e.app.id.to_ascii_lowercase())
                        .or_insert((i, e));
                }
            }
        }
        for b in state.reports.boot.iter().flatten() {
            index.reported.entry(b.id.to_ascii_lowercase()).or_insert(b);
        }
        index
    }

    fn related(&self, id: &str, name: &str) -> Related<'a> {
        let id = id.to_ascii_lowercase();
        let command = [self.command_by_id.get(&id), self.command_by_name.get(name)]
            .into_iter()
            .flatten()
            .max_by_key(|c| c.id)
            .copied();
        let boot = [self.boot_by_id.get(&id), self.boot_by_name.get(name)]
            .into_iter()
            .flatten()
            .min_by_key(|(i, _)| *i)
            .map(|(_, e)| *e);
        Related {
            reported: self.reported.get(&id).copied(),
            boot,
            command,
        }
    }
}

/// Every reported app as (topic level, view), in EVE's order; levels from
/// [`crate::state::resolve::app_levels`], unique among the apps.
pub fn apps(state: &State) -> Vec<(String, Value)> {
    let Some(list) = &state.reports.apps else {
        return Vec::new();
    };
    let index = Index::new(state);
    list.iter()
        .zip(app_levels(list))
        .map(|(a, level)| {
            let related = index.related(&a.id, &a.name);
            (level, app_view(&a.id, &a.name, &a.info, &related))
        })
        .collect()
}

/// One `B/apps` entry: the short form of an app's view, with the level of its `B/app/<level>`.
pub fn app_summary(level: &str, v: &Value) -> Value {
    json!({
        "id": v["id"], "name": v["name"], "topic": level,
        "state": v.get("state").cloned().unwrap_or(Value::Null),
        "version": v.get("version").cloned().unwrap_or(Value::Null),
        "command": v["command"].get("lifecycle").map(|_| json!({
            "id": v["command"]["id"], "action": v["command"]["action"], "lifecycle": v["command"]["lifecycle"],
        })).unwrap_or(Value::Null),
    })
}

/// `B/apps`: a short summary per app.
pub fn apps_summary(state: &State) -> Value {
    Value::Array(
        apps(state)
            .iter()
            .map(|(level, v)| app_summary(level, v))
            .collect(),
    )
}

pub fn profile(state: &State) -> Value {
    let p = &state.meta.desired.profile;
    json!({
        "desired": p.name,
        "fetched": p.fetched,
        "set_at": (p.set_at_ms != 0).then(|| rfc3339_ms(p.set_at_ms)),
        "switch": p.outcome,
    })
}

pub fn radio(state: &State) -> Value {
    let r = &state.meta.desired.radio;
    let desired = (r.serve != Serve::Unset).then(|| {
        let mut v = outcome(&r.outcome);
        v["radio_silence"] = json!(r.radio_silence);
        v
    });
    json!({ "desired": desired, "reported": state.reports.radio })
}

pub fn network(state: &State) -> Value {
    let n = &state.meta.desired.network;
    let desired = (n.serve != Serve::Unset || n.outcome != Outcome::Pending).then(|| {
        let mut v = outcome(&n.outcome);
        v["ports"] = Value::Array(n.ports.iter().map(|p| p.config.clone()).collect());
        v["reverting"] = json!(n.serve == Serve::Clearing);
        v
    });
    json!({ "desired": desired, "reported": state.reports.network })
}

pub fn location(state: &State) -> Value {
    state.reports.location.clone().unwrap_or(Value::Null)
}

/// Everything at once, for the REST API and the dashboard.
pub fn full(state: &State) -> Value {
    let apps: Vec<Value> = apps(state).into_iter().map(|(_, v)| v).collect();
    json!({
        "eve": eve(state),
        "device": device(state),
        "apps": apps,
        "profile": profile(state),
        "radio": radio(state),
        "network": network(state),
        "location": location(state),
        "store": store(state),
    })
}

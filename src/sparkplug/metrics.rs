//! The metric table: what the node and each app (device) report, with datatypes, which metrics
//! are writable, and their aliases. Values come from the same JSON views as the MQTT state topics.

use super::payload::{DataType, Value};
use crate::state::State;
use crate::telemetry::views;
use serde_json::Value as Json;

/// One metric of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub name: &'static str,
    pub datatype: DataType,
    pub writable: bool,
}

const fn spec(name: &'static str, datatype: DataType, writable: bool) -> Spec {
    Spec {
        name,
        datatype,
        writable,
    }
}

pub const REBIRTH: &str = "Node Control/Rebirth";

/// Node metrics, in birth order; a metric's alias is its position + 1.
pub const NODE: &[Spec] = &[
    spec(super::payload::BD_SEQ, DataType::Int64, false),
    spec(REBIRTH, DataType::Boolean, true),
    spec("Device/State", DataType::String, false),
    spec("Device/Boot Time", DataType::DateTime, false),
    spec("Device/Last Boot Reason", DataType::String, false),
    spec("EVE/Online", DataType::Boolean, false),
    spec("EVE/Last Seen", DataType::DateTime, false),
    spec("Profile/Desired", DataType::String, true),
    spec("Profile/Fetched", DataType::Boolean, false),
    spec("Radio/Silence", DataType::Boolean, true),
    spec("Location/Latitude", DataType::Double, false),
    spec("Location/Longitude", DataType::Double, false),
    spec("Commands/Shutdown", DataType::Boolean, true),
    spec("Commands/Poweroff", DataType::Boolean, true),
    spec("Commands/Reboot", DataType::Boolean, true),
    spec("Command/State", DataType::String, false),
];

/// Metrics of each app, in birth order.
pub const DEVICE: &[Spec] = &[
    spec("State", DataType::String, false),
    spec("Version", DataType::String, false),
    spec("Error", DataType::String, false),
    spec("Boot Order", DataType::String, true),
    spec("Command/Name", DataType::String, false),
    spec("Command/Lifecycle", DataType::String, false),
    spec("Commands/Restart", DataType::Boolean, true),
    spec("Commands/Purge", DataType::Boolean, true),
];

/// Aliases of one device's metrics start here: above every node alias, one block per device
/// (the block is kept for the session, so an app that leaves and comes back keeps its aliases).
pub const DEVICE_ALIAS_START: u64 = 1_000;
pub const DEVICE_ALIAS_BLOCK: u64 = 100;

pub fn node_alias(index: usize) -> u64 {
    index as u64 + 1
}

/// The index of a node metric named or aliased so.
pub fn node_index(name: Option<&str>, alias: Option<u64>) -> Option<usize> {
    find(NODE, name, alias.and_then(|a| a.checked_sub(1)))
}

/// The index of a device metric, given the device's alias base.
pub fn device_index(name: Option<&str>, alias: Option<u64>, base: u64) -> Option<usize> {
    find(DEVICE, name, alias.and_then(|a| a.checked_sub(base)))
}

fn find(table: &[Spec], name: Option<&str>, index: Option<u64>) -> Option<usize> {
    match name {
        Some(name) => table.iter().position(|s| s.name == name),
        None => index.map(|i| i as usize).filter(|i| *i < table.len()),
    }
}

fn text(v: &Json, t: DataType) -> Value {
    match v.as_str() {
        Some(s) => Value::Text(s.to_string()),
        None => Value::Null(t),
    }
}

fn boolean(v: &Json) -> Value {
    v.as_bool()
        .map(Value::Bool)
        .unwrap_or(Value::Null(DataType::Boolean))
}

fn double(v: &Json) -> Value {
    v.as_f64()
        .map(Value::Double)
        .unwrap_or(Value::Null(DataType::Double))
}

/// An RFC 3339 time as Unix milliseconds.
fn datetime(v: &Json) -> Value {
    v.as_str()
        .and_then(|s| humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Value::DateTime(d.as_millis() as u64))
        .unwrap_or(Value::Null(DataType::DateTime))
}

/// The device command in flight (or the latest one): "<action> <lifecycle>", empty when none.
fn command_state(cmd: &Json) -> Value {
    match (cmd["action"].as_str(), cmd["lifecycle"].as_str()) {
        (Some(action), Some(lifecycle)) => Value::Text(format!("{action} {lifecycle}")),
        _ => Value::Text(String::new()),
    }
}

/// The node's metric values, in [`NODE`] order (bdSeq and Rebirth as given).
pub fn node_values(state: &State, bd_seq: u64) -> Vec<Value> {
    let device = views::device(state);
    let eve = views::eve(state);
    let profile = views::profile(state);
    let radio = views::radio(state);
    let location = views::location(state);
    // What EVE reports, or else what was asked for.
    let silence = match radio["reported"]["radio_silence"].as_bool() {
        Some(b) => Value::Bool(b),
        None => match radio["desired"]["radio_silence"].as_bool() {
            Some(b) => Value::Bool(b),
            None => Value::Bool(false),
        },
    };
    let values = vec![
        Value::Int64(bd_seq as i64),
        Value::Bool(false),
        text(&device["state"], DataType::String),
        datetime(&device["boot_time"]),
        text(&device["last_boot_reason"], DataType::String),
        Value::Bool(eve["state"] == "online"),
        datetime(&eve["last_seen"]),
        Value::Text(profile["desired"].as_str().unwrap_or_default().to_string()),
        boolean(&profile["fetched"]),
        silence,
        double(&location["latitude"]),
        double(&location["longitude"]),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        command_state(&device["command"]),
    ];
    debug_assert_eq!(values.len(), NODE.len());
    values
}

/// One app's metric values, in [`DEVICE`] order, from its `B/app/<level>` view.
pub fn device_values(app: &Json) -> Vec<Value> {
    let cmd = &app["command"];
    let error = app["err"]["description"]
        .as_str()
        .map(|s| Value::Text(s.to_string()))
        .unwrap_or(Value::Text(String::new()));
    // What EVE reports, else what was asked for, else EVE's default.
    let boot = ["boot_order", "boot_desired"]
        .iter()
        .find_map(|k| app[k].as_str())
        .map(|s| {
            Value::Text(
                s.trim_start_matches("BOOT_ORDER_")
                    .to_ascii_lowercase()
                    .replace("unspecified", "default"),
            )
        })
        .unwrap_or(Value::Text("default".into()));
    let values = vec![
        text(&app["state"], DataType::String),
        text(&app["version"], DataType::String),
        error,
        boot,
        text(&cmd["action"], DataType::String),
        text(&cmd["lifecycle"], DataType::String),
        Value::Bool(false),
        Value::Bool(false),
    ];
    debug_assert_eq!(values.len(), DEVICE.len());
    values
}

/// Every reported app as (device id, metric values); device ids are the apps' topic levels
/// (display names with `/ + #` replaced, unique within the node).
pub fn devices(state: &State) -> Vec<(String, Vec<Value>)> {
    views::apps(state)
        .into_iter()
        .map(|(level, view)| (level, device_values(&view)))
        .collect()
}

/// The EVE device UUID, once EVE has reported it.
pub fn device_uuid(state: &State) -> Option<String> {
    state
        .reports
        .device
        .as_ref()
        .and_then(|d| d["device_uuid"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_aliases_resolve_both_ways() {
        assert_eq!(node_index(Some(REBIRTH), None), Some(1));
        assert_eq!(node_index(None, Some(node_alias(7))), Some(7));
        assert_eq!(NODE[7].name, "Profile/Desired");
        assert_eq!(node_index(None, Some(0)), None);
        assert_eq!(node_index(None, Some(999)), None);
        assert_eq!(node_index(Some("Nope"), None), None);
        assert_eq!(device_index(None, Some(1_006), 1_000), Some(6));
        assert_eq!(device_index(None, Some(999), 1_000), None);
        assert!(DEVICE.len() as u64 <= DEVICE_ALIAS_BLOCK);
        let mut names: Vec<&str> = NODE.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), NODE.len(), "node metric names are unique");
    }

    #[test]
    fn values_follow_the_table_datatypes() {
        let state = State::new(crate::state::Limits::default());
        for (v, s) in node_values(&state, 4).iter().zip(NODE) {
            assert_eq!(v.datatype(), s.datatype, "{}", s.name);
        }
        let app = json!({
            "state": "RUNNING", "version": "1", "err": {"description": "disk"},
            "boot_order": "BOOT_ORDER_USB",
            "command": {"action": "restart", "lifecycle": "delivered"},
        });
        let values = device_values(&app);
        for (v, s) in values.iter().zip(DEVICE) {
            assert_eq!(v.datatype(), s.datatype, "{}", s.name);
        }
        assert_eq!(values[2], Value::Text("disk".into()));
        assert_eq!(values[3], Value::Text("usb".into()));
        assert_eq!(values[5], Value::Text("delivered".into()));
        assert_eq!(device_values(&json!({}))[0], Value::Null(DataType::String));
    }
}

//! EVE's protobuf messages ⇄ the core's domain inputs and replies. The only place both meet.

use crate::eve::common::BootOrder;
use crate::eve::info::ZInfoLocation;
use crate::eve::profile::{
    app_command, local_dev_cmd, AppBootConfig, AppBootConfigList, AppBootInfoList, AppCommand,
    BootOrderSource, LocalAppCmdList, LocalAppInfoList, LocalDevCmd, LocalDevInfo,
    LocalNetworkConfig, NetworkInfo, NetworkPortConfig, RadioConfig, RadioStatus,
};
use crate::state::{
    poll, AppAction, AppBootReport, AppCommandOut, AppReport, AppTarget, BootChoice, BootEntry,
    DeviceAction, NetworkPort,
};
use serde_json::Value;

/// Canonical JSON (proto field names) of an EVE message, for telemetry and the store.
pub fn to_json<T: serde::Serialize>(msg: &T) -> Value {
    serde_json::to_value(msg).unwrap_or(Value::Null)
}

pub fn radio_request(msg: &RadioStatus) -> poll::Radio {
    poll::Radio {
        radio_silence: msg.radio_silence,
        config_error: msg.config_error.clone(),
        report: to_json(msg),
    }
}

/// EVE's report is the source of truth, but one app is one entry: a later entry with the id
/// of an earlier one (ids compared case-insensitively; without an id, the name) is dropped, and
/// so is an entry with neither id nor name. Duplicates would otherwise share one retained
/// `B/app/<level>` topic and make a command by name or id ambiguous. EVE itself never sends them.
pub fn app_info_request(msg: &LocalAppInfoList) -> poll::AppInfo {
    let mut seen = std::collections::HashSet::new();
    let mut dropped = 0usize;
    let apps = msg
        .apps_info
        .iter()
        .filter(|a| {
            let target = AppTarget {
                id: a.id.clone(),
                name: a.name.clone(),
            };
            let keep = !(a.id.is_empty() && a.name.is_empty()) && seen.insert(target.key());
            dropped += usize::from(!keep);
            keep
        })
        .map(|a| AppReport {
            id: a.id.clone(),
            name: a.name.clone(),
            last_cmd_timestamp: a.last_cmd_timestamp,
            info: to_json(a),
        })
        .collect();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "appinfo: ignored entries that repeat an earlier app's id (or, without an id, its name) or have neither id nor name"
        );
    }
    poll::AppInfo { apps }
}

fn boot_order_name(value: i32) -> String {
    BootOrder::try_from(value)
        .map(|b| b.as_str_name().to_string())
        .unwrap_or_else(|_| value.to_string())
}

fn boot_source_name(value: i32) -> String {
    BootOrderSource::try_from(value)
        .map(|b| b.as_str_name().to_string())
        .unwrap_or_else(|_| value.to_string())
}

pub fn app_boot_request(msg: &AppBootInfoList) -> poll::AppBootInfo {
    let apps = msg
        .apps_boot_info
        .iter()
        .map(|a| AppBootReport {
            id: a.id.clone(),
            name: a.displayname.clone(),
            boot_order: boot_order_name(a.boot_order),
            source: boot_source_name(a.source),
        })
        .collect();
    poll::AppBootInfo { apps }
}

pub fn dev_info_request(msg: &LocalDevInfo) -> poll::DevInfo {
    poll::DevInfo {
        last_cmd_timestamp: msg.last_cmd_timestamp,
        report: to_json(msg),
    }
}

pub fn network_request(msg: &NetworkInfo) -> poll::Network {
    let (local_ports, local_error) = match &msg.local_config {
        Some(local) => (
            local
                .ports
                .iter()
                .map(|p| p.logical_label.clone())
                .collect(),
            local.error_message.clone(),
        ),
        None => (Vec::new(), String::new()),
    };
    let port_errors = msg
        .latest_config
        .iter()
        .filter(|p| !p.error_message.is_empty())
        .map(|p| (p.logical_label.clone(), p.error_message.clone()))
        .collect();
    poll::Network {
        local_ports,
        local_error,
        port_errors,
        report: to_json(msg),
    }
}

pub fn location_request(msg: &ZInfoLocation) -> poll::Location {
    poll::Location {
        report: to_json(msg),
    }
}

pub fn app_commands(token: &str, list: &[AppCommandOut]) -> LocalAppCmdList {
    LocalAppCmdList {
        server_token: token.to_string(),
        app_commands: list
            .iter()
            .map(|c| AppCommand {
                id: c.app.id.clone(),
                displayname: c.app.name.clone(),
                timestamp: c.timestamp,
                command: match c.action {
                    AppAction::Restart => app_command::Command::Restart,
                    AppAction::Purge => app_command::Command::Purge,
                } as i32,
            })
            .collect(),
    }
}

pub fn dev_command(token: &str, timestamp: u64, action: DeviceAction) -> LocalDevCmd {
    let command = match action {
        DeviceAction::Shutdown => local_dev_cmd::Command::Shutdown,
        DeviceAction::Poweroff => local_dev_cmd::Command::GracefulPoweroff,
        DeviceAction::Reboot => local_dev_cmd::Command::GracefulReboot,
        DeviceAction::CollectInfo => local_dev_cmd::Command::CollectInfo,
    };
    LocalDevCmd {
        server_token: token.to_string(),
        timestamp,
        command: command as i32,
    }
}

pub fn radio_config(token: &str, radio_silence: bool) -> RadioConfig {
    RadioConfig {
        server_token: token.to_string(),
        radio_silence,
    }
}

pub fn boot_configs(token: &str, entries: &[BootEntry]) -> AppBootConfigList {
    AppBootConfigList {
        server_token: token.to_string(),
        app_configs: entries
            .iter()
            .map(|e| AppBootConfig {
                id: e.app.id.clone(),
                displayname: e.app.name.clone(),
                usb_boot: match e.choice {
                    BootChoice::Usb => BootOrder::Usb,
                    BootChoice::Nousb => BootOrder::Nousb,
                    BootChoice::Default => BootOrder::Unspecified,
                } as i32,
            })
            .collect(),
    }
}

pub fn network_config(token: &str, ports: &[NetworkPort]) -> LocalNetworkConfig {
    LocalNetworkConfig {
        server_token: token.to_string(),
        ports: ports
            .iter()
            .filter_map(|p| match serde_json::from_value::<NetworkPortConfig>(p.config.clone()) {
                Ok(port) => Some(port),
                Err(err) => {
                    tracing::error!(port = %p.logical_label, %err, "stored port config no longer parses; not sent");
                    None
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_port;
    use crate::eve::profile::LocalAppInfo;
    use serde_json::json;

    #[test]
    fn an_app_report_keeps_one_entry_per_app() {
        let app = |id: &str, name: &str| LocalAppInfo {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        };
        let msg = LocalAppInfoList {
            apps_info: vec![
                app("6f1c2a3e-0000-4000-8000-000000000001", "vision"),
                app("6F1C2A3E-0000-4000-8000-000000000001", "vision-again"),
                app("", ""),
                app("", "nameless"),
                app("", "nameless"),
                app("6f1c2a3e-0000-4000-8000-000000000002", "nameless"),
            ],
        };
        let poll::AppInfo { apps } = app_info_request(&msg);
        let kept: Vec<(&str, &str)> = apps
            .iter()
            .map(|a| (a.id.as_str(), a.name.as_str()))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("6f1c2a3e-0000-4000-8000-000000000001", "vision"),
                ("", "nameless"),
                ("6f1c2a3e-0000-4000-8000-000000000002", "nameless"),
            ],
            "the first of each id (or nameless id) wins"
        );
    }

    /// An operator's port JSON, as the command grammar parses it, reaches EVE intact.
    #[test]
    fn port_json_accepts_proto_and_camel_names_and_normalizes() {
        let a =
            parse_port(&json!({ "logical_label": "eth0", "mtu": 1400, "use_dhcp": true })).unwrap();
        let b =
            parse_port(&json!({ "logicalLabel": "eth0", "mtu": 1400, "useDhcp": true })).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.config["logical_label"], "eth0");
        let sent = network_config("tok", &[a]);
        assert_eq!(sent.ports[0].mtu, 1400);
        assert_eq!(sent.server_token, "tok");
    }
}

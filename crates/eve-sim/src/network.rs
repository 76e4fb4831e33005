//! Network ports (POST network): the controller's port config, the stored
//! LPS ports and their merge, with EVE's validation (localcommand
//! `networkPortConfigFromProto`) and per-port permission (dpcmanager
//! `mergeWithLpsConfig`).

use std::net::IpAddr;

use super::http::INVALID_TOKEN;
use super::node::{now_timestamp, Effect, SimState};
use super::options::real;
use super::snapshot::{Endpoint, SimNetwork};
use eve_proto::common::{DhcpOptionsIgnore, NetworkConfigOrigin, PortConfigSource, ProxyConfig};
use eve_proto::profile::network_port_config::WirelessConfig;
use eve_proto::profile::{
    CellularConfig, IpVersion, LocalNetworkConfig, LocalNetworkConfigInfo,
    NetworkConfigTestingStatus, NetworkInfo, NetworkPortAddresses, NetworkPortConfig,
    NetworkPortStatus, WirelessType,
};

const MIN_MTU: u32 = 1280;
const MAX_MTU: u32 = 65535;
const DEFAULT_MTU: u32 = 1500;

#[derive(Clone, Debug)]
pub(crate) struct NetState {
    /// The controller's ports (EVE's latest DPC before the LPS merge).
    pub controller: Vec<NetworkPortConfig>,
    /// Runtime status of each controller port under the controller config.
    pub base_status: Vec<NetworkPortStatus>,
    /// Stored LPS ports, normalized (persisted on EVE).
    pub local: Vec<NetworkPortConfig>,
    /// EVE's `lastNetworkErr`: result of the last poll's apply.
    pub last_error: Option<String>,
    pub last_rejection: Option<String>,
}

fn controller_port(
    label: &str,
    pci: &str,
    allowed: bool,
    cellular: bool,
    submitted: &pbjson_types::Timestamp,
) -> NetworkPortConfig {
    NetworkPortConfig {
        logical_label: label.to_string(),
        port_addresses: Some(NetworkPortAddresses {
            interface_name: label.to_string(),
            pci_address: pci.to_string(),
            usb_address: String::new(),
        }),
        config_applied: true,
        use_dhcp: true,
        dhcp_options_ignore: Some(DhcpOptionsIgnore::default()),
        proxy_config: Some(ProxyConfig::default()),
        wireless_device_type: if cellular {
            WirelessType::Cellular
        } else {
            WirelessType::Unspecified
        } as i32,
        wireless_config: cellular.then(|| {
            WirelessConfig::CellularConfig(CellularConfig {
                apn: "internet".to_string(),
                location_tracking: true,
                ..Default::default()
            })
        }),
        config_source: Some(PortConfigSource {
            origin: NetworkConfigOrigin::Controller as i32,
            submitted_at: Some(*submitted),
        }),
        local_modifications_allowed: allowed,
        ..Default::default()
    }
}

fn port_status(
    label: &str,
    mac: &str,
    ip: &str,
    gw: &str,
    dns: &str,
    domain: &str,
) -> NetworkPortStatus {
    NetworkPortStatus {
        logical_label: label.to_string(),
        interface_name: label.to_string(),
        link_up: true,
        mac_address: mac.to_string(),
        ip_addresses: vec![ip.to_string()],
        gateways: vec![gw.to_string()],
        dns_servers: vec![dns.to_string()],
        dns_domain: domain.to_string(),
        ntp_servers: vec![gw.to_string()],
        mtu: DEFAULT_MTU,
    }
}

/// Go `net.ParseCIDR`-like check.
fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.parse::<u32>().is_ok_and(|p| p <= max)
}

/// Validates one LPS port against the current config and returns it as EVE
/// stores and reports it. Any error rejects the whole message.
fn normalize_port(
    controller: &[NetworkPortConfig],
    p: &NetworkPortConfig,
    submitted: &pbjson_types::Timestamp,
) -> Result<NetworkPortConfig, String> {
    let label = &p.logical_label;
    if label.is_empty() {
        return Err("port configuration with undefined logical label".to_string());
    }
    let Some(cport) = controller.iter().find(|c| &c.logical_label == label) else {
        return Err(format!(
            "port with logical label {label:?} not found in the current config"
        ));
    };
    if p.mtu != 0 && p.mtu < MIN_MTU {
        return Err(format!("port {label:?}: MTU ({}) is too small", p.mtu));
    }
    if p.mtu > MAX_MTU {
        return Err(format!("port {label:?}: MTU ({}) is too large", p.mtu));
    }
    if p.ip_addresses.len() > 1 {
        return Err(format!(
            "port {label:?}: multiple static IP addresses are not supported"
        ));
    }
    if let Some(ip) = p.ip_addresses.first() {
        if !is_cidr(ip) {
            return Err(format!(
                "port {label:?}: invalid IP address {ip:?}: invalid CIDR address: {ip}"
            ));
        }
    }
    if p.gateways.len() > 1 {
        return Err(format!(
            "port {label:?}: multiple static IP gateways are not supported"
        ));
    }
    if let Some(gw) = p.gateways.first() {
        if gw.parse::<IpAddr>().is_err() {
            return Err(format!("port {label:?}: invalid gateway IP address {gw:?}"));
        }
    }
    if let Some(dns) = p.dns_servers.iter().find(|d| d.parse::<IpAddr>().is_err()) {
        return Err(format!(
            "port {label:?}: invalid DNS server IP address {dns:?}"
        ));
    }

    // Wireless: the oneof member must match the declared type; credentials
    // are kept for applying but never reported back.
    let (wtype, wconfig) = match WirelessType::try_from(p.wireless_device_type) {
        Ok(WirelessType::Cellular) => {
            let Some(WirelessConfig::CellularConfig(c)) = &p.wireless_config else {
                return Err(format!("port {label:?}: missing cellular configuration"));
            };
            let known_ip_type = |t: i32| (0..=3).contains(&t);
            if !known_ip_type(c.ip_type) || !known_ip_type(c.attach_ip_type) {
                return Err(format!("port {label:?}: unsupported cellular IP type"));
            }
            let mut c = c.clone();
            for auth in [&mut c.default_bearer_auth, &mut c.attach_bearer_auth]
                .into_iter()
                .flatten()
            {
                if !(0..=3).contains(&auth.auth_protocol) {
                    return Err(format!(
                        "port {label:?}: unsupported authentication protocol"
                    ));
                }
                auth.username.clear();
                auth.password.clear();
            }
            (
                WirelessType::Cellular,
                Some(WirelessConfig::CellularConfig(c)),
            )
        }
        Ok(WirelessType::Wifi) => {
            let Some(WirelessConfig::WifiConfig(w)) = &p.wireless_config else {
                return Err(format!("port {label:?}: missing WiFi configuration"));
            };
            if !(0..=2).contains(&w.key_scheme) {
                return Err(format!("port {label:?}: unsupported WiFi key scheme"));
            }
            let mut w = w.clone();
            w.identity.clear();
            w.password.clear();
            (WirelessType::Wifi, Some(WirelessConfig::WifiConfig(w)))
        }
        // EVE ignores a oneof member without a matching type.
        _ => (WirelessType::Unspecified, None),
    };

    Ok(NetworkPortConfig {
        logical_label: label.clone(),
        port_addresses: cport.port_addresses.clone(),
        config_applied: false,
        // EVE stores "unspecified" as IPv4-preferred dual stack.
        ip_version: if p.ip_version == IpVersion::Unspecified as i32 {
            IpVersion::DualStack as i32
        } else {
            p.ip_version
        },
        use_dhcp: p.use_dhcp,
        dhcp_options_ignore: Some(p.dhcp_options_ignore.unwrap_or_default()),
        ip_addresses: p.ip_addresses.clone(),
        gateways: p.gateways.clone(),
        without_default_route: p.without_default_route,
        dns_servers: p.dns_servers.clone(),
        dns_domain: p.dns_domain.clone(),
        ntp_servers: p.ntp_servers.clone(),
        mtu: p.mtu,
        proxy_config: Some(p.proxy_config.clone().unwrap_or_default()),
        wireless_device_type: wtype as i32,
        wireless_config: wconfig,
        config_source: Some(PortConfigSource {
            origin: NetworkConfigOrigin::Lps as i32,
            submitted_at: Some(*submitted),
        }),
        error_message: String::new(),
        local_modifications_allowed: false,
    })
}

/// Validates a whole `LocalNetworkConfig` body: all ports or nothing.
pub(crate) fn validate_local_config(
    controller: &[NetworkPortConfig],
    ports: &[NetworkPortConfig],
) -> Result<Vec<NetworkPortConfig>, String> {
    let submitted = now_timestamp();
    ports
        .iter()
        .map(|p| normalize_port(controller, p, &submitted))
        .collect()
}

/// Equal apart from when they were submitted (EVE `MostlyEqual`).
fn mostly_equal(a: &[NetworkPortConfig], b: &[NetworkPortConfig]) -> bool {
    let strip = |ports: &[NetworkPortConfig]| -> Vec<NetworkPortConfig> {
        ports
            .iter()
            .map(|p| NetworkPortConfig {
                config_source: None,
                ..p.clone()
            })
            .collect()
    };
    strip(a) == strip(b)
}

/// One controller port after the LPS merge.
struct MergedPort {
    config: NetworkPortConfig,
    status: NetworkPortStatus,
    /// The LPS entry for this port was applied.
    applied: bool,
    /// Why the LPS entry for this port was not applied.
    lps_error: Option<String>,
}

impl NetState {
    pub fn new() -> Self {
        let boot = now_timestamp();
        NetState {
            controller: vec![
                controller_port("eth0", "0000:00:1f.6", true, false, &boot),
                controller_port("eth1", "0000:02:00.0", true, false, &boot),
                controller_port("wwan0", "", false, true, &boot),
            ],
            base_status: vec![
                port_status(
                    "eth0",
                    "00:1b:21:3a:4f:10",
                    "192.168.10.23/24",
                    "192.168.10.1",
                    "192.168.10.1",
                    "plant.local",
                ),
                port_status(
                    "eth1",
                    "00:1b:21:3a:4f:11",
                    "10.20.0.15/24",
                    "10.20.0.1",
                    "10.20.0.1",
                    "",
                ),
                port_status(
                    "wwan0",
                    "6a:2c:91:04:5e:7b",
                    "100.72.14.9/30",
                    "100.72.14.10",
                    "10.74.210.210",
                    "",
                ),
            ],
            local: Vec::new(),
            last_error: None,
            last_rejection: None,
        }
    }

    fn merge(&self, radio_silence: bool) -> Vec<MergedPort> {
        self.controller
            .iter()
            .zip(&self.base_status)
            .map(|(c, base)| {
                let mut status = base.clone();
                if radio_silence && c.wireless_device_type == WirelessType::Cellular as i32 {
                    status.link_up = false;
                    status.ip_addresses.clear();
                    status.gateways.clear();
                }
                let label = &c.logical_label;
                let Some(l) = self.local.iter().find(|l| &l.logical_label == label) else {
                    return MergedPort {
                        config: c.clone(),
                        status,
                        applied: false,
                        lps_error: None,
                    };
                };
                let refuse = |why: String| MergedPort {
                    config: NetworkPortConfig {
                        error_message: why.clone(),
                        ..c.clone()
                    },
                    status: status.clone(),
                    applied: false,
                    lps_error: Some(why),
                };
                if !c.local_modifications_allowed {
                    return refuse(format!(
                        "local modifications not permitted for port {label:?}"
                    ));
                }
                if c.wireless_device_type != l.wireless_device_type {
                    return refuse(format!(
                        "LPS configuration for port {label:?} rejected: wireless type mismatch \
                         (controller={}, LPS={})",
                        wireless_name(c.wireless_device_type),
                        wireless_name(l.wireless_device_type)
                    ));
                }
                // Usage, cost, labels and addresses stay the controller's.
                let config = NetworkPortConfig {
                    ip_version: l.ip_version,
                    use_dhcp: l.use_dhcp,
                    dhcp_options_ignore: l.dhcp_options_ignore,
                    ip_addresses: l.ip_addresses.clone(),
                    gateways: l.gateways.clone(),
                    without_default_route: l.without_default_route,
                    dns_servers: l.dns_servers.clone(),
                    dns_domain: l.dns_domain.clone(),
                    ntp_servers: l.ntp_servers.clone(),
                    mtu: l.mtu,
                    proxy_config: l.proxy_config.clone(),
                    wireless_device_type: l.wireless_device_type,
                    wireless_config: l.wireless_config.clone(),
                    config_source: l.config_source,
                    config_applied: true,
                    error_message: String::new(),
                    ..c.clone()
                };
                status.mtu = if l.mtu == 0 { DEFAULT_MTU } else { l.mtu };
                if !l.use_dhcp {
                    status.ip_addresses = l.ip_addresses.clone();
                    status.gateways = l.gateways.clone();
                    status.dns_servers = l.dns_servers.clone();
                    status.ntp_servers = l.ntp_servers.clone();
                }
                if l.without_default_route {
                    status.gateways.clear();
                }
                if !l.dns_domain.is_empty() {
                    status.dns_domain = l.dns_domain.clone();
                }
                MergedPort {
                    config,
                    status,
                    applied: true,
                    lps_error: None,
                }
            })
            .collect()
    }

    /// `local_config.ports` as reported: stored ports with their apply result.
    fn local_report(&self, merged: &[MergedPort]) -> Vec<NetworkPortConfig> {
        self.local
            .iter()
            .map(|l| {
                let m = merged
                    .iter()
                    .find(|m| m.config.logical_label == l.logical_label);
                NetworkPortConfig {
                    config_applied: m.is_some_and(|m| m.applied),
                    error_message: m.and_then(|m| m.lps_error.clone()).unwrap_or_default(),
                    ..l.clone()
                }
            })
            .collect()
    }

    pub fn snapshot(&self, radio_silence: bool) -> SimNetwork {
        let merged = self.merge(radio_silence);
        SimNetwork {
            local_ports: self.local_report(&merged),
            ports: merged.iter().map(|m| m.config.clone()).collect(),
            port_status: merged.into_iter().map(|m| m.status).collect(),
            error_message: self.last_error.clone().unwrap_or_default(),
            last_rejection: self.last_rejection.clone(),
        }
    }
}

fn wireless_name(t: i32) -> String {
    WirelessType::try_from(t)
        .map(|w| w.as_str_name().to_string())
        .unwrap_or_else(|_| t.to_string())
}

impl SimState {
    pub fn build_network_info(&self) -> NetworkInfo {
        let merged = self.net.merge(self.radio.applied);
        NetworkInfo {
            config_testing: Some(NetworkConfigTestingStatus {
                controller_reachable: true,
                connectivity_error: String::new(),
                last_test_time: Some(now_timestamp()),
                testing_in_progress: false,
                testing_phase: String::new(),
            }),
            is_using_fallback_config: false,
            fallback_config: Vec::new(),
            local_config: Some(LocalNetworkConfigInfo {
                ports: self.net.local_report(&merged),
                error_message: self.net.last_error.clone().unwrap_or_default(),
            }),
            latest_config: merged.iter().map(|m| m.config.clone()).collect(),
            port_status: merged.into_iter().map(|m| m.status).collect(),
        }
    }

    /// End of a network poll (EVE `applyLocalNetworkConfig`): `body` is the
    /// 200/201 body, `None` for anything else. The result becomes the
    /// `error_message` of the next POST (so `None` clears it).
    pub fn apply_network_reply(&mut self, body: Option<&LocalNetworkConfig>) -> Vec<Effect> {
        let Some(cfg) = body else {
            self.net.last_error = None;
            return Vec::new();
        };
        if cfg.server_token != self.token {
            self.counters(Endpoint::Network).token_mismatches += 1;
            self.note_failure(Endpoint::Network, INVALID_TOKEN);
            self.net.last_error = Some(INVALID_TOKEN.to_string());
            self.net.last_rejection = Some(INVALID_TOKEN.to_string());
            return Vec::new();
        }
        let ports = match validate_local_config(&self.net.controller, &cfg.ports) {
            Ok(ports) => ports,
            Err(why) => {
                tracing::warn!(error = %why, "sim: network config rejected");
                self.net.last_error = Some(why.clone());
                self.net.last_rejection = Some(why);
                return Vec::new();
            }
        };
        self.net.last_error = None;
        if mostly_equal(&ports, &self.net.local) {
            return Vec::new();
        }
        let what = if ports.is_empty() {
            "network:revert".to_string()
        } else {
            let labels: Vec<_> = ports.iter().map(|p| p.logical_label.as_str()).collect();
            format!("network:{}", labels.join("+"))
        };
        self.net.local = ports;
        self.receive(Endpoint::Network, what, None, 0);
        // NIM applies it; the changed port list makes EVE POST again.
        vec![Effect::TriggerAfter(
            Endpoint::Network,
            self.timing.scale(real::REPORT_AGAIN),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::tests::state_with;
    use eve_proto::profile::WifiConfig;

    fn port(label: &str) -> NetworkPortConfig {
        NetworkPortConfig {
            logical_label: label.to_string(),
            ..Default::default()
        }
    }

    fn body(ports: Vec<NetworkPortConfig>) -> LocalNetworkConfig {
        LocalNetworkConfig {
            server_token: "tok".to_string(),
            ports,
        }
    }

    fn rejects(p: NetworkPortConfig, expect: &str) {
        let mut s = state_with("");
        let e = s.apply_network_reply(Some(&body(vec![port("eth1"), p])));
        assert!(e.is_empty());
        assert!(s.net.local.is_empty(), "nothing stored");
        let err = s.net.last_error.clone().unwrap();
        assert!(err.contains(expect), "{err:?} should contain {expect:?}");
        assert_eq!(
            s.build_network_info().local_config.unwrap().error_message,
            err
        );
    }

    #[test]
    fn validation_rejects_the_whole_message() {
        rejects(port("eth9"), "port with logical label \"eth9\" not found");
        rejects(port(""), "undefined logical label");
        rejects(
            NetworkPortConfig {
                mtu: 70_000,
                ..port("eth0")
            },
            "MTU (70000) is too large",
        );
        rejects(
            NetworkPortConfig {
                mtu: 500,
                ..port("eth0")
            },
            "MTU (500) is too small",
        );
        rejects(
            NetworkPortConfig {
                ip_addresses: vec!["10.0.0.2/24".into(), "10.0.0.3/24".into()],
                ..port("eth0")
            },
            "multiple static IP addresses",
        );
        rejects(
            NetworkPortConfig {
                ip_addresses: vec!["10.0.0.2".into()],
                ..port("eth0")
            },
            "invalid IP address",
        );
        rejects(
            NetworkPortConfig {
                gateways: vec!["10.0.0.1".into(), "10.0.0.254".into()],
                ..port("eth0")
            },
            "multiple static IP gateways",
        );
        rejects(
            NetworkPortConfig {
                dns_servers: vec!["8.8.8.8".into(), "dns.example".into()],
                ..port("eth0")
            },
            "invalid DNS server IP address \"dns.example\"",
        );
        rejects(
            NetworkPortConfig {
                wireless_device_type: WirelessType::Cellular as i32,
                ..port("wwan0")
            },
            "missing cellular configuration",
        );
        rejects(
            NetworkPortConfig {
                wireless_device_type: WirelessType::Wifi as i32,
                ..port("eth0")
            },
            "missing WiFi configuration",
        );
    }

    #[test]
    fn allowed_port_is_applied_refused_port_is_stored_with_error() {
        let mut s = state_with("");
        let eth0 = NetworkPortConfig {
            use_dhcp: false,
            ip_addresses: vec!["192.168.50.10/24".into()],
            gateways: vec!["192.168.50.1".into()],
            dns_servers: vec!["192.168.50.1".into()],
            mtu: 9000,
            ..port("eth0")
        };
        let wwan0 = NetworkPortConfig {
            use_dhcp: true,
            wireless_device_type: WirelessType::Cellular as i32,
            wireless_config: Some(WirelessConfig::CellularConfig(CellularConfig {
                apn: "private.apn".into(),
                ..Default::default()
            })),
            ..port("wwan0")
        };
        let e = s.apply_network_reply(Some(&body(vec![eth0, wwan0])));
        assert!(matches!(
            e[..],
            [Effect::TriggerAfter(Endpoint::Network, _)]
        ));
        assert_eq!(s.net.local.len(), 2);

        let info = s.build_network_info();
        let latest = &info.latest_config;
        let e0 = latest.iter().find(|p| p.logical_label == "eth0").unwrap();
        assert_eq!(e0.mtu, 9000);
        assert!(!e0.use_dhcp);
        assert_eq!(
            e0.config_source.unwrap().origin,
            NetworkConfigOrigin::Lps as i32
        );
        assert!(e0.local_modifications_allowed, "controller flag kept");
        let w = latest.iter().find(|p| p.logical_label == "wwan0").unwrap();
        assert_eq!(
            w.error_message,
            "local modifications not permitted for port \"wwan0\""
        );
        assert_eq!(
            w.config_source.unwrap().origin,
            NetworkConfigOrigin::Controller as i32
        );
        let st = info
            .port_status
            .iter()
            .find(|p| p.logical_label == "eth0")
            .unwrap();
        assert_eq!(st.ip_addresses, vec!["192.168.50.10/24".to_string()]);
        assert_eq!(st.mtu, 9000);

        let local = info.local_config.unwrap();
        assert_eq!(local.error_message, "");
        let l0 = local
            .ports
            .iter()
            .find(|p| p.logical_label == "eth0")
            .unwrap();
        assert!(l0.config_applied);
        let lw = local
            .ports
            .iter()
            .find(|p| p.logical_label == "wwan0")
            .unwrap();
        assert!(!lw.config_applied);
        assert!(lw.error_message.contains("not permitted"));

        // The same config again changes nothing.
        let again = body(vec![s.net.local[0].clone(), s.net.local[1].clone()]);
        assert!(s.apply_network_reply(Some(&again)).is_empty());

        // Empty ports revert all local changes.
        let e = s.apply_network_reply(Some(&body(vec![])));
        assert_eq!(e.len(), 1);
        assert!(s.net.local.is_empty());
        let e0 = s.build_network_info().latest_config[0].clone();
        assert_eq!(
            e0.config_source.unwrap().origin,
            NetworkConfigOrigin::Controller as i32
        );
        assert_eq!(s.received.last().unwrap().command, "network:revert");
    }

    #[test]
    fn wireless_type_mismatch_is_a_port_error() {
        let mut s = state_with("");
        let eth1 = NetworkPortConfig {
            wireless_device_type: WirelessType::Wifi as i32,
            wireless_config: Some(WirelessConfig::WifiConfig(WifiConfig {
                ssid: "plant".into(),
                password: "secret".into(),
                ..Default::default()
            })),
            ..port("eth1")
        };
        s.apply_network_reply(Some(&body(vec![eth1])));
        let info = s.build_network_info();
        let l = &info.local_config.unwrap().ports[0];
        assert!(l.error_message.contains("wireless type mismatch"));
        // Credentials are never reported back.
        let Some(WirelessConfig::WifiConfig(w)) = &l.wireless_config else {
            panic!("wifi config kept")
        };
        assert!(w.password.is_empty());
    }

    #[test]
    fn token_mismatch_is_reported_once_then_cleared() {
        let mut s = state_with("");
        let mut b = body(vec![port("eth0")]);
        b.server_token = "wrong".into();
        s.apply_network_reply(Some(&b));
        assert!(s.net.local.is_empty());
        assert_eq!(
            s.build_network_info().local_config.unwrap().error_message,
            INVALID_TOKEN
        );
        assert_eq!(s.endpoints[&Endpoint::Network].token_mismatches, 1);
        // A 204 (or failure) on the next poll clears it, as on EVE.
        s.apply_network_reply(None);
        assert_eq!(
            s.build_network_info().local_config.unwrap().error_message,
            ""
        );
        assert_eq!(s.net.last_rejection.as_deref(), Some(INVALID_TOKEN));
    }

    #[test]
    fn cidr_check() {
        assert!(is_cidr("10.0.0.1/24"));
        assert!(is_cidr("fd00::1/64"));
        assert!(!is_cidr("10.0.0.1"));
        assert!(!is_cidr("10.0.0.1/33"));
        assert!(!is_cidr("10.0.0.1/"));
        assert!(!is_cidr("10.0.0.300/24"));
    }
}

//! `[mqtt.external]` → rumqttc options: URL, credentials, Last Will, packet limits and the
//! rustls client config (custom CA or system roots, optional client certificate). Everything
//! that can be wrong in the config is found here, before any connection attempt.

use super::ExternalError;
use crate::config::ExternalBroker;
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The Last Will and the graceful goodbye on `B/bridge/state`.
pub const OFFLINE: &[u8] = br#"{"state":"offline"}"#;
/// The birth published after every ConnAck.
pub const ONLINE: &[u8] = br#"{"state":"online"}"#;

/// MQTT's largest packet (remaining length of 268,435,455 bytes plus a 5-byte fixed header).
const MQTT_MAX_PACKET: usize = 268_435_460;
const MIN_PACKET: usize = 1024;

fn invalid(key: &'static str, reason: impl Into<String>) -> ExternalError {
    ExternalError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// A parsed `mqtt.external.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    /// A host name, an IPv4 address, or an IPv6 address in brackets (`[::1]`).
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// `mqtt://host[:port]` (default 1883) or `mqtts://host[:port]` (default 8883).
pub fn parse_url(url: &str) -> Result<BrokerUrl, ExternalError> {
    const KEY: &str = "mqtt.external.url";
    let url = url.trim();
    let bad = |why: &str| invalid(KEY, format!("'{url}' {why}"));
    let (tls, rest) = if let Some(rest) = strip_prefix_ci(url, "mqtts://") {
        (true, rest)
    } else if let Some(rest) = strip_prefix_ci(url, "mqtt://") {
        (false, rest)
    } else {
        return Err(bad(
            "must start with mqtt:// (plain TCP) or mqtts:// (TLS), e.g. mqtts://broker.plant.local:8883",
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(bad(
            "must not carry credentials; use mqtt.external.username and password (or LPS_BRIDGE_MQTT_PASSWORD)",
        ));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(bad("must be only scheme://host[:port] (no path or query)"));
    }
    let (host, port) = if let Some(after) = authority.strip_prefix('[') {
        let (inside, tail) = after
            .split_once(']')
            .ok_or_else(|| bad("has an IPv6 address without its closing ']'"))?;
        inside
            .parse::<Ipv6Addr>()
            .map_err(|_| bad(&format!("has an invalid IPv6 address '{inside}'")))?;
        if tls {
            // rumqttc resolves "host:port" and names the TLS server with the same host text,
            // so a bracketed literal works for TCP but can never be a TLS server name.
            return Err(bad(
                "uses an IPv6 address literal, which mqtts:// does not support; use a host name",
            ));
        }
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| bad("has text after the IPv6 address"))?,
            ),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err(bad(
                    "has an IPv6 address; write it in brackets: mqtt://[::1]:1883",
                ))
            }
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(bad(&format!("has an invalid host name '{host}'")));
    }
    let port = match port {
        None if tls => 8883,
        None => 1883,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(bad(&format!("has an invalid port '{p}' (1-65535)"))),
        },
    };
    Ok(BrokerUrl { tls, host, port })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, ExternalError> {
    std::fs::read(path).map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ExternalError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                key,
                format!("{}: not a valid PEM file: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            format!(
                "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

fn roots(cfg: &ExternalBroker) -> Result<RootCertStore, ExternalError> {
    const KEY: &str = "mqtt.external.ca_file";
    let mut roots = RootCertStore::empty();
    if let Some(path) = &cfg.ca_file {
        for (i, cert) in certificates(KEY, path)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                invalid(
                    KEY,
                    format!(
                        "{}: certificate {} is not a usable CA certificate: {e}",
                        path.display(),
                        i + 1
                    ),
                )
            })?;
        }
        return Ok(roots);
    }
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(invalid(
            KEY,
            format!(
                "not set, and no system CA certificates were found{why}; set ca_file to the PEM CA of the plant broker"
            ),
        ));
    }
    Ok(roots)
}

/// The rustls client config: ring as the crypto provider, TLS 1.2 and 1.3, server certificates
/// checked against `ca_file` (or the system roots) including the host name, and the client
/// certificate when `cert_file` and `key_file` are set.
pub fn tls_config(cfg: &ExternalBroker) -> Result<Arc<ClientConfig>, ExternalError> {
    let provider = rustls::crypto::ring::default_provider();
    // For any other rustls user in the process; ours is given explicitly below.
    let _ = provider.clone().install_default();
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("mqtt.external.url", format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots(cfg)?);
    let config = match (&cfg.cert_file, &cfg.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(invalid(
                "mqtt.external.key_file",
                "is required with cert_file (the client certificate's private key, PEM)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "mqtt.external.cert_file",
                "is required with key_file (the client certificate, PEM)",
            ))
        }
        (Some(cert_path), Some(key_path)) => {
            const KEY: &str = "mqtt.external.key_file";
            let certs = certificates("mqtt.external.cert_file", cert_path)?;
            let key = PrivateKeyDer::from_pem_slice(&read(KEY, key_path)?).map_err(|e| {
                invalid(
                    KEY,
                    format!(
                        "{}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
                        key_path.display()
                    ),
                )
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                invalid(
                    KEY,
                    format!(
                        "{}: cannot be used with cert_file {}: {e}",
                        key_path.display(),
                        cert_path.display()
                    ),
                )
            })?
        }
    };
    Ok(Arc::new(config))
}

/// Checks every setting and builds the client options, with `will_topic` as the Last Will.
pub fn mqtt_options(
    cfg: &ExternalBroker,
    will_topic: &str,
) -> Result<(MqttOptions, BrokerUrl), ExternalError> {
    let url = parse_url(&cfg.url)?;
    if cfg.client_id.trim().is_empty() {
        return Err(invalid(
            "mqtt.external.client_id",
            "must not be empty: give every gateway a stable, unique id (e.g. lps-bridge-node1)",
        ));
    }
    if !cfg.keep_alive.is_zero() && cfg.keep_alive < Duration::from_secs(1) {
        return Err(invalid(
            "mqtt.external.keep_alive",
            "must be at least 1s (or 0s to turn keep-alive off)",
        ));
    }
    if cfg.keep_alive > Duration::from_secs(u64::from(u16::MAX)) {
        return Err(invalid(
            "mqtt.external.keep_alive",
            "must be at most 65535s (18h 12m 15s)",
        ));
    }
    if !(MIN_PACKET..=MQTT_MAX_PACKET).contains(&cfg.max_packet_bytes) {
        return Err(invalid(
            "mqtt.external.max_packet_bytes",
            format!("must be between {MIN_PACKET} and {MQTT_MAX_PACKET}"),
        ));
    }
    if cfg.backoff_max.is_zero() {
        return Err(invalid(
            "mqtt.external.backoff_max",
            "must be longer than 0s",
        ));
    }
    if cfg.password.is_some() && cfg.username.is_none() {
        return Err(invalid(
            "mqtt.external.password",
            "is set without username (MQTT 3.1.1 sends a password only with a user name)",
        ));
    }
    if !url.tls {
        let files = [
            ("mqtt.external.ca_file", &cfg.ca_file),
            ("mqtt.external.cert_file", &cfg.cert_file),
            ("mqtt.external.key_file", &cfg.key_file),
        ];
        if let Some((key, _)) = files.iter().find(|(_, f)| f.is_some()) {
            return Err(invalid(
                key,
                format!(
                    "is set but url '{}' is plain TCP; use mqtts:// for TLS",
                    cfg.url.trim()
                ),
            ));
        }
    }

    let mut options = MqttOptions::new(cfg.client_id.trim(), url.host.clone(), url.port);
    options
        .set_keep_alive(cfg.keep_alive)
        .set_max_packet_size(cfg.max_packet_bytes, cfg.max_packet_bytes)
        // We resubscribe and republish everything after each ConnAck.
        .set_clean_session(true)
        // A command is acknowledged once ingress has it, not when read (`forward`).
        .set_manual_acks(true)
        .set_last_will(LastWill::new(will_topic, OFFLINE, QoS::AtLeastOnce, true));
    if let Some(user) = &cfg.username {
        options.set_credentials(user.clone(), cfg.password.clone().unwrap_or_default());
    }
    if url.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls_config(cfg)?,
        )));
    }
    Ok((options, url))
}

/// A minimal valid config for unit tests of this module and its parent.
#[cfg(test)]
pub(super) fn test_config(url: &str, backoff_max: Duration) -> ExternalBroker {
    ExternalBroker {
        url: url.into(),
        client_id: "node1".into(),
        username: None,
        password: None,
        ca_file: None,
        cert_file: None,
        key_file: None,
        keep_alive: Duration::from_secs(30),
        max_packet_bytes: 1 << 20,
        backoff_max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> ExternalBroker {
        test_config(url, Duration::from_secs(60))
    }

    fn url(tls: bool, host: &str, port: u16) -> BrokerUrl {
        BrokerUrl {
            tls,
            host: host.into(),
            port,
        }
    }

    fn err(result: Result<impl std::fmt::Debug, ExternalError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn urls_parse_with_default_ports() {
        assert_eq!(
            parse_url("mqtt://broker").unwrap(),
            url(false, "broker", 1883)
        );
        assert_eq!(
            parse_url("mqtts://broker.plant.local").unwrap(),
            url(true, "broker.plant.local", 8883)
        );
        assert_eq!(
            parse_url(" MQTTS://10.0.0.5:9883/ ").unwrap(),
            url(true, "10.0.0.5", 9883)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1884").unwrap(),
            url(false, "[::1]", 1884)
        );
        assert_eq!(parse_url("mqtt://[fe80::1]").unwrap().port, 1883);
        assert_eq!(
            parse_url("mqtts://broker:8883").unwrap().to_string(),
            "mqtts://broker:8883"
        );
    }

    #[test]
    fn bad_urls_name_the_key_and_the_reason() {
        for (u, why) in [
            ("http://broker", "must start with mqtt://"),
            ("broker:1883", "must start with mqtt://"),
            ("mqtt://", "no host"),
            ("mqtt://:1883", "no host"),
            ("mqtt://broker:0", "invalid port '0'"),
            ("mqtt://broker:99999", "invalid port '99999'"),
            ("mqtt://broker:x", "invalid port 'x'"),
            ("mqtt://broker/topic", "no path"),
            ("mqtt://broker?client_id=x", "no path"),
            ("mqtt://user:pw@broker", "credentials"),
            ("mqtt://::1", "brackets"),
            ("mqtt://[::1", "closing ']'"),
            ("mqtt://[nope]:1", "invalid IPv6"),
            ("mqtts://[::1]:8883", "host name"),
            ("mqtt://bro ker", "invalid host name"),
        ] {
            let e = err(parse_url(u));
            assert!(
                e.starts_with("mqtt.external.url: ") && e.contains(why),
                "{u}: {e}"
            );
        }
    }

    #[test]
    fn settings_are_checked_with_the_key_named() {
        let mut c = cfg("mqtt://broker");
        c.client_id = " ".into();
        assert!(err(mqtt_options(&c, "b/bridge/state")).starts_with("mqtt.external.client_id:"));
        let mut c = cfg("mqtt://broker");
        c.keep_alive = Duration::from_millis(500);
        assert!(err(mqtt_options(&c, "b/bridge/state")).starts_with("mqtt.external.keep_alive:"));
        let mut c = cfg("mqtt://broker");
        c.max_packet_bytes = 100;
        assert!(
            err(mqtt_options(&c, "b/bridge/state")).starts_with("mqtt.external.max_packet_bytes:")
        );
        let mut c = cfg("mqtt://broker");
        c.backoff_max = Duration::ZERO;
        assert!(err(mqtt_options(&c, "b/bridge/state")).starts_with("mqtt.external.backoff_max:"));
        let mut c = cfg("mqtt://broker");
        c.password = Some("pw".into());
        assert!(err(mqtt_options(&c, "b/bridge/state")).starts_with("mqtt.external.password:"));
        let mut c = cfg("mqtt://broker");
        c.ca_file = Some("/etc/ca.pem".into());
        let e = err(mqtt_options(&c, "b/bridge/state"));
        assert!(
            e.starts_with("mqtt.external.ca_file:") && e.contains("mqtts://"),
            "{e}"
        );
    }

    #[test]
    fn options_carry_will_packet_limits_and_credentials() {
        let mut c = cfg("mqtt://broker:1999");
        c.username = Some("lps".into());
        c.password = Some("secret".into());
        c.max_packet_bytes = 300_000;
        let (o, u) = mqtt_options(&c, "lps/edge/bridge/state").unwrap();
        assert_eq!(u, url(false, "broker", 1999));
        assert_eq!(o.broker_address(), ("broker".to_string(), 1999));
        assert_eq!(o.client_id(), "node1");
        assert_eq!(o.keep_alive(), Duration::from_secs(30));
        assert_eq!(o.max_packet_size(), 300_000);
        assert!(o.clean_session());
        let will = o.last_will().unwrap();
        assert_eq!(will.topic, "lps/edge/bridge/state");
        assert_eq!(&will.message[..], OFFLINE);
        assert!(will.retain);
        assert_eq!(will.qos, QoS::AtLeastOnce);
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("lps", "secret")
        );
    }

    #[test]
    fn tls_file_errors_name_the_key_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();

        let mut c = cfg("mqtts://broker");
        c.ca_file = Some(missing.clone());
        let e = err(mqtt_options(&c, "b/bridge/state"));
        assert!(
            e.starts_with("mqtt.external.ca_file: cannot read ")
                && e.contains(&missing.display().to_string()),
            "{e}"
        );

        c.ca_file = Some(garbage.clone());
        let e = err(mqtt_options(&c, "b/bridge/state"));
        assert!(
            e.starts_with("mqtt.external.ca_file: ") && e.contains("no PEM certificate"),
            "{e}"
        );

        let (ca_pem, cert_pem, key_pem) = test_pki();
        let ca = dir.path().join("ca.pem");
        let cert = dir.path().join("client.pem");
        let key = dir.path().join("client.key");
        std::fs::write(&ca, ca_pem).unwrap();
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        c.ca_file = Some(ca.clone());
        assert!(mqtt_options(&c, "b/bridge/state").is_ok());

        c.cert_file = Some(cert.clone());
        let e = err(mqtt_options(&c, "b/bridge/state"));
        assert!(e.starts_with("mqtt.external.key_file: is required"), "{e}");

        c.key_file = Some(garbage.clone());
        let e = err(mqtt_options(&c, "b/bridge/state"));
        assert!(
            e.starts_with("mqtt.external.key_file: ") && e.contains("no usable private key"),
            "{e}"
        );

        c.key_file = Some(key.clone());
        assert!(mqtt_options(&c, "b/bridge/state").is_ok());

        c.cert_file = None;
        let e = err(mqtt_options(&c, "b/bridge/state"));
        assert!(e.starts_with("mqtt.external.cert_file: is required"), "{e}");

        // A key that belongs to another certificate.
        let (_, _, other_key) = test_pki();
        let other = dir.path().join("other.key");
        std::fs::write(&other, other_key).unwrap();
        c.cert_file = Some(cert);
        c.key_file = Some(other);
        let e = err(mqtt_options(&c, "b/bridge/state"));
        assert!(e.starts_with("mqtt.external.key_file: "), "{e}");
    }

    /// A CA, and a client certificate it signed with that certificate's key (all PEM).
    fn test_pki() -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["node1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }
}

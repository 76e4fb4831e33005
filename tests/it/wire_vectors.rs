//! Proves that our own `proto/` schema is wire- and JSON-compatible with EVE's.
//!
//! `tests/data/eve-lps-vectors.json` was produced with the official eve-api
//! Python bindings (lf-edge/eve-api @c022866). For every vector this test
//! decodes the binary with our generated type and checks that
//! - re-encoding gives identical bytes (so no field was dropped as unknown,
//!   and numbers, wire types, packing and field order all match),
//! - serde JSON output equals the canonical proto3 JSON with proto field
//!   names (`json_proto_names`),
//! - parsing both `json_proto_names` and `json_camel` gives the same message
//!   and the same bytes.

use std::fmt::Debug;

use lps_bridge::eve::{info, profile};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const VECTORS: &str = include_str!("../data/eve-lps-vectors.json");

#[derive(Deserialize)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    message: String,
    variant: String,
    binary_hex: String,
    json_proto_names: String,
    json_camel: String,
}

#[test]
fn every_vector_round_trips() {
    let file: VectorFile = serde_json::from_str(VECTORS).expect("vector file parses");
    assert!(!file.vectors.is_empty(), "no vectors in the file");

    let mut checked = 0;
    for v in &file.vectors {
        match v.message.as_str() {
            "org.lfedge.eve.profile.LocalProfile" => check::<profile::LocalProfile>(v),
            "org.lfedge.eve.profile.RadioStatus" => check::<profile::RadioStatus>(v),
            "org.lfedge.eve.profile.CellularStatus" => check::<profile::CellularStatus>(v),
            "org.lfedge.eve.profile.RadioConfig" => check::<profile::RadioConfig>(v),
            "org.lfedge.eve.profile.LocalAppInfoList" => check::<profile::LocalAppInfoList>(v),
            "org.lfedge.eve.profile.LocalAppInfo" => check::<profile::LocalAppInfo>(v),
            "org.lfedge.eve.profile.LocalAppCmdList" => check::<profile::LocalAppCmdList>(v),
            "org.lfedge.eve.profile.AppCommand" => check::<profile::AppCommand>(v),
            "org.lfedge.eve.profile.LocalDevInfo" => check::<profile::LocalDevInfo>(v),
            "org.lfedge.eve.profile.LocalDevCmd" => check::<profile::LocalDevCmd>(v),
            "org.lfedge.eve.profile.AppBootConfig" => check::<profile::AppBootConfig>(v),
            "org.lfedge.eve.profile.AppBootConfigList" => check::<profile::AppBootConfigList>(v),
            "org.lfedge.eve.profile.AppBootInfo" => check::<profile::AppBootInfo>(v),
            "org.lfedge.eve.profile.AppBootInfoList" => check::<profile::AppBootInfoList>(v),
            "org.lfedge.eve.profile.NetworkInfo" => check::<profile::NetworkInfo>(v),
            "org.lfedge.eve.profile.NetworkConfigTestingStatus" => {
                check::<profile::NetworkConfigTestingStatus>(v)
            }
            "org.lfedge.eve.profile.NetworkPortStatus" => check::<profile::NetworkPortStatus>(v),
            "org.lfedge.eve.profile.LocalNetworkConfigInfo" => {
                check::<profile::LocalNetworkConfigInfo>(v)
            }
            "org.lfedge.eve.profile.LocalNetworkConfig" => check::<profile::LocalNetworkConfig>(v),
            "org.lfedge.eve.profile.NetworkPortAddresses" => {
                check::<profile::NetworkPortAddresses>(v)
            }
            "org.lfedge.eve.profile.NetworkPortConfig" => check::<profile::NetworkPortConfig>(v),
            "org.lfedge.eve.profile.CellularConfig" => check::<profile::CellularConfig>(v),
            "org.lfedge.eve.profile.CellularNetworkAuth" => {
                check::<profile::CellularNetworkAuth>(v)
            }
            "org.lfedge.eve.profile.CellularConnectivityProbe" => {
                check::<profile::CellularConnectivityProbe>(v)
            }
            "org.lfedge.eve.profile.WifiConfig" => check::<profile::WifiConfig>(v),
            "org.lfedge.eve.profile.Signal" => check::<profile::Signal>(v),
            "org.lfedge.eve.info.ZInfoLocation" => check::<info::ZInfoLocation>(v),
            other => panic!("vector for unexpected message {other} ({})", v.variant),
        }
        checked += 1;
    }
    assert_eq!(checked, file.vectors.len(), "some vectors were not checked");
}

/// Runs every check of the module doc on one vector, decoded as `M`.
fn check<M>(v: &Vector)
where
    M: Message + Default + PartialEq + Debug + Serialize + DeserializeOwned,
{
    let ctx = format!("{} ({})", v.message, v.variant);
    let bytes = hex_decode(&v.binary_hex);

    let decoded = M::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{ctx}: decode: {e}"));
    assert_eq!(
        hex_encode(&decoded.encode_to_vec()),
        v.binary_hex,
        "{ctx}: re-encoded bytes differ"
    );

    let ours = normalize_utc_offset(serde_json::to_value(&decoded).expect("serializes"));
    let expected: Value = serde_json::from_str(&v.json_proto_names).expect("vector JSON parses");
    assert_eq!(ours, expected, "{ctx}: JSON differs");

    for (form, text) in [
        ("json_proto_names", &v.json_proto_names),
        ("json_camel", &v.json_camel),
    ] {
        let parsed: M =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{ctx}: parse {form}: {e}"));
        assert_eq!(parsed, decoded, "{ctx}: {form} parses to another message");
        assert_eq!(
            hex_encode(&parsed.encode_to_vec()),
            v.binary_hex,
            "{ctx}: {form} encodes to other bytes"
        );
    }
}

/// The one JSON normalization: `pbjson_types::Timestamp` writes UTC as
/// `+00:00` (chrono's `to_rfc3339`), while canonical proto3 JSON writes `Z`.
/// Both are the same RFC 3339 instant and every proto3 JSON parser accepts
/// both; the fraction digits (0, 3, 6 or 9) already match. Only strings that
/// are a complete RFC 3339 date-time ending in `+00:00` are rewritten.
fn normalize_utc_offset(value: Value) -> Value {
    match value {
        Value::String(s) => match s.strip_suffix("+00:00") {
            Some(base) if is_rfc3339_without_offset(base) => Value::String(format!("{base}Z")),
            _ => Value::String(s),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_utc_offset).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalize_utc_offset(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `YYYY-MM-DDTHH:MM:SS` with an optional `.` and 1 to 9 fraction digits.
fn is_rfc3339_without_offset(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 19 {
        return false;
    }
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let head_ok = shape.iter().zip(b).all(|(&want, &got)| match want {
        b'd' => got.is_ascii_digit(),
        _ => got == want,
    });
    let frac = &b[19..];
    let frac_ok = frac.is_empty()
        || (frac[0] == b'.'
            && (2..=10).contains(&frac.len())
            && frac[1..].iter().all(u8::is_ascii_digit));
    head_ok && frac_ok
}

fn hex_decode(hex: &str) -> Vec<u8> {
    assert!(hex.len() % 2 == 0, "odd-length hex");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("valid hex"))
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `LocalDevCmd.Command` has `allow_alias`: JSON writers emit the first name
/// of 2, parsers accept both names and the number.
#[test]
fn local_dev_cmd_alias_is_accepted_in_json() {
    let canonical: profile::LocalDevCmd =
        serde_json::from_str(r#"{"command":"COMMAND_GRACEFUL_POWEROFF"}"#).unwrap();
    let alias: profile::LocalDevCmd =
        serde_json::from_str(r#"{"command":"COMMAND_SHUTDOWN_POWEROFF"}"#).unwrap();
    let number: profile::LocalDevCmd = serde_json::from_str(r#"{"command":2}"#).unwrap();
    assert_eq!(canonical.command, 2);
    assert_eq!(alias, canonical);
    assert_eq!(number, canonical);
    assert_eq!(
        serde_json::to_string(&alias).unwrap(),
        r#"{"command":"COMMAND_GRACEFUL_POWEROFF"}"#
    );
    assert!(serde_json::from_str::<profile::LocalDevCmd>(r#"{"command":"NOPE"}"#).is_err());
    assert!(serde_json::from_str::<profile::LocalDevCmd>(r#"{"command":99}"#).is_err());
}

/// The NDJSON line of the signal stream as EVE documents it (camelCase key).
#[test]
fn signal_ndjson_line_parses() {
    let signal: profile::Signal = serde_json::from_str(
        r#"{"pendingChanges":["CONFIG_ENDPOINT_NETWORK","CONFIG_ENDPOINT_APP_INFO"]}"#,
    )
    .unwrap();
    assert_eq!(
        signal.pending_changes().collect::<Vec<_>>(),
        [
            profile::ConfigEndpoint::Network,
            profile::ConfigEndpoint::AppInfo
        ]
    );
    assert_eq!(signal.encode_to_vec(), [0x0a, 0x02, 0x06, 0x03]);
}

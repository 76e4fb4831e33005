#![allow(dead_code)] // each fuzz target uses one of these

//! What each fuzz target does with its input, in one place: the cargo-fuzz targets in
//! fuzz_targets/ call these, and tests/it/fuzz_regressions.rs replays the seed corpus and every
//! crash input through them in `cargo test`. Each function must not panic on any input.

use lps_bridge::command::Target;
use lps_bridge::config::{ActionConfig, Config, RuleConfig};
use lps_bridge::eve::info::ZInfoLocation;
use lps_bridge::eve::profile::{
    AppBootInfoList, LocalAppInfoList, LocalDevInfo, NetworkInfo, RadioStatus,
};
use lps_bridge::lps::convert;
use lps_bridge::mqtt::topics::{filter_matches, valid_filter};
use lps_bridge::state::{apply, Input, Limits, Now, State};
use prost::Message;
use std::time::Duration;
use tokio::time::Instant;

/// Every protobuf body EVE posts to the LPS: the first byte picks the endpoint (0 radio,
/// 1 appinfo, 2 appbootinfo, 3 devinfo, 4 location, 5 network), the rest is the body. Decoded
/// as the handler decodes it, turned into the store's request, and applied to a fresh state
/// with the pure `apply`, as the store actor would.
pub fn eve_body(data: &[u8]) {
    let Some((&endpoint, body)) = data.split_first() else {
        return;
    };
    let _ = match endpoint % 6 {
        0 => RadioStatus::decode(body).map(|m| fresh_apply(convert::radio_request(&m))),
        1 => LocalAppInfoList::decode(body).map(|m| fresh_apply(convert::app_info_request(&m))),
        2 => AppBootInfoList::decode(body).map(|m| fresh_apply(convert::app_boot_request(&m))),
        3 => LocalDevInfo::decode(body).map(|m| fresh_apply(convert::dev_info_request(&m))),
        4 => ZInfoLocation::decode(body).map(|m| fresh_apply(convert::location_request(&m))),
        _ => NetworkInfo::decode(body).map(|m| fresh_apply(convert::network_request(&m))),
    };
}

fn fresh_apply<I: Input>(request: I) {
    let mut state = State::new(Limits::default());
    let now = Now {
        unix_ns: 1_700_000_000_000_000_000,
        mono_ms: 1_000,
    };
    let _ = apply(&mut state, request, now);
}

/// The MQTT / REST command payload parser; the first byte picks the command topic.
pub fn command(data: &[u8]) {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let topic = match which % 5 {
        0 => Target::Profile,
        1 => Target::App("vision".into()),
        2 => Target::Device,
        3 => Target::Radio,
        _ => Target::Network,
    };
    let _ = lps_bridge::command::parse(&topic, payload);
}

/// The bridge-rule matcher: `filter \n topic \n json-pointer \n payload`. The filter functions
/// on their own, then a rule compiled from them seeing the message.
pub fn rule_match(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (Some(filter), Some(topic), Some(pointer)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let payload = parts.next().unwrap_or_default();
    let (Ok(filter), Ok(topic), Ok(pointer)) = (
        std::str::from_utf8(filter),
        std::str::from_utf8(topic),
        std::str::from_utf8(pointer),
    ) else {
        return;
    };
    let _ = valid_filter(filter);
    let _ = filter_matches(filter, topic);
    let _ = lps_bridge::rules::overlap(filter, topic);
    let _ = lps_bridge::rules::contains(filter, topic);
    let rule = RuleConfig {
        name: "fuzz".into(),
        topic: filter.into(),
        payload: None,
        json: Some(pointer.into()),
        equals: Some(serde_json::json!("on")),
        hold: Duration::ZERO,
        action: ActionConfig {
            app: Some("{1}".into()),
            command: Some("restart".into()),
            ..ActionConfig::default()
        },
        enabled: true,
    };
    if let Ok(mut engine) = lps_bridge::rules::compile(&[rule]) {
        let _ = engine.on_message(topic, payload, Instant::now());
    }
}

/// The config loader: TOML text → Config → checked the way start-up checks it (`app::prepare`:
/// the config's own checks, then each subsystem's), and the redacted print-out.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut config) = Config::from_toml(text) {
        let _ = config.to_redacted_toml();
        // prepare() reads the TLS files it names: file contents are not config text, and a
        // name like /dev/zero would only measure the fuzzer's patience.
        config.mqtt.tls = None;
        let _ = lps_bridge::app::prepare(config);
    }
}

//! EVE-side requests the suite sends itself (beside the simulator): protobuf bodies over a fresh
//! connection each, as EVE does, with their status and duration.

use lps_bridge::eve::info::ZSwState;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use prost::Message;
use std::time::{Duration, Instant};

pub const PROTO: &str = "application/x-proto-binary";

/// A client that opens a new connection per request, as EVE does.
pub fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POSTs raw bytes to `endpoint`; the status (0 if the request failed) and the time it took.
pub async fn post(
    http: &reqwest::Client,
    lps: &str,
    endpoint: &str,
    body: Vec<u8>,
) -> (u16, Duration) {
    let t = Instant::now();
    let status = http
        .post(format!("{lps}/api/v1/{endpoint}"))
        .header("Content-Type", PROTO)
        .header("X-Request-Id", uuid::Uuid::new_v4().to_string())
        .body(body)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    (status, t.elapsed())
}

pub async fn get_profile(http: &reqwest::Client, lps: &str) -> (u16, Duration) {
    let t = Instant::now();
    let status = http
        .get(format!("{lps}/api/v1/local_profile"))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    (status, t.elapsed())
}

pub fn app(id: String, name: String) -> LocalAppInfo {
    LocalAppInfo {
        id,
        name,
        version: "1".into(),
        state: ZSwState::Running as i32,
        ..Default::default()
    }
}

pub fn uuid_n(n: usize) -> String {
    format!("6f1c2a3e-0000-4000-8000-{n:012}")
}

/// An appinfo body with the given apps.
pub fn appinfo(apps: Vec<LocalAppInfo>) -> Vec<u8> {
    LocalAppInfoList { apps_info: apps }.encode_to_vec()
}

/// `vision` and `logger`, as the simulator reports them.
pub fn two_apps() -> Vec<u8> {
    appinfo(vec![
        app(uuid_n(1), "vision".into()),
        app(uuid_n(2), "logger".into()),
    ])
}

/// `depth` length-delimited field-1 wrappers around nothing: protobuf nested deeper than any
/// decoder's recursion limit.
pub fn nested(depth: usize) -> Vec<u8> {
    let mut body: Vec<u8> = Vec::new();
    for _ in 0..depth {
        let mut outer = vec![0x0a];
        prost::encoding::encode_varint(body.len() as u64, &mut outer);
        outer.extend_from_slice(&body);
        body = outer;
    }
    body
}

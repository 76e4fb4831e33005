//! Test harness: a real gateway on ephemeral ports with a real data dir, a real MQTT client, and
//! raw EVE requests. Every wait has a deadline; nothing sleeps blindly.
#![allow(dead_code)]

pub mod load;
pub mod mqtt;
pub mod plant;
pub mod reports;
pub mod store;

use lps_bridge::app::{self, Running};
use lps_bridge::config::Config;
use prost::Message;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Prometheus text at `{base}/metrics` (`base`: the operator API's `http://host:port`).
pub async fn metrics_text(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Patience for asynchronous propagation (raise with LPS_TEST_PATIENCE_MS on slow machines).
pub fn patience() -> Duration {
    let ms = std::env::var("LPS_TEST_PATIENCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15_000);
    Duration::from_millis(ms)
}

/// The tracing layers the binary installs that tests depend on: the embedded broker's loss
/// counter (`mqtt::alerts::layer`). The subscriber is process-wide and every test shares this
/// process, so it is installed once, here, for every gateway (the binary always has it), rather
/// than by whichever test happens to start first.
pub fn install_log_layers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let _ = tracing_subscriber::registry()
            .with(lps_bridge::mqtt::alerts::layer())
            .try_init();
    });
}

/// A free TCP port on loopback (rumqttd cannot report the port it bound, so we choose it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub const TOKEN: &str = "test-token";

/// The gateway's MQTT base topic (the default).
pub const B: &str = "lps/edge";

/// A config for tests: everything on loopback, a fast signal pacer, the given data dir.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.lps.listen = "127.0.0.1:0".into();
    c.lps.server_token = TOKEN.into();
    c.lps.signal_interval = Duration::from_millis(200);
    c.lps.eve_offline_after = Duration::from_secs(2);
    c.mqtt.listen = format!("127.0.0.1:{}", free_port());
    c.operator.listen = "127.0.0.1:0".into();
    c.store.dir = dir.to_path_buf();
    c
}

pub struct TestGateway {
    pub running: Option<Running>,
    pub lps: String,
    pub mqtt_port: u16,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestGateway {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = test_config(tmp.path());
        tweak(&mut config);
        let mut gw = Self::start_config(config).await;
        gw._tmp = Some(tmp);
        gw
    }

    pub async fn start_config(config: Config) -> TestGateway {
        install_log_layers();
        let dir = config.store.dir.clone();
        let prepared = app::prepare(config).unwrap();
        let mqtt_port = prepared.settings.mqtt_listen.map(|a| a.port()).unwrap_or(0);
        let running = app::start(prepared).await.unwrap();
        let lps = format!("http://{}", running.lps_addr);
        TestGateway {
            running: Some(running),
            lps,
            mqtt_port,
            dir,
            _tmp: None,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn lps_addr(&self) -> SocketAddr {
        self.running().lps_addr
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// A raw EVE-style request: protobuf body, EVE's content type, a request id.
pub async fn eve_post<M: Message>(base: &str, endpoint: &str, msg: &M) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/{endpoint}"))
        .header("Content-Type", "application/x-proto-binary")
        .header("X-Request-Id", uuid::Uuid::new_v4().to_string())
        .body(msg.encode_to_vec())
        .send()
        .await
        .unwrap()
}

pub async fn eve_get(base: &str, endpoint: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/{endpoint}"))
        .send()
        .await
        .unwrap()
}

pub async fn decode<M: Message + Default>(resp: reqwest::Response) -> M {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-proto-binary");
    M::decode(resp.bytes().await.unwrap()).unwrap()
}

/// Polls `check` until it returns Some, or panics with `what` after the patience.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves EVE's whole device-command queue at `lps`, reporting each command done before asking
/// for the next; returns the timestamps in the order EVE was given them (strictly increasing).
#[allow(dead_code)]
pub async fn serve_device_queue(lps: &str) -> Vec<u64> {
    use lps_bridge::eve::profile::{LocalDevCmd, LocalDevInfo};
    let mut served = Vec::new();
    let mut last = 0;
    loop {
        let resp = eve_post(
            lps,
            "devinfo",
            &LocalDevInfo {
                last_cmd_timestamp: last,
                ..Default::default()
            },
        )
        .await;
        if resp.status() == 204 {
            return served;
        }
        let cmd: LocalDevCmd = decode(resp).await;
        assert!(cmd.timestamp > last, "strictly increasing");
        served.push(cmd.timestamp);
        last = cmd.timestamp;
    }
}

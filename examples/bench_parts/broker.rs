//! Benchmarks 5–7: the broker under a load that makes a subscriber fall behind, against
//! Mosquitto in the same run with the same load generator (`tests/it/common/load.rs`), and the
//! QoS 1 command → reply latency from default rumqttc clients with a QoS 0 baseline.
//!
//! 5. Reply flood: 10 clients publish 2,000 app commands each (QoS 1); one QoS 1 subscriber on
//!    `B/response/#` counts distinct replies. Brokers: lps-bridge's embedded broker (default
//!    config and the former 1 MiB × 2 log), and Mosquitto (default queue and
//!    `max_queued_messages 0`) with the same gateway connected to it as `[mqtt.external]`.
//! 6. Fan-in: 10 publishers → 1 subscriber, 100,000 × 64 B at QoS 1 on one plant topic.
//! 7. Command → reply latency at 1, 8 and 64 clients, each client commanding its own app and
//!    waiting for the reply before the next command; QoS 1, then QoS 0 in the same gateway.
//! 12. Fan-out: 1 publisher → 50 QoS 1 subscribers on one plant topic.
//! 13. Latency at a fixed 1,000 msg/s: 1 publisher paced by the clock → 1 QoS 1 subscriber.
//! 14. 1,000 idle connections (raw MQTT CONNECT, keep-alive 60 s, nothing else): the broker's RSS
//!     and CPU seconds after they connected.
//!
//! Runs alternate between the brokers (run 1 of each, then run 2 of each, ...), each with a fresh
//! broker process, so that a slow phase of a shared machine hits all of them alike.
//!
//! Every broker runs as its own process (fresh per run): peak RSS is its VmHWM, CPU is its
//! utime + stime over the load, both from /proc.

use super::eve_side::Scale;
use super::load::{self, Clock, Subscriber};
use super::{free_port, read_mem, release_binary, summarize, Child, BASE, TOKEN};
use anyhow::{bail, Context};
use lps_bridge::eve::info::ZSwState;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use prost::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const FLOOD_CLIENTS: usize = 10;
const FLOOD_PER_CLIENT: usize = 2000;
const FAN_IN_CLIENTS: usize = 10;
const FAN_IN_PER_CLIENT: usize = 10_000;
const FAN_IN_BYTES: usize = 64;
const FAN_IN_TOPIC: &str = "plant/line1/temperature";
/// Nothing new for this long after the publishers are done: the rest is not coming.
const IDLE: Duration = Duration::from_secs(10);
const PUBLISH_PATIENCE: Duration = Duration::from_secs(120);
const FAN_OUT_SUBSCRIBERS: usize = 50;
const FAN_OUT_TOPIC: &str = "plant/line1/fanout";
const RATE_TOPIC: &str = "plant/line1/paced";
/// Messages per second of the fixed-rate row.
const RATE: u64 = 1000;
/// Keep-alive of the idle connections: long enough that none expires during the row.
const IDLE_KEEP_ALIVE_S: u16 = 60;
const LATENCY_CLIENTS: [usize; 3] = [1, 8, 64];
const LATENCY_CAP: Duration = Duration::from_secs(12);
const TARGET_PEAK_KB: u64 = 84 * 1024;
const TARGET_IDLE_KB: u64 = 30 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Broker {
    /// lps-bridge's embedded broker; `old` = the former 1 MiB × 2 log.
    Embedded { old: bool },
    /// Mosquitto; `unlimited` = `max_queued_messages 0`.
    Mosquitto { unlimited: bool },
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Broker::Embedded { old: false } => "lps-bridge embedded (default: 4 MiB × 4)",
            Broker::Embedded { old: true } => "lps-bridge embedded, former 1 MiB × 2",
            Broker::Mosquitto { unlimited: false } => "Mosquitto, default queue (1000)",
            Broker::Mosquitto { unlimited: true } => "Mosquitto, max_queued_messages 0",
        }
    }
}

const ALL: [Broker; 4] = [
    Broker::Embedded { old: false },
    Broker::Embedded { old: true },
    Broker::Mosquitto { unlimited: false },
    Broker::Mosquitto { unlimited: true },
];

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces): state is field 3, utime 14.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // USER_HZ is 100 on Linux for every architecture we run on.
    f.iter().sum::<u64>() as f64 / 100.0
}

/// A broker (and, for the reply flood on Mosquitto, the gateway using it) on loopback.
struct Running {
    mqtt_port: u16,
    lps_port: Option<u16>,
    broker_pid: u32,
    gateway_pid: Option<u32>,
    _children: Vec<Child>,
    _tmp: tempfile::TempDir,
}

async fn wait_port(port: u16, child: &mut Child, what: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = child.0.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("{what} exited ({status}) before listening: {}", log.trim());
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on {port} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn spawn(cmd: &mut std::process::Command, log: &Path) -> anyhow::Result<Child> {
    let log_file = std::fs::File::create(log)?;
    // The gateway logs to stdout, Mosquitto to stderr: both go to the log.
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    Ok(Child(child))
}

/// Debian's package puts it in /usr/sbin, which is not on every PATH.
fn mosquitto_binary() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").is_file() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

async fn start_mosquitto(dir: &Path, unlimited: bool) -> anyhow::Result<(Child, u16)> {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let queue = if unlimited {
        "max_queued_messages 0\n"
    } else {
        ""
    };
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             log_dest stderr\nlog_type error\nlog_type warning\n{queue}"
        ),
    )?;
    let log = dir.join("mosquitto.log");
    let mut child = spawn(
        std::process::Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&conf),
        &log,
    )
    .context("is Debian's mosquitto installed? (apt-get install -y mosquitto)")?;
    wait_port(port, &mut child, "mosquitto", &log).await?;
    Ok((child, port))
}

/// The release binary with `mqtt` as its `[mqtt]` section body.
async fn start_gateway(
    dir: &Path,
    mqtt: &str,
    wait_mqtt: Option<u16>,
) -> anyhow::Result<(Child, u16)> {
    let binary = release_binary()
        .context("target/release/lps-bridge is missing: run `cargo build --release` first")?;
    let lps_port = free_port();
    let config = dir.join("lps-bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[lps]\nlisten = \"127.0.0.1:{lps_port}\"\nserver_token = \"{TOKEN}\"\n\n\
             [mqtt]\n{mqtt}\n\n[operator]\nlisten = \"\"\n\n[store]\ndir = \"{}\"\n",
            dir.join("data").display()
        ),
    )?;
    let log = dir.join("gateway.log");
    let mut child = spawn(
        std::process::Command::new(&binary)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn"),
        &log,
    )?;
    wait_port(lps_port, &mut child, "lps-bridge", &log).await?;
    if let Some(port) = wait_mqtt {
        wait_port(port, &mut child, "lps-bridge's broker", &log).await?;
    }
    Ok((child, lps_port))
}

fn apps(n: usize) -> Vec<u8> {
    LocalAppInfoList {
        apps_info: (0..n)
            .map(|i| LocalAppInfo {
                id: format!("0b5e7c00-0000-4000-8000-{i:012}"),
                name: format!("app{i}"),
                version: "1".into(),
                state: ZSwState::Running as i32,
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

async fn report_apps(lps_port: u16, n: usize) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{lps_port}/api/v1/appinfo"))
        .header("Content-Type", "application/x-proto-binary")
        .header("X-Request-Id", uuid::Uuid::new_v4().to_string())
        .body(apps(n))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("appinfo answered {}", resp.status());
    }
    Ok(())
}

/// Starts `broker`; with `gateway` (the reply flood), a gateway that answers commands on it.
async fn start(broker: Broker, gateway: bool) -> anyhow::Result<Running> {
    start_with(broker, gateway, "").await
}

/// [`start`], with `embedded_extra` added to the embedded broker's `[mqtt]` section.
async fn start_with(
    broker: Broker,
    gateway: bool,
    embedded_extra: &str,
) -> anyhow::Result<Running> {
    let tmp = tempfile::tempdir()?;
    let mut children = Vec::new();
    let (mqtt_port, lps_port, broker_pid, gateway_pid) = match broker {
        Broker::Embedded { old } => {
            let port = free_port();
            let sizing = if old {
                "segment_bytes = 1048576\nsegment_count = 2\n\
                 own_segment_bytes = 1048576\nown_segment_count = 2\n"
            } else {
                ""
            };
            let (child, lps) = start_gateway(
                tmp.path(),
                &format!("listen = \"127.0.0.1:{port}\"\n{sizing}{embedded_extra}"),
                Some(port),
            )
            .await?;
            let pid = child.0.id();
            children.push(child);
            (port, Some(lps), pid, Some(pid))
        }
        Broker::Mosquitto { unlimited } => {
            let (mosq, port) = start_mosquitto(tmp.path(), unlimited).await?;
            let mosq_pid = mosq.0.id();
            children.push(mosq);
            if gateway {
                let (child, lps) = start_gateway(
                    tmp.path(),
                    &format!(
                        "listen = \"\"\n\n[mqtt.external]\nurl = \"mqtt://127.0.0.1:{port}\"\n\
                         client_id = \"lps-bridge-bench\"\n"
                    ),
                    None,
                )
                .await?;
                let pid = child.0.id();
                children.push(child);
                (port, Some(lps), mosq_pid, Some(pid))
            } else {
                (port, None, mosq_pid, None)
            }
        }
    };
    if gateway {
        let lps = lps_port.context("no gateway")?;
        report_apps(lps, 64).await?;
        // Let the gateway's external link subscribe before the load starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
    } else {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Running {
        mqtt_port,
        lps_port,
        broker_pid,
        gateway_pid,
        _children: children,
        _tmp: tmp,
    })
}

#[derive(Clone, Default)]
struct LoadRun {
    expected: usize,
    delivered: usize,
    acked: usize,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    broker_idle_kb: u64,
    broker_peak_kb: u64,
    broker_cpu_s: f64,
    /// Publishes sent (fan-out: each reaches every subscriber, so fewer than `expected`).
    published: usize,
    gateway_peak_kb: Option<u64>,
    gateway_cpu_s: Option<f64>,
    /// Idle connections: the broker's RSS with every connection held, and its CPU seconds
    /// for the connects alone.
    held_rss_kb: Option<u64>,
    connect_cpu_s: Option<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    ReplyFlood,
    FanIn,
    FanOut,
    FixedRate,
    Idle,
}

/// How much of each load to run.
#[derive(Clone, Copy)]
struct Sizes {
    flood_per_client: usize,
    fan_in_per_client: usize,
    fan_out_messages: usize,
    rate_seconds: u64,
    idle_connections: usize,
    /// How long the idle connections stay before RSS and CPU are read.
    idle_hold: Duration,
    /// Which brokers run: all four, or (smoke) one of ours and one Mosquitto.
    brokers: &'static [Broker],
}

const SMOKE_BROKERS: [Broker; 2] = [
    Broker::Embedded { old: false },
    Broker::Mosquitto { unlimited: false },
];

impl Sizes {
    fn new(scale: Scale) -> Sizes {
        match scale {
            Scale::Full => Sizes {
                flood_per_client: FLOOD_PER_CLIENT,
                fan_in_per_client: FAN_IN_PER_CLIENT,
                fan_out_messages: 2_000,
                rate_seconds: 10,
                idle_connections: 1_000,
                idle_hold: Duration::from_secs(5),
                brokers: &ALL,
            },
            Scale::Smoke => Sizes {
                flood_per_client: 100,
                fan_in_per_client: 200,
                fan_out_messages: 100,
                rate_seconds: 1,
                idle_connections: 100,
                idle_hold: Duration::from_secs(1),
                brokers: &SMOKE_BROKERS,
            },
        }
    }
}

async fn run_load(broker: Broker, kind: Load, sizes: Sizes) -> anyhow::Result<LoadRun> {
    match kind {
        Load::FanOut => return run_fan_out(broker, sizes).await,
        Load::FixedRate => return run_fixed_rate(broker, sizes).await,
        Load::Idle => return run_idle(broker, sizes).await,
        Load::ReplyFlood | Load::FanIn => {}
    }
    let r = start(broker, kind == Load::ReplyFlood).await?;
    let idle = read_mem(r.broker_pid)?;
    let cpu0 = cpu_seconds(r.broker_pid);
    let gcpu0 = r.gateway_pid.map(cpu_seconds);
    let clock = Clock::new();
    let (filter, clients, per_client) = match kind {
        Load::ReplyFlood => (
            format!("{BASE}/response/#"),
            FLOOD_CLIENTS,
            sizes.flood_per_client,
        ),
        _ => (
            FAN_IN_TOPIC.to_string(),
            FAN_IN_CLIENTS,
            sizes.fan_in_per_client,
        ),
    };
    let expected = clients * per_client;
    let mut sub = Subscriber::connect(
        r.mqtt_port,
        "bench-sub",
        &filter,
        QoS::AtLeastOnce,
        clock,
        false,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let flood = match kind {
        Load::ReplyFlood => {
            load::flood(
                &load::Publishers {
                    port: r.mqtt_port,
                    prefix: "bench-cmd".into(),
                    clients,
                    per_client,
                    qos: QoS::AtLeastOnce,
                    clock,
                    patience: PUBLISH_PATIENCE,
                },
                |_| format!("{BASE}/app/app0/set"),
                load::restart_command,
            )
            .await
        }
        _ => {
            load::flood(
                &load::Publishers {
                    port: r.mqtt_port,
                    prefix: "bench-pub".into(),
                    clients,
                    per_client,
                    qos: QoS::AtLeastOnce,
                    clock,
                    patience: PUBLISH_PATIENCE,
                },
                |_| FAN_IN_TOPIC.to_string(),
                |c, seq, sent| load::padded(c, seq, sent, FAN_IN_BYTES),
            )
            .await
        }
    };
    let got = sub.collect(expected, IDLE).await;
    if got.distinct < expected && r.gateway_pid.is_some() {
        // What the gateway said about it (it logs every kind of drop at warn).
        let log = std::fs::read_to_string(r._tmp.path().join("gateway.log")).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("WARN")).take(5) {
            eprintln!("[bench] {}: gateway log: {line}", broker.name());
        }
    }
    let cpu = cpu_seconds(r.broker_pid) - cpu0;
    let peak = read_mem(r.broker_pid)?;
    let gateway_peak_kb = match (r.gateway_pid, broker) {
        (Some(pid), Broker::Mosquitto { .. }) => read_mem(pid).ok().map(|m| m.hwm_kb),
        _ => None,
    };
    let gateway_cpu_s = match (r.gateway_pid, gcpu0, broker) {
        (Some(pid), Some(c0), Broker::Mosquitto { .. }) => Some(cpu_seconds(pid) - c0),
        _ => None,
    };
    sub.disconnect().await;
    let span_s = got
        .last_us
        .map(|l| l.saturating_sub(flood.first_us) as f64 / 1e6)
        .unwrap_or(0.0);
    let lat: Vec<Duration> = got
        .latencies_us
        .iter()
        .map(|us| Duration::from_micros(*us))
        .collect();
    let s = summarize(&lat);
    let _ = r.lps_port;
    Ok(LoadRun {
        expected,
        delivered: got.distinct,
        acked: flood.acked,
        per_s: if span_s > 0.0 {
            got.distinct as f64 / span_s
        } else {
            0.0
        },
        p50_ms: s.p50.as_secs_f64() * 1e3,
        p99_ms: s.p99.as_secs_f64() * 1e3,
        max_ms: s.max.as_secs_f64() * 1e3,
        broker_idle_kb: idle.rss_kb,
        broker_peak_kb: peak.hwm_kb,
        broker_cpu_s: cpu,
        published: expected,
        gateway_peak_kb,
        gateway_cpu_s,
        held_rss_kb: None,
        connect_cpu_s: None,
    })
}

/// The delivery of several subscribers, as one.
fn merged(deliveries: &[load::Delivery]) -> load::Delivery {
    let mut all = load::Delivery::default();
    for d in deliveries {
        all.distinct += d.distinct;
        all.duplicates += d.duplicates;
        all.latencies_us.extend_from_slice(&d.latencies_us);
        all.first_us = match (all.first_us, d.first_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.last_us = all.last_us.max(d.last_us);
    }
    all
}

/// What a load run measured, from the subscribers' delivery and the broker's /proc.
fn load_run(
    expected: usize,
    acked: usize,
    first_us: u64,
    got: &load::Delivery,
    idle: super::Mem,
    peak: super::Mem,
    cpu: f64,
) -> LoadRun {
    let span_s = got
        .last_us
        .map(|l| l.saturating_sub(first_us) as f64 / 1e6)
        .unwrap_or(0.0);
    let lat: Vec<Duration> = got
        .latencies_us
        .iter()
        .map(|us| Duration::from_micros(*us))
        .collect();
    let s = summarize(&lat);
    LoadRun {
        expected,
        delivered: got.distinct,
        acked,
        per_s: if span_s > 0.0 {
            got.distinct as f64 / span_s
        } else {
            0.0
        },
        p50_ms: s.p50.as_secs_f64() * 1e3,
        p99_ms: s.p99.as_secs_f64() * 1e3,
        max_ms: s.max.as_secs_f64() * 1e3,
        broker_idle_kb: idle.rss_kb,
        broker_peak_kb: peak.hwm_kb,
        broker_cpu_s: cpu,
        published: expected,
        gateway_peak_kb: None,
        gateway_cpu_s: None,
        held_rss_kb: None,
        connect_cpu_s: None,
    }
}

/// 12. One publisher → [`FAN_OUT_SUBSCRIBERS`] QoS 1 subscribers on one topic.
async fn run_fan_out(broker: Broker, sizes: Sizes) -> anyhow::Result<LoadRun> {
    let r = start(broker, false).await?;
    let clock = Clock::new();
    let mut subs = Vec::new();
    for i in 0..FAN_OUT_SUBSCRIBERS {
        subs.push(
            Subscriber::connect(
                r.mqtt_port,
                &format!("bench-fanout-sub-{i}"),
                FAN_OUT_TOPIC,
                QoS::AtLeastOnce,
                clock,
                false,
            )
            .await
            .map_err(anyhow::Error::msg)?,
        );
    }
    let idle = read_mem(r.broker_pid)?;
    let cpu0 = cpu_seconds(r.broker_pid);
    let n = sizes.fan_out_messages;
    let collectors: Vec<_> = subs
        .into_iter()
        .map(|mut sub| {
            tokio::spawn(async move {
                let got = sub.collect(n, IDLE).await;
                sub.disconnect().await;
                got
            })
        })
        .collect();
    let flood = load::flood(
        &load::Publishers {
            port: r.mqtt_port,
            prefix: "bench-fanout-pub".into(),
            clients: 1,
            per_client: n,
            qos: QoS::AtLeastOnce,
            clock,
            patience: PUBLISH_PATIENCE,
        },
        |_| FAN_OUT_TOPIC.to_string(),
        |c, seq, sent| load::padded(c, seq, sent, FAN_IN_BYTES),
    )
    .await;
    let mut deliveries = Vec::new();
    for c in collectors {
        deliveries.push(c.await?);
    }
    let cpu = cpu_seconds(r.broker_pid) - cpu0;
    let peak = read_mem(r.broker_pid)?;
    let got = merged(&deliveries);
    let mut run = load_run(
        n * FAN_OUT_SUBSCRIBERS,
        flood.acked,
        flood.first_us,
        &got,
        idle,
        peak,
        cpu,
    );
    run.published = n;
    Ok(run)
}

/// 13. One publisher at exactly [`RATE`] msg/s (each publish at its slot on the clock, QoS 1)
///     → one QoS 1 subscriber: latency when the broker is not saturated.
async fn run_fixed_rate(broker: Broker, sizes: Sizes) -> anyhow::Result<LoadRun> {
    let r = start(broker, false).await?;
    let clock = Clock::new();
    let mut sub = Subscriber::connect(
        r.mqtt_port,
        "bench-rate-sub",
        RATE_TOPIC,
        QoS::AtLeastOnce,
        clock,
        false,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let idle = read_mem(r.broker_pid)?;
    let cpu0 = cpu_seconds(r.broker_pid);
    let n = (RATE * sizes.rate_seconds) as usize;
    let mut opts = MqttOptions::new(
        format!("bench-rate-pub-{}", uuid::Uuid::new_v4().simple()),
        "127.0.0.1",
        r.mqtt_port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acks = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let collector = tokio::spawn(async move {
        let got = sub.collect(n, IDLE).await;
        sub.disconnect().await;
        got
    });
    let first_us = clock.now_us();
    let start = tokio::time::Instant::now();
    let slot = Duration::from_micros(1_000_000 / RATE);
    for seq in 0..n {
        // The slot on the clock, not a sleep after each publish: a late publish does not
        // shift the ones after it.
        tokio::time::sleep_until(start + slot * seq as u32).await;
        client
            .publish(
                RATE_TOPIC,
                QoS::AtLeastOnce,
                false,
                load::padded(0, seq, clock.now_us(), FAN_IN_BYTES),
            )
            .await?;
    }
    let got = collector.await?;
    let cpu = cpu_seconds(r.broker_pid) - cpu0;
    let peak = read_mem(r.broker_pid)?;
    let _ = client.disconnect().await;
    poller.abort();
    Ok(load_run(
        n,
        acked.load(std::sync::atomic::Ordering::Relaxed),
        first_us,
        &got,
        idle,
        peak,
        cpu,
    ))
}

/// MQTT 3.1.1 CONNECT with a clean session, `id` and the idle row's keep-alive.
fn connect_packet(id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02];
    body.extend_from_slice(&IDLE_KEEP_ALIVE_S.to_be_bytes());
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    // Remaining length < 128: one byte.
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    packet
}

/// One idle client: CONNECT, wait for CONNACK (accepted), then hold the socket.
async fn idle_client(port: u16, i: usize) -> anyhow::Result<(tokio::net::TcpStream, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t0 = Instant::now();
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    sock.write_all(&connect_packet(&format!("bench-idle-{i}")))
        .await?;
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), sock.read_exact(&mut ack))
        .await
        .context("no CONNACK within 10 s")??;
    if ack != [0x20, 0x02, 0x00, 0x00] {
        bail!("CONNACK refused: {ack:02x?}");
    }
    Ok((sock, t0.elapsed()))
}

/// 14. [`Sizes::idle_connections`] clients connect (100 at a time) and stay idle; the broker's
///     RSS and CPU seconds are read after they all connected and stayed for `idle_hold`.
async fn run_idle(broker: Broker, sizes: Sizes) -> anyhow::Result<LoadRun> {
    let n = sizes.idle_connections;
    // The embedded broker refuses connections beyond `mqtt.max_connections` (default 200).
    let r = start_with(broker, false, &format!("max_connections = {}\n", n + 50)).await?;
    let idle = read_mem(r.broker_pid)?;
    let cpu0 = cpu_seconds(r.broker_pid);
    let clock = Clock::new();
    let first_us = clock.now_us();
    let mut held = Vec::with_capacity(n);
    let mut got = load::Delivery::default();
    let mut errors = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        let tasks: Vec<_> = batch
            .iter()
            .map(|&i| tokio::spawn(idle_client(r.mqtt_port, i)))
            .collect();
        for t in tasks {
            match t.await? {
                Ok((sock, took)) => {
                    held.push(sock);
                    got.distinct += 1;
                    got.latencies_us.push(took.as_micros() as u64);
                    got.last_us = Some(clock.now_us());
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
    }
    let connect_cpu = cpu_seconds(r.broker_pid) - cpu0;
    tokio::time::sleep(sizes.idle_hold).await;
    let after = read_mem(r.broker_pid)?;
    let cpu = cpu_seconds(r.broker_pid) - cpu0;
    drop(held);
    if got.distinct < n {
        let first = errors.first().cloned().unwrap_or_default();
        eprintln!(
            "[bench] 14. {}: {} of {n} connections failed, first: {first}",
            broker.name(),
            n - got.distinct
        );
    }
    let mut run = load_run(n, got.distinct, first_us, &got, idle, after, cpu);
    // RSS with every connection held (not the peak) is what an idle fleet costs.
    run.held_rss_kb = Some(after.rss_kb);
    run.connect_cpu_s = Some(connect_cpu);
    Ok(run)
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn median_u(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// Runs `kind` `reps` times on every broker, alternating (run 1 of each, then run 2 of each),
/// each on a fresh broker; returns the runs and the errors per broker, in `sizes.brokers` order.
fn alternate(
    title: &str,
    kind: Load,
    reps: usize,
    sizes: Sizes,
) -> Vec<(Vec<LoadRun>, Vec<String>)> {
    let mut out: Vec<(Vec<LoadRun>, Vec<String>)> =
        sizes.brokers.iter().map(|_| Default::default()).collect();
    for rep in 0..reps {
        for (b, broker) in sizes.brokers.iter().enumerate() {
            eprintln!(
                "[bench] {title}: {} (run {}/{reps})",
                broker.name(),
                rep + 1
            );
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run_load(*broker, kind, sizes)))
            {
                Ok(r) => out[b].0.push(r),
                Err(e) => out[b].1.push(format!("{e:#}")),
            }
        }
    }
    out
}

/// Medians of one broker's runs.
struct Medians {
    delivered: u64,
    per_s: f64,
    p99_ms: f64,
    peak_kb: u64,
    cpu_s: f64,
}

fn medians(runs: &[LoadRun]) -> Medians {
    Medians {
        delivered: median_u(runs.iter().map(|r| r.delivered as u64).collect()),
        per_s: median_f(runs.iter().map(|r| r.per_s).collect()),
        p99_ms: median_f(runs.iter().map(|r| r.p99_ms).collect()),
        peak_kb: median_u(
            runs.iter()
                .map(|r| r.held_rss_kb.unwrap_or(r.broker_peak_kb))
                .collect(),
        ),
        cpu_s: median_f(runs.iter().map(|r| r.broker_cpu_s).collect()),
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2} ×", ours / theirs)
    } else {
        "—".into()
    }
}

fn load_table(title: &str, kind: Load, reps: usize, sizes: Sizes) {
    println!();
    println!("### {title}");
    println!();
    let (count, rate) = if kind == Load::Idle {
        ("connected / expected", "connects/s")
    } else {
        ("delivered / expected", "msg/s")
    };
    let memory = if kind == Load::Idle {
        "broker RSS, all connected"
    } else {
        "broker peak RSS"
    };
    println!(
        "| broker | {count} (median; every run) | {rate} | p50 | p99 | max | broker idle RSS | {memory} | broker CPU s | note |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let results = alternate(title, kind, reps, sizes);
    let mut ours = None;
    let mut mosquitto = Vec::new();
    for (broker, (runs, errors)) in sizes.brokers.iter().zip(&results) {
        if runs.is_empty() {
            eve_side_not_measured();
            println!(
                "| {} | not measured | | | | | | | | {} |",
                broker.name(),
                errors.join("; ")
            );
            continue;
        }
        let m = medians(runs);
        let every: Vec<String> = runs.iter().map(|r| r.delivered.to_string()).collect();
        let idle = median_u(runs.iter().map(|r| r.broker_idle_kb).collect());
        let mut note = Vec::new();
        let acked = median_u(runs.iter().map(|r| r.acked as u64).collect());
        if kind != Load::Idle && acked as usize != runs[0].published {
            note.push(format!("publishes acknowledged: {acked}"));
        }
        if runs[0].gateway_peak_kb.is_some() {
            let cpu = median_f(runs.iter().filter_map(|r| r.gateway_cpu_s).collect());
            let peak = median_u(runs.iter().filter_map(|r| r.gateway_peak_kb).collect());
            note.push(format!(
                "gateway (its external client): peak {}, CPU {cpu:.1} s",
                mb(peak)
            ));
        }
        if runs[0].connect_cpu_s.is_some() {
            let cpu = median_f(runs.iter().filter_map(|r| r.connect_cpu_s).collect());
            note.push(format!(
                "CPU for the connects {cpu:.2} s, the rest while idle for {} s",
                sizes.idle_hold.as_secs()
            ));
        }
        if !errors.is_empty() {
            note.push(format!("failed runs: {}", errors.join("; ")));
        }
        println!(
            "| {} | {} / {} ({}) | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {} | {:.2} | {} |",
            broker.name(),
            m.delivered,
            runs[0].expected,
            every.join(", "),
            m.per_s,
            median_f(runs.iter().map(|r| r.p50_ms).collect()),
            m.p99_ms,
            median_f(runs.iter().map(|r| r.max_ms).collect()),
            mb(idle),
            mb(m.peak_kb),
            m.cpu_s,
            note.join("; ")
        );
        match broker {
            Broker::Embedded { old: false } => ours = Some((m, runs[0].expected, idle)),
            Broker::Mosquitto { .. } => mosquitto.push((broker.name(), m)),
            _ => {}
        }
    }
    println!();
    let Some((m, expected, idle)) = ours else {
        return;
    };
    for (name, theirs) in &mosquitto {
        println!(
            "- lps-bridge default vs {name}: {rate} {}, p99 {}, {memory} {}, CPU s {}",
            ratio(m.per_s, theirs.per_s),
            ratio(m.p99_ms, theirs.p99_ms),
            ratio(m.peak_kb as f64, theirs.peak_kb as f64),
            ratio(m.cpu_s, theirs.cpu_s),
        );
    }
    let best = mosquitto
        .iter()
        .map(|(_, t)| t.per_s)
        .fold(0.0f64, f64::max);
    let least_peak = mosquitto.iter().map(|(_, t)| t.peak_kb).min();
    let complete = m.delivered as usize == expected;
    let mut verdict = vec![format!(
        "{} {}/{expected} (**{}**)",
        if kind == Load::Idle {
            "connected"
        } else {
            "delivered"
        },
        m.delivered,
        if complete { "complete" } else { "INCOMPLETE" }
    )];
    if kind != Load::FixedRate && kind != Load::Idle && best > 0.0 {
        verdict.push(format!(
            "throughput {} the best Mosquitto (target ≥ 1: **{}**)",
            ratio(m.per_s, best),
            if m.per_s >= best { "met" } else { "MISSED" }
        ));
    }
    if let Some(least) = least_peak {
        verdict.push(format!(
            "memory {} the leaner Mosquitto (target < 2: **{}**)",
            ratio(m.peak_kb as f64, least as f64),
            if (m.peak_kb as f64) < 2.0 * least as f64 {
                "met"
            } else {
                "MISSED"
            }
        ));
    }
    if kind == Load::ReplyFlood || kind == Load::FanIn {
        verdict.push(format!(
            "peak RSS {} against < {} (**{}**); idle RSS {} against < {} (**{}**)",
            mb(m.peak_kb),
            mb(TARGET_PEAK_KB),
            if m.peak_kb < TARGET_PEAK_KB {
                "met"
            } else {
                "MISSED"
            },
            mb(idle),
            mb(TARGET_IDLE_KB),
            if idle < TARGET_IDLE_KB {
                "met"
            } else {
                "MISSED"
            },
        ));
    }
    println!("- lps-bridge default: {}", verdict.join("; "));
}

/// A row that could not be measured makes the run fail (CI's smoke checks that every row runs).
fn eve_side_not_measured() {
    super::eve_side::NOT_MEASURED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// 7. Command → reply latency

/// One closed-loop client: commands its own app, waits for the reply, repeats.
async fn latency_client(
    port: u16,
    i: usize,
    qos: QoS,
    until: Instant,
    max: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    // rumqttc's defaults, as a PLC or Node-RED would connect (no TCP_NODELAY of its own).
    let opts = MqttOptions::new(
        format!("bench-lat-{i}-{}", uuid::Uuid::new_v4().simple()),
        "127.0.0.1",
        port,
    );
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((Instant::now(), p.payload));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ack_tx.send(());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let app = format!("{BASE}/app/app{i}/set");
    client
        .subscribe(format!("{BASE}/response/app/app{i}/set"), qos)
        .await?;
    tokio::time::timeout(Duration::from_secs(10), ack_rx.recv())
        .await
        .context("no SUBACK")?;
    let mut samples = Vec::new();
    let mut timeouts = 0;
    let clock = Clock::new();
    for seq in 0..max {
        if Instant::now() > until {
            break;
        }
        let t = load::token(i, seq, clock.now_us());
        let sent = Instant::now();
        client
            .publish(
                &app,
                qos,
                false,
                format!(r#"{{"command":"restart","transaction":"{t}"}}"#),
            )
            .await?;
        let wait = async {
            while let Some((at, payload)) = rx.recv().await {
                if load::parse_token(&payload).is_some_and(|(k, _)| t.contains(&format!("~{k}."))) {
                    return Some(at);
                }
            }
            None
        };
        match tokio::time::timeout(Duration::from_secs(5), wait).await {
            Ok(Some(at)) => samples.push(at - sent),
            _ => timeouts += 1,
        }
    }
    let _ = client.disconnect().await;
    poller.abort();
    Ok((samples, timeouts))
}

async fn latency_rows(
    total: usize,
) -> anyhow::Result<Vec<(usize, QoS, Vec<Duration>, usize, f64)>> {
    let r = start(Broker::Embedded { old: false }, true).await?;
    let mut rows = Vec::new();
    for clients in LATENCY_CLIENTS {
        for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
            eprintln!("[bench] 7. command → reply, {clients} clients, {qos:?}");
            let per_client = (total / clients).max(total.min(10));
            let started = Instant::now();
            let until = started + LATENCY_CAP;
            let tasks: Vec<_> = (0..clients)
                .map(|i| tokio::spawn(latency_client(r.mqtt_port, i, qos, until, per_client)))
                .collect();
            let mut all = Vec::new();
            let mut timeouts = 0;
            for t in tasks {
                let (s, to) = t.await??;
                all.extend(s);
                timeouts += to;
            }
            let per_s = all.len() as f64 / started.elapsed().as_secs_f64();
            rows.push((clients, qos, all, timeouts, per_s));
        }
    }
    Ok(rows)
}

/// Benchmark 7 alone (`-- latency`).
pub fn latency_table(scale: Scale) {
    println!();
    println!("### 7. QoS 1 command → reply, default rumqttc clients (QoS 0 baseline in the same gateway)");
    println!();
    println!("| clients | QoS | samples | commands/s | p50 | p99 | max | p50 / QoS 0 p50 | target (QoS 1) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("| not measured: {e} |");
            return;
        }
    };
    match rt.block_on(latency_rows(match scale {
        Scale::Full => 400,
        Scale::Smoke => 64,
    })) {
        Ok(rows) => {
            for pair in rows.chunks(2) {
                let qos0 = pair
                    .iter()
                    .find(|r| r.1 == QoS::AtMostOnce)
                    .map(|r| summarize(&r.2).p50);
                for (clients, qos, samples, timeouts, per_s) in pair {
                    let s = summarize(samples);
                    let ratio = match (qos, qos0) {
                        (QoS::AtLeastOnce, Some(b)) if !b.is_zero() => {
                            format!("{:.1} ×", s.p50.as_secs_f64() / b.as_secs_f64())
                        }
                        _ => "—".into(),
                    };
                    let target = if *qos == QoS::AtLeastOnce {
                        let met =
                            s.p50 < Duration::from_millis(5) && s.p99 < Duration::from_millis(10);
                        format!(
                            "p50 < 5 ms, p99 < 10 ms: **{}**",
                            if met { "met" } else { "MISSED" }
                        )
                    } else {
                        "baseline".into()
                    };
                    let to = if *timeouts > 0 {
                        format!(" ({timeouts} timed out)")
                    } else {
                        String::new()
                    };
                    println!(
                        "| {clients} | {} | {}{to} | {per_s:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {ratio} | {target} |",
                        *qos as u8,
                        s.n,
                        s.p50.as_secs_f64() * 1e3,
                        s.p99.as_secs_f64() * 1e3,
                        s.max.as_secs_f64() * 1e3,
                    );
                }
            }
        }
        Err(e) => println!("| not measured: {e:#} | | | | | | | | |"),
    }
}

/// Prints benchmarks 5–7 and 12–14 (`-- broker` runs only these; `-- smoke` runs them small).
/// Whether row `row` runs: every row unless `BENCH_ROWS` (e.g. `5,14`) names some.
fn wanted(row: u32) -> bool {
    match std::env::var("BENCH_ROWS") {
        Ok(rows) if !rows.trim().is_empty() => rows
            .split(',')
            .any(|r| r.trim().parse::<u32>().is_ok_and(|r| r == row)),
        _ => true,
    }
}

pub fn print_all(scale: Scale) {
    let sizes = Sizes::new(scale);
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(match scale {
            Scale::Full => 3,
            Scale::Smoke => 1,
        });
    // 1,000 idle connections need more than a default 1,024 descriptors in this process (the
    // client side) and in Mosquitto (a child inherits the limit); the gateway raises its own.
    let nofile = lps_bridge::descriptors::raise_limit();
    println!();
    println!(
        "## Broker under load (release binary and Mosquitto as child processes, fresh per run)"
    );
    println!();
    println!(
        "- load generator: `tests/it/common/load.rs` (rumqttc default options), the same for every broker; \
         {reps} runs per row (`BENCH_REPS`), alternating between the brokers (run 1 of each, then run 2, ...), \
         medians shown; a run ends when every message arrived or nothing arrived for {} s",
        IDLE.as_secs()
    );
    println!("- Mosquitto: `{} -c <tmp conf>` (listener on 127.0.0.1, an ephemeral port, persistence off; default queue, and `max_queued_messages 0`); its reply flood runs the same gateway binary as `[mqtt.external]` client of it", mosquitto_binary());
    println!("- peak RSS = the broker process's VmHWM; CPU = its utime + stime over the run (both /proc)");
    println!(
        "- open-file limit of the benchmark (inherited by Mosquitto) after raising it: {}",
        nofile.map_or("unknown".into(), |(soft, hard)| format!(
            "soft {soft}, hard {hard}"
        ))
    );
    if scale == Scale::Smoke {
        println!("- **smoke sizes**: a few messages per row, one run each; the numbers only show that every row runs");
    }
    if wanted(5) {
        load_table(
        &format!(
            "5. Reply flood: {FLOOD_CLIENTS} clients × {} app commands (QoS 1) → QoS 1 subscriber on `{BASE}/response/#`",
            sizes.flood_per_client
        ),
        Load::ReplyFlood,
        reps,
        sizes,
    );
    }
    if wanted(6) {
        load_table(
        &format!(
            "6. Fan-in: {FAN_IN_CLIENTS} publishers × {} × {FAN_IN_BYTES} B (QoS 1) → 1 QoS 1 subscriber on `{FAN_IN_TOPIC}`",
            sizes.fan_in_per_client
        ),
        Load::FanIn,
        reps,
        sizes,
    );
    }
    if wanted(12) {
        load_table(
        &format!(
            "12. Fan-out: 1 publisher × {} × {FAN_IN_BYTES} B (QoS 1) → {FAN_OUT_SUBSCRIBERS} QoS 1 subscribers on `{FAN_OUT_TOPIC}`",
            sizes.fan_out_messages
        ),
        Load::FanOut,
        reps,
        sizes,
    );
    }
    if wanted(13) {
        load_table(
        &format!(
            "13. Fixed rate: 1 publisher at {RATE} msg/s for {} s × {FAN_IN_BYTES} B (QoS 1) → 1 QoS 1 subscriber (latency = publish → receive)",
            sizes.rate_seconds
        ),
        Load::FixedRate,
        reps,
        sizes,
    );
    }
    if wanted(14) {
        load_table(
        &format!(
            "14. Idle connections: {} raw MQTT CONNECTs (keep-alive {IDLE_KEEP_ALIVE_S} s, 100 at a time), then {} s idle (latency = CONNECT → CONNACK)",
            sizes.idle_connections,
            sizes.idle_hold.as_secs()
        ),
        Load::Idle,
        reps,
        sizes,
    );
    }
    if wanted(7) {
        latency_table(scale);
    }
}

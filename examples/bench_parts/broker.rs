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
//!
//! Every broker runs as its own process (fresh per run): peak RSS is its VmHWM, CPU is its
//! utime + stime over the load, both from /proc.

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
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    Ok(Child(child))
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
        std::process::Command::new("mosquitto").arg("-c").arg(&conf),
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
                &format!("listen = \"127.0.0.1:{port}\"\n{sizing}"),
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
    broker_idle_kb: u64,
    broker_peak_kb: u64,
    broker_cpu_s: f64,
    gateway_peak_kb: Option<u64>,
    gateway_cpu_s: Option<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    ReplyFlood,
    FanIn,
}

async fn run_load(broker: Broker, kind: Load) -> anyhow::Result<LoadRun> {
    let r = start(broker, kind == Load::ReplyFlood).await?;
    let idle = read_mem(r.broker_pid)?;
    let cpu0 = cpu_seconds(r.broker_pid);
    let gcpu0 = r.gateway_pid.map(cpu_seconds);
    let clock = Clock::new();
    let (filter, clients, per_client) = match kind {
        Load::ReplyFlood => (
            format!("{BASE}/response/#"),
            FLOOD_CLIENTS,
            FLOOD_PER_CLIENT,
        ),
        Load::FanIn => (FAN_IN_TOPIC.to_string(), FAN_IN_CLIENTS, FAN_IN_PER_CLIENT),
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
        Load::FanIn => {
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
        broker_idle_kb: idle.rss_kb,
        broker_peak_kb: peak.hwm_kb,
        broker_cpu_s: cpu,
        gateway_peak_kb,
        gateway_cpu_s,
    })
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

fn load_table(title: &str, kind: Load, reps: usize) {
    println!();
    println!("### {title}");
    println!();
    println!("| broker | delivered / expected (median; every run) | msg/s | p50 | p99 | broker idle RSS | broker peak RSS | broker CPU s | note |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    let mut mosquitto_peak = Vec::new();
    let mut ours = Vec::new();
    for broker in ALL {
        let mut runs = Vec::new();
        let mut errors = Vec::new();
        for rep in 0..reps {
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
                .and_then(|rt| rt.block_on(run_load(broker, kind)))
            {
                Ok(r) => runs.push(r),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if runs.is_empty() {
            println!(
                "| {} | not measured | | | | | | | {} |",
                broker.name(),
                errors.join("; ")
            );
            continue;
        }
        let every: Vec<String> = runs.iter().map(|r| r.delivered.to_string()).collect();
        let delivered = median_u(runs.iter().map(|r| r.delivered as u64).collect());
        let peak = median_u(runs.iter().map(|r| r.broker_peak_kb).collect());
        let idle = median_u(runs.iter().map(|r| r.broker_idle_kb).collect());
        match broker {
            Broker::Mosquitto { unlimited: true } => mosquitto_peak.push(peak),
            Broker::Embedded { old: false } => ours.push((idle, peak, delivered, runs[0].expected)),
            _ => {}
        }
        let mut note = Vec::new();
        let acked = median_u(runs.iter().map(|r| r.acked as u64).collect());
        if acked as usize != runs[0].expected {
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
        if !errors.is_empty() {
            note.push(format!("failed runs: {}", errors.join("; ")));
        }
        println!(
            "| {} | {delivered} / {} ({}) | {:.0} | {:.1} ms | {:.1} ms | {} | {} | {:.1} | {} |",
            broker.name(),
            runs[0].expected,
            every.join(", "),
            median_f(runs.iter().map(|r| r.per_s).collect()),
            median_f(runs.iter().map(|r| r.p50_ms).collect()),
            median_f(runs.iter().map(|r| r.p99_ms).collect()),
            mb(idle),
            mb(peak),
            median_f(runs.iter().map(|r| r.broker_cpu_s).collect()),
            note.join("; ")
        );
    }
    println!();
    if let Some((idle, peak, delivered, expected)) = ours.first() {
        let vs = mosquitto_peak
            .first()
            .map(|m| {
                format!(
                    " ({:.2} × Mosquitto unlimited's {})",
                    *peak as f64 / *m as f64,
                    mb(*m)
                )
            })
            .unwrap_or_default();
        println!(
            "- lps-bridge default: delivered {delivered}/{expected} (**{}**); peak RSS {}{vs} against < {} (**{}**); idle RSS {} against < {} (**{}**)",
            if *delivered as usize == *expected { "complete" } else { "INCOMPLETE" },
            mb(*peak),
            mb(TARGET_PEAK_KB),
            if *peak < TARGET_PEAK_KB { "met" } else { "MISSED" },
            mb(*idle),
            mb(TARGET_IDLE_KB),
            if *idle < TARGET_IDLE_KB { "met" } else { "MISSED" },
        );
    }
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

async fn latency_rows() -> anyhow::Result<Vec<(usize, QoS, Vec<Duration>, usize, f64)>> {
    let r = start(Broker::Embedded { old: false }, true).await?;
    let mut rows = Vec::new();
    for clients in LATENCY_CLIENTS {
        for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
            eprintln!("[bench] 7. command → reply, {clients} clients, {qos:?}");
            let per_client = (400 / clients).max(10);
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
pub fn latency_table() {
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
    match rt.block_on(latency_rows()) {
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

/// Prints benchmarks 5–7 (`-- broker` runs only these).
pub fn print_all() {
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    println!();
    println!(
        "## Broker under load (release binary and Mosquitto as child processes, fresh per run)"
    );
    println!();
    println!(
        "- load generator: `tests/it/common/load.rs` (rumqttc default options), the same for every broker; \
         {reps} runs per row (`BENCH_REPS`), medians shown; a run ends when every message arrived or \
         nothing arrived for {} s",
        IDLE.as_secs()
    );
    println!("- Mosquitto: `mosquitto -c <tmp conf>` (listener on 127.0.0.1, persistence off); its reply flood runs the same gateway binary as `[mqtt.external]` client of it");
    println!("- peak RSS = the broker process's VmHWM; CPU = its utime + stime over the run (both /proc)");
    load_table(
        &format!(
            "5. Reply flood: {FLOOD_CLIENTS} clients × {FLOOD_PER_CLIENT} app commands (QoS 1) → QoS 1 subscriber on `{BASE}/response/#`"
        ),
        Load::ReplyFlood,
        reps,
    );
    load_table(
        &format!(
            "6. Fan-in: {FAN_IN_CLIENTS} publishers × {FAN_IN_PER_CLIENT} × {FAN_IN_BYTES} B (QoS 1) → 1 QoS 1 subscriber on `{FAN_IN_TOPIC}`"
        ),
        Load::FanIn,
        reps,
    );
    latency_table();
}

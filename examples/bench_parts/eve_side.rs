//! Benchmarks 8 to 11, against the release binary as a child process (as a plant runs it):
//!
//! 8. Telemetry: `POST appinfo` with 10 / 100 / 1,000 apps whose state flips → the last per-app
//!    MQTT message at a subscriber; baseline: the same POST unchanged.
//! 9. EVE-side throughput with a fresh TCP connection per request, as EVE does: `POST appinfo`
//!    (100 apps) and `GET local_profile` at 1 / 8 / 64 concurrent clients; baseline: `POST
//!    location` (unchanged, nothing persisted) the same way.
//! 10. Memory after a large app list shrinks: idle, after EVE reports 10,000 apps, after it
//!     reports 3 apps again (issue 7), with and without a subscriber on `B/#`.
//! 11. Footprint: stripped binary size, start-up to all listeners bound, idle RSS, RSS after a
//!     short soak.

use super::{read_mem, release_binary, summarize, Child, Http, Mem, Mqtt, BASE, PROTO, TOKEN};
use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use lps_bridge::eve::info::ZSwState;
use lps_bridge::eve::profile::{LocalAppInfo, LocalAppInfoList};
use prost::Message;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Rows that could not be measured; the smoke run fails if there is any (CI).
pub static NOT_MEASURED: AtomicUsize = AtomicUsize::new(0);

fn not_measured(e: impl std::fmt::Display) -> String {
    NOT_MEASURED.fetch_add(1, Ordering::Relaxed);
    format!("not measured: {e}")
}

/// How much of each benchmark to run: `Full` for the numbers in BENCHMARKS.md, `Smoke` to show
/// in CI that every benchmark still runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Full,
    Smoke,
}

impl Scale {
    fn pick<T>(self, full: T, smoke: T) -> T {
        match self {
            Scale::Full => full,
            Scale::Smoke => smoke,
        }
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// `n` apps, all in `state`; names `app-<i>`, ids derived from `i`.
pub fn apps(n: usize, state: ZSwState) -> Bytes {
    Bytes::from(
        LocalAppInfoList {
            apps_info: (0..n)
                .map(|i| LocalAppInfo {
                    id: format!("0b5e7c00-0000-4000-8000-{i:012}"),
                    name: format!("app-{i:05}"),
                    version: "1".into(),
                    state: state as i32,
                    ..Default::default()
                })
                .collect(),
        }
        .encode_to_vec(),
    )
}

// ---------------------------------------------------------------------------------------------
// The release binary as a child process

pub struct Gateway {
    _child: Child,
    pub pid: u32,
    pub lps: String,
    pub mqtt_port: u16,
    /// Spawn → the LPS, MQTT and operator listeners all accept connections.
    pub startup: Duration,
    _tmp: tempfile::TempDir,
}

fn port() -> u16 {
    super::free_port()
}

async fn accepts(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

impl Gateway {
    pub async fn start(binary: &Path) -> anyhow::Result<Gateway> {
        let tmp = tempfile::tempdir()?;
        let (lps_port, mqtt_port, op_port) = (port(), port(), port());
        let config = tmp.path().join("lps-bridge.toml");
        std::fs::write(
            &config,
            format!(
                "[lps]\nlisten = \"127.0.0.1:{lps_port}\"\nserver_token = \"{TOKEN}\"\n\
                 signal_burst = 1000000\nsignal_interval = \"0s\"\n\n\
                 [mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n\n\
                 [operator]\nlisten = \"127.0.0.1:{op_port}\"\ntoken = \"bench-operator\"\n\n\
                 [store]\ndir = \"{}\"\n",
                tmp.path().join("data").display()
            ),
        )?;
        let log_path = tmp.path().join("stderr.log");
        let log = std::fs::File::create(&log_path)?;
        let t0 = Instant::now();
        let child = std::process::Command::new(binary)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut child = Child(child);
        let pid = child.0.id();
        let mut pending = vec![lps_port, mqtt_port, op_port];
        while !pending.is_empty() {
            let mut left = Vec::new();
            for p in pending {
                if !accepts(p).await {
                    left.push(p);
                }
            }
            pending = left;
            if pending.is_empty() {
                break;
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("the release binary exited ({status}): {}", log.trim());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("the release binary did not listen within 10 s");
            }
            // Short polls: this is the start-up measurement's resolution.
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let startup = t0.elapsed();
        Ok(Gateway {
            _child: child,
            pid,
            lps: format!("http://127.0.0.1:{lps_port}"),
            mqtt_port,
            startup,
            _tmp: tmp,
        })
    }

    pub fn mem(&self) -> anyhow::Result<Mem> {
        read_mem(self.pid)
    }

    /// utime + stime of the child so far, in seconds.
    pub fn cpu_s(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may contain spaces).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = 100.0; // USER_HZ on Linux
        let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        (ut + st) / tick
    }
}

fn binary_or_note() -> Result<PathBuf, String> {
    release_binary().ok_or_else(|| {
        "target/release/lps-bridge is missing: build it with `cargo build --release`, then run this again".into()
    })
}

// ---------------------------------------------------------------------------------------------
// 8. Telemetry

/// Waits until every `app-*` topic of `n` apps shows `state`; returns when the last one arrived
/// (rows 3 and 8 both use it).
pub(super) async fn await_app_states(
    sub: &mut Mqtt,
    n: usize,
    state: &str,
    until: Instant,
) -> anyhow::Result<Instant> {
    let prefix = format!("{BASE}/app/app-");
    let mut done: HashSet<String> = HashSet::with_capacity(n);
    let mut last = Instant::now();
    while done.len() < n {
        let m = sub.next(until).await.with_context(|| {
            format!(
                "waiting for {n} app topics in state {state}; got {}",
                done.len()
            )
        })?;
        if !m.topic.starts_with(&prefix) || m.payload.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&m.payload)?;
        if v["state"].as_str() == Some(state) && done.insert(m.topic) {
            last = m.at;
        }
    }
    Ok(last)
}

struct TelemetryRow {
    apps: usize,
    to_last: Vec<Duration>,
    post: Vec<Duration>,
    unchanged: Vec<Duration>,
}

async fn telemetry(gw: &Gateway, scale: Scale) -> anyhow::Result<Vec<TelemetryRow>> {
    let http = Http::new(gw.lps.clone());
    let url = http.url("appinfo");
    let mut sub = Mqtt::connect(gw.mqtt_port, "telemetry", &[&format!("{BASE}/app/+")]).await?;
    let mut rows = Vec::new();
    for (apps_n, samples) in [
        (10, scale.pick(200, 10)),
        (100, scale.pick(100, 5)),
        (1000, scale.pick(20, 2)),
    ] {
        let halted = apps(apps_n, ZSwState::Halted);
        let running = apps(apps_n, ZSwState::Running);
        // An empty list first clears every app topic, so that all of them are published anew.
        http.post(&url, &apps(0, ZSwState::Halted)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        http.post(&url, &halted).await?;
        await_app_states(
            &mut sub,
            apps_n,
            "HALTED",
            Instant::now() + Duration::from_secs(30),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        sub.drain();
        let mut row = TelemetryRow {
            apps: apps_n,
            to_last: Vec::new(),
            post: Vec::new(),
            unchanged: Vec::new(),
        };
        for i in 0..samples + 2 {
            let (body, state) = if i % 2 == 0 {
                (&running, "RUNNING")
            } else {
                (&halted, "HALTED")
            };
            sub.drain();
            let t0 = Instant::now();
            let (status, _) = http.post(&url, body).await?;
            let rtt = t0.elapsed();
            if status != 200 && status != 204 {
                bail!("appinfo ({apps_n} apps) answered {status}");
            }
            let last =
                await_app_states(&mut sub, apps_n, state, t0 + Duration::from_secs(30)).await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
            let t1 = Instant::now();
            let (status, _) = http.post(&url, body).await?;
            let unchanged = t1.elapsed();
            if status != 200 && status != 204 {
                bail!("appinfo ({apps_n} apps, unchanged) answered {status}");
            }
            // The first two are warm-up.
            if i >= 2 {
                row.to_last.push(last - t0);
                row.post.push(rtt);
                row.unchanged.push(unchanged);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        rows.push(row);
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// 9. Throughput with a fresh TCP connection per request

struct Throughput {
    what: &'static str,
    clients: usize,
    requests: usize,
    per_s: f64,
    lat: Vec<Duration>,
    errors: usize,
}

async fn throughput_one(
    lps: &str,
    what: &'static str,
    clients: usize,
    per_client: usize,
) -> anyhow::Result<Throughput> {
    // No idle connections kept: every request opens its own TCP connection, as EVE does.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let body = match what {
        "POST appinfo (100 apps)" => Some(apps(100, ZSwState::Running)),
        "POST location (baseline)" => Some(super::location()),
        _ => None,
    };
    let url = match what {
        "POST appinfo (100 apps)" => format!("{lps}/api/v1/appinfo"),
        "POST location (baseline)" => format!("{lps}/api/v1/location"),
        _ => format!("{lps}/api/v1/local_profile"),
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            let mut errors = 0;
            for _ in 0..per_client {
                let t0 = Instant::now();
                let req = match &body {
                    Some(b) => client
                        .post(&url)
                        .header("Content-Type", PROTO)
                        .body(b.clone()),
                    None => client.get(&url),
                };
                let ok = match req.send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        r.bytes().await.is_ok() && (s == 200 || s == 204)
                    }
                    Err(_) => false,
                };
                if ok {
                    lat.push(t0.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let took = started.elapsed().as_secs_f64();
    Ok(Throughput {
        what,
        clients,
        requests: lat.len() + errors,
        per_s: (lat.len() + errors) as f64 / took,
        lat,
        errors,
    })
}

async fn throughput(gw: &Gateway, scale: Scale) -> anyhow::Result<Vec<Throughput>> {
    // EVE has reported its 100 apps once, so every later POST is an unchanged report.
    let http = Http::new(gw.lps.clone());
    http.post(&http.url("appinfo"), &apps(100, ZSwState::Running))
        .await?;
    let total = scale.pick(2000, 128);
    let mut rows = Vec::new();
    for clients in [1, 8, 64] {
        let per_client = (total / clients).max(2);
        // Measurement and baseline alternate, so both see the same machine.
        for what in [
            "POST appinfo (100 apps)",
            "POST location (baseline)",
            "GET local_profile",
        ] {
            rows.push(throughput_one(&gw.lps, what, clients, per_client).await?);
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// 10. Memory after a large app list shrinks

pub struct Shrink {
    pub with_sub: bool,
    pub idle: Mem,
    pub big: Mem,
    pub after: Mem,
    pub after_settle: Mem,
    pub big_ms: Duration,
}

/// Idle → EVE reports `big` apps → EVE reports 3 apps → 5 s later.
pub async fn shrink(binary: &Path, big: usize, with_sub: bool) -> anyhow::Result<Shrink> {
    let gw = Gateway::start(binary).await?;
    let http = Http::new(gw.lps.clone());
    let url = http.url("appinfo");
    let mut sub = if with_sub {
        Some(Mqtt::connect(gw.mqtt_port, "shrink", &[&format!("{BASE}/#")]).await?)
    } else {
        None
    };
    http.post(&url, &apps(3, ZSwState::Running)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = gw.mem()?;
    let t0 = Instant::now();
    let (status, _) = http.post(&url, &apps(big, ZSwState::Running)).await?;
    if status != 200 && status != 204 {
        bail!("appinfo ({big} apps) answered {status}");
    }
    let big_ms = t0.elapsed();
    // Let telemetry publish and the subscriber read everything.
    settle(&mut sub, Duration::from_secs(3)).await;
    let big_mem = gw.mem()?;
    let (status, _) = http.post(&url, &apps(3, ZSwState::Running)).await?;
    if status != 200 && status != 204 {
        bail!("appinfo (3 apps) answered {status}");
    }
    settle(&mut sub, Duration::from_secs(2)).await;
    let after = gw.mem()?;
    settle(&mut sub, Duration::from_secs(5)).await;
    let after_settle = gw.mem()?;
    Ok(Shrink {
        with_sub,
        idle,
        big: big_mem,
        after,
        after_settle,
        big_ms,
    })
}

async fn settle(sub: &mut Option<Mqtt>, d: Duration) {
    let until = Instant::now() + d;
    match sub {
        Some(s) => while s.next(until).await.is_ok() {},
        None => tokio::time::sleep(d).await,
    }
}

// ---------------------------------------------------------------------------------------------
// 11. Footprint

struct Footprint {
    size: u64,
    stripped: Option<u64>,
    startups: Vec<Duration>,
    idle: Mem,
    soak: Mem,
    soak_note: String,
}

async fn footprint(binary: &Path, scale: Scale) -> anyhow::Result<Footprint> {
    let size = std::fs::metadata(binary)?.len();
    let tmp = tempfile::tempdir()?;
    let copy = tmp.path().join("lps-bridge");
    std::fs::copy(binary, &copy)?;
    let stripped = std::process::Command::new("strip")
        .arg(&copy)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&copy).ok())
        .map(|m| m.len());
    let mut startups = Vec::new();
    for _ in 0..scale.pick(5, 2) {
        let gw = Gateway::start(binary).await?;
        startups.push(gw.startup);
    }
    let gw = Gateway::start(binary).await?;
    let http = Http::new(gw.lps.clone());
    http.post(&http.url("appinfo"), &apps(10, ZSwState::Running))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = gw.mem()?;

    // Soak: EVE polling at 10 × its real rate (appinfo and local_profile every 1 s → 100 ms),
    // and an MQTT publisher at 1,000 msg/s on a plant topic with a subscriber on it.
    let soak_for = scale.pick(Duration::from_secs(60), Duration::from_secs(5));
    let publisher = Mqtt::connect(gw.mqtt_port, "soak-pub", &[]).await?;
    let mut sub = Mqtt::connect(gw.mqtt_port, "soak-sub", &["plant/soak"]).await?;
    let until = Instant::now() + soak_for;
    let eve = {
        let http = Http::new(gw.lps.clone());
        let body = apps(10, ZSwState::Running);
        async move {
            let mut polls = 0usize;
            while Instant::now() < until {
                http.post(&http.url("appinfo"), &body).await?;
                let _ = http.client.get(http.url("local_profile")).send().await?;
                polls += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(polls)
        }
    };
    let mqtt = async {
        let mut sent = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while Instant::now() < until {
            tick.tick().await;
            for _ in 0..10 {
                publisher
                    .client
                    .publish(
                        "plant/soak",
                        rumqttc::QoS::AtMostOnce,
                        false,
                        vec![b'x'; 64],
                    )
                    .await?;
                sent += 1;
            }
            sub.drain();
        }
        anyhow::Ok(sent)
    };
    let (polls, sent) = tokio::try_join!(eve, mqtt)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let soak = gw.mem()?;
    Ok(Footprint {
        size,
        stripped,
        startups,
        idle,
        soak,
        soak_note: format!(
            "soak: {:.0} s, {polls} EVE polls (appinfo + local_profile every 100 ms), {sent} MQTT messages (64 B, QoS 0, 1,000/s) to one subscriber; gateway CPU {:.1} s",
            soak_for.as_secs_f64(),
            gw.cpu_s()
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Tables

pub async fn print_all(scale: Scale) {
    let binary = match binary_or_note() {
        Ok(b) => b,
        Err(why) => {
            println!();
            println!("## Rows 8–11: {}", not_measured(why));
            return;
        }
    };
    println!();
    println!("## EVE side, memory and footprint (release binary as a child process)");
    println!();
    println!("- binary: {}", binary.display());

    eprintln!("[bench] 8 telemetry");
    println!();
    println!("### 8. appinfo POST (all app states flip) → last per-app MQTT message at a subscriber on `B/app/+`");
    println!();
    let gw = Gateway::start(&binary).await;
    match async { telemetry(gw.as_ref().map_err(|e| anyhow!("{e:#}"))?, scale).await }.await {
        Ok(rows) => {
            println!("| apps | n | POST → last app message p50 | p99 | max | POST round trip p50 | baseline: unchanged POST p50 | ratio p50 |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
            for r in rows {
                let a = summarize(&r.to_last);
                let p = summarize(&r.post);
                let b = summarize(&r.unchanged);
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {:.1} × |",
                    r.apps,
                    a.n,
                    ms(a.p50),
                    ms(a.p99),
                    ms(a.max),
                    ms(p.p50),
                    ms(b.p50),
                    a.p50.as_secs_f64() / b.p50.as_secs_f64().max(1e-9)
                );
            }
        }
        Err(e) => println!("{}", not_measured(format!("{e:#}"))),
    }
    drop(gw);

    eprintln!("[bench] 9 throughput, fresh TCP connection per request");
    println!();
    println!("### 9. EVE-side throughput, a fresh TCP connection per request");
    println!();
    let gw = Gateway::start(&binary).await;
    match async { throughput(gw.as_ref().map_err(|e| anyhow!("{e:#}"))?, scale).await }.await {
        Ok(rows) => {
            println!("| request | clients | requests | errors | req/s | p50 | p99 | max | req/s / baseline |");
            println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            let mut base = 0.0;
            for r in &rows {
                if r.what.contains("baseline") {
                    base = r.per_s;
                }
            }
            for chunk in rows.chunks(3) {
                let base_rate = chunk
                    .iter()
                    .find(|r| r.what.contains("baseline"))
                    .map(|r| r.per_s)
                    .unwrap_or(base);
                for r in chunk {
                    let s = summarize(&r.lat);
                    println!(
                        "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                        r.what,
                        r.clients,
                        r.requests,
                        r.errors,
                        r.per_s,
                        ms(s.p50),
                        ms(s.p99),
                        ms(s.max),
                        if r.what.contains("baseline") {
                            "—".to_string()
                        } else {
                            format!("{:.2} ×", r.per_s / base_rate.max(1e-9))
                        }
                    );
                }
            }
        }
        Err(e) => println!("{}", not_measured(format!("{e:#}"))),
    }
    drop(gw);

    eprintln!("[bench] 10 memory after 10,000 apps → 3 apps");
    println!();
    println!("### 10. Memory: EVE reports 3 apps, then 10,000, then 3 again (issue 7)");
    println!();
    println!("| subscriber | idle RSS | after 10,000 apps: RSS | peak (VmHWM) | 10,000-app POST | 2 s after 3 apps: RSS | 7 s after: RSS | after / idle |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let big = scale.pick(10_000, 10_000);
    for with_sub in [false, true] {
        match shrink(&binary, big, with_sub).await {
            Ok(s) => println!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} × |",
                if s.with_sub { "one on `B/#`" } else { "none" },
                mb(s.idle.rss_kb),
                mb(s.big.rss_kb),
                mb(s.after_settle.hwm_kb),
                ms(s.big_ms),
                mb(s.after.rss_kb),
                mb(s.after_settle.rss_kb),
                s.after_settle.rss_kb as f64 / s.idle.rss_kb.max(1) as f64
            ),
            Err(e) => println!(
                "| with_sub={with_sub} | {} |||||||",
                not_measured(format!("{e:#}"))
            ),
        }
    }

    eprintln!("[bench] 11 footprint");
    println!();
    println!("### 11. Footprint");
    println!();
    match footprint(&binary, scale).await {
        Ok(f) => {
            let s = summarize(&f.startups);
            println!("| measurement | value |");
            println!("|---|---:|");
            println!("| binary size | {:.1} MB |", f.size as f64 / 1e6);
            match f.stripped {
                Some(b) => println!(
                    "| stripped binary size (`strip`) | {:.1} MB |",
                    b as f64 / 1e6
                ),
                None => println!("| stripped binary size | not measured (`strip` failed) |"),
            }
            println!(
                "| start-up: spawn → LPS, MQTT and operator listeners accept (median of {}; max) | {} ({}) |",
                s.n,
                ms(s.p50),
                ms(s.max)
            );
            println!(
                "| idle RSS (10 apps reported, 3 s later) | {} ({} threads) |",
                mb(f.idle.rss_kb),
                f.idle.threads
            );
            println!(
                "| RSS after the soak | {} (peak {}) |",
                mb(f.soak.rss_kb),
                mb(f.soak.hwm_kb)
            );
            println!();
            println!("- {}", f.soak_note);
        }
        Err(e) => println!("{}", not_measured(format!("{e:#}"))),
    }
}

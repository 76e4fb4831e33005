//! Latency and memory benchmark of lps-bridge, printed as Markdown tables.
//!
//! ```sh
//! cargo build --release && cargo run --release --example bench
//! cargo build --release && cargo run --release --example bench -- broker   # only 5–7, 12–14
//! cargo build --release && cargo run --release --example bench -- eve      # only 8–11
//! cargo build --release && cargo run --release --example bench -- smoke    # every row, few samples, < 2 min (CI)
//! cargo build --release && cargo run --release --example bench -- inproc   # only 1–3 and 1p
//! cargo build --release && cargo run --release --example bench -- latency  # only 7
//! (`smoke` combines with `broker`, `eve`, `inproc` and `latency`: `-- broker smoke`)
//! ```
//!
//! Everything runs on 127.0.0.1 and stops by itself (every phase has a time cap). Each latency
//! row has a baseline measured in the same run, interleaved sample by sample with the
//! measurement, so that the ratio survives a noisy machine:
//!
//! 1. MQTT publish of `{"command":"restart"}` → the next line on `GET /api/v1/signal`;
//!    baseline: MQTT publish → the same message at a second client (broker round trip).
//! 2. MQTT publish of a restart → the first `POST /api/v1/appinfo` answer that carries it;
//!    baseline: a bare `POST /api/v1/location` round trip.
//! 3. `POST /api/v1/appinfo` with 50 apps whose state flips → all 50 retained `B/app/<name>`
//!    messages with the new state at a subscriber; baseline: the same POST with nothing changed.
//! 4. RSS of the release binary (`target/release/lps-bridge run`) idle and after load, against
//!    the 30 MB target.
//!
//! 1p. The PLC case: a restart after 3.1 s of quiet → the signal line; baseline: a broker round
//!    trip after the same quiet.
//!
//! 5. to 7. and 12. to 14. The broker under load against Mosquitto (reply flood, fan-in,
//!    fan-out, a fixed 1,000 msg/s, 1,000 idle connections), and QoS 1 command → reply latency:
//!    see `bench_parts/broker.rs`.
//!
//! 8. to 11. Telemetry with 10 / 100 / 1,000 apps, EVE-side throughput with a fresh TCP
//!    connection per request, memory after 10,000 apps shrink to 3, footprint: see
//!    `bench_parts/eve_side.rs`.
//!
//! Benchmarks 1 to 3 run the gateway in-process on its own multi-threaded tokio runtime (as the
//! binary does); the benchmark's clients run on a separate single-threaded runtime.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use lps_bridge::app;
use lps_bridge::config::Config;
use lps_bridge::eve::info::{ZInfoLocation, ZSwState};
use lps_bridge::eve::profile::{LocalAppCmdList, LocalAppInfo, LocalAppInfoList, LocalDevInfo};
use lps_bridge::store::StoreHandle;
use prost::Message;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

#[path = "bench_parts/broker.rs"]
mod broker;
#[path = "bench_parts/eve_side.rs"]
mod eve_side;
// The integration tests' load generator (also used by tests/it/mqtt_backlog.rs), shared rather
// than copied. (Not all of tests/it/common: its gateway helpers need the test-only
// `CARGO_BIN_EXE_lps-bridge`.)
#[path = "../tests/it/common/load.rs"]
mod load;

const COMMAND: &str = "cargo build --release && cargo run --release --example bench";
const TOKEN: &str = "bench-token";
const BASE: &str = "lps/edge";
const PROTO: &str = "application/x-proto-binary";
const VISION_ID: &str = "6f1c2a3e-0000-4000-8000-000000000001";
const RESTART: &str = r#"{"command":"restart"}"#;

/// Samples per latency benchmark (each also gets as many baseline samples); `-- smoke` runs
/// [`SMOKE_N`] of each.
const N_SIGNAL: usize = 10_000;
const N_APPINFO: usize = 10_000;
const N_APPS50: usize = 500;
const SMOKE_N: usize = 100;
/// The PLC case: commands after this much quiet, so every thread on the path has parked.
const PLC_QUIET: Duration = Duration::from_millis(3100);
const N_PLC: usize = 20;
const SMOKE_PLC: usize = 2;
const WARMUP: usize = 30;
const APPS: usize = 50;
/// Pause between two samples, so that one sample's tail work (telemetry, replies) does not run
/// into the next sample.
const GAP: Duration = Duration::from_millis(1);
/// Longest wait for one sample before the phase is declared broken.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time caps per phase: the whole run stays well under 3 minutes even on a slow machine.
const CAP_SIGNAL: Duration = Duration::from_secs(120);
const CAP_APPINFO: Duration = Duration::from_secs(120);
const CAP_APPS50: Duration = Duration::from_secs(25);
const CAP_CHILD_LOAD: Duration = Duration::from_secs(20);

const TARGET_SIGNAL_P99: Duration = Duration::from_millis(5);
const TARGET_RSS_KB: u64 = 30 * 1024;

// ---------------------------------------------------------------------------------------------
// Statistics and tables

#[derive(Clone, Copy)]
struct Summary {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Nearest-rank percentiles.
fn summarize(samples: &[Duration]) -> Summary {
    let mut s = samples.to_vec();
    s.sort();
    let rank = |p: f64| -> Duration {
        if s.is_empty() {
            return Duration::ZERO;
        }
        let k = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
        s[k - 1]
    };
    Summary {
        n: s.len(),
        p50: rank(0.50),
        p99: rank(0.99),
        max: s.last().copied().unwrap_or_default(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn count_summary(counts: &[usize]) -> (usize, usize, usize, f64) {
    let mut c = counts.to_vec();
    c.sort_unstable();
    if c.is_empty() {
        return (0, 0, 0, 0.0);
    }
    let rank = |p: f64| c[((p * c.len() as f64).ceil() as usize).clamp(1, c.len()) - 1];
    let mean = c.iter().sum::<usize>() as f64 / c.len() as f64;
    (rank(0.5), rank(0.99), *c.last().unwrap_or(&0), mean)
}

struct Row {
    name: String,
    summary: Summary,
    baseline: Option<Duration>,
    target: String,
}

impl Row {
    fn new(name: &str, samples: &[Duration], baseline: Option<&[Duration]>) -> Row {
        Row {
            name: name.into(),
            summary: summarize(samples),
            baseline: baseline.map(|b| summarize(b).p50),
            target: String::new(),
        }
    }

    fn target(mut self, target: String) -> Row {
        self.target = target;
        self
    }
}

fn print_table(rows: &[Row]) {
    println!("| measurement | n | p50 | p99 | max | baseline p50 | ratio p50 | target |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let s = r.summary;
        let (base, ratio) = match r.baseline {
            Some(b) if !b.is_zero() => (
                ms(b),
                format!("{:.2}x", s.p50.as_secs_f64() / b.as_secs_f64()),
            ),
            _ => ("—".into(), "—".into()),
        };
        let target = if r.target.is_empty() {
            "—"
        } else {
            &r.target
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            s.n,
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            base,
            ratio,
            target
        );
    }
}

/// What the store did during a phase (each commit is one redb write with fsync).
struct Commits {
    commits: u64,
    total_us: u64,
    max_us: u64,
}

fn commits(store: &StoreHandle) -> Commits {
    let s = &store.write_stats;
    Commits {
        commits: s.commits.load(Ordering::Relaxed),
        total_us: s.total_us.load(Ordering::Relaxed),
        max_us: s.max_us.load(Ordering::Relaxed),
    }
}

fn commits_note(before: &Commits, after: &Commits) -> String {
    let n = after.commits - before.commits;
    let mean = if n == 0 {
        0.0
    } else {
        (after.total_us - before.total_us) as f64 / n as f64 / 1e3
    };
    format!(
        "store commits (redb write + fsync) in this phase: {n}, mean {mean:.3} ms, max so far {:.3} ms",
        after.max_us as f64 / 1e3
    )
}

// ---------------------------------------------------------------------------------------------
// Clients

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Received {
    at: Instant,
    topic: String,
    payload: Bytes,
}

/// A rumqttc client; every incoming publish is timestamped in the event loop task.
struct Mqtt {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Mqtt {
    async fn connect(port: u16, name: &str, filters: &[&str]) -> anyhow::Result<Mqtt> {
        let id = format!("bench-{name}-{}", uuid::Uuid::new_v4().simple());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let at = Instant::now();
                        let _ = tx.send(Received {
                            at,
                            topic: p.topic.clone(),
                            payload: p.payload.clone(),
                        });
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_)))
                    | Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ack_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ack_rx.recv())
            .await
            .map_err(|_| anyhow!("MQTT client {name}: no CONNACK from 127.0.0.1:{port}"))?;
        for f in filters {
            client.subscribe(*f, QoS::AtLeastOnce).await?;
            tokio::time::timeout(Duration::from_secs(10), ack_rx.recv())
                .await
                .map_err(|_| anyhow!("MQTT client {name}: no SUBACK for {f}"))?;
        }
        Ok(Mqtt { client, rx, task })
    }

    async fn publish(&self, topic: &str, payload: &str) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await?;
        Ok(())
    }

    /// Drops whatever has arrived; returns how many.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    async fn next(&mut self, until: Instant) -> anyhow::Result<Received> {
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, self.rx.recv())
            .await
            .map_err(|_| anyhow!("no MQTT message in time"))?
            .ok_or_else(|| anyhow!("MQTT client stopped"))
    }
}

impl Drop for Mqtt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One keep-alive HTTP client for the LPS API (EVE's side).
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn new(base: String) -> Http {
        Http {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(4)
                .build()
                .expect("a reqwest client"),
            base,
        }
    }

    fn url(&self, endpoint: &str) -> String {
        format!("{}/api/v1/{endpoint}", self.base)
    }

    async fn post(&self, url: &str, body: &Bytes) -> anyhow::Result<(u16, Bytes)> {
        let resp = self
            .client
            .post(url)
            .header("Content-Type", PROTO)
            .body(body.clone())
            .send()
            .await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((status, bytes))
    }
}

/// The NDJSON signal stream, read line by line; each line is timestamped when its chunk arrives.
struct Lines {
    stream: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    buf: Vec<u8>,
    at: Instant,
}

impl Lines {
    async fn open(lps: &str) -> anyhow::Result<Lines> {
        // A client of its own: the stream holds its connection for the whole run.
        let resp = reqwest::Client::new()
            .get(format!("{lps}/api/v1/signal"))
            .send()
            .await?;
        if resp.status() != 200 {
            bail!("GET /api/v1/signal answered {}", resp.status());
        }
        Ok(Lines {
            stream: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            at: Instant::now(),
        })
    }

    fn take_line(&mut self) -> Option<Vec<u8>> {
        let pos = self.buf.iter().position(|b| *b == b'\n')?;
        Some(self.buf.drain(..=pos).collect())
    }

    /// Drops every line already received or ready without waiting; returns how many.
    fn drain_ready(&mut self) -> usize {
        while let Some(Some(Ok(chunk))) = self.stream.next().now_or_never() {
            self.buf.extend_from_slice(&chunk);
        }
        let mut n = 0;
        while self.take_line().is_some() {
            n += 1;
        }
        n
    }

    async fn next(&mut self, wait: Duration) -> anyhow::Result<(Instant, Vec<u8>)> {
        let until = Instant::now() + wait;
        loop {
            if let Some(line) = self.take_line() {
                return Ok((self.at, line));
            }
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.at = Instant::now();
                    self.buf.extend_from_slice(&chunk);
                }
                Ok(Some(Err(e))) => bail!("signal stream error: {e}"),
                Ok(None) => bail!("signal stream ended"),
                Err(_) => bail!("no signal line within {wait:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// EVE messages

fn vision_apps() -> Bytes {
    Bytes::from(
        LocalAppInfoList {
            apps_info: vec![LocalAppInfo {
                id: VISION_ID.into(),
                name: "vision".into(),
                version: "1".into(),
                state: ZSwState::Running as i32,
                ..Default::default()
            }],
        }
        .encode_to_vec(),
    )
}

fn location() -> Bytes {
    Bytes::from(
        ZInfoLocation {
            latitude: 48.137,
            longitude: 11.575,
            altitude: 519.0,
            horizontal_uncertainty: 3.0,
            vertical_uncertainty: 5.0,
            logicallabel: "gnss0".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

fn devinfo() -> Bytes {
    Bytes::from(
        LocalDevInfo {
            device_uuid: "0b5e7c00-0000-4000-8000-0000000000ff".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

fn restart_topic() -> String {
    format!("{BASE}/app/vision/set")
}

/// The newest app command timestamp in an appinfo answer.
fn newest_command(status: u16, body: &Bytes) -> anyhow::Result<Option<u64>> {
    match status {
        204 => Ok(None),
        200 => {
            let list = LocalAppCmdList::decode(body.clone())?;
            Ok(list.app_commands.iter().map(|c| c.timestamp).max())
        }
        other => bail!(
            "appinfo answered {other}: {}",
            String::from_utf8_lossy(body)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

struct SignalResult {
    signal: Vec<Duration>,
    echo: Vec<Duration>,
    /// Per hop of each sample: publish → the store's committed change that carries the signal
    /// (broker, gateway link, ingress, actor queue, apply, commit with fsync), and that change
    /// → the signal line at the client (signal task, HTTP chunk, client read).
    to_commit: Vec<Duration>,
    commit_to_line: Vec<Duration>,
    extra_lines: usize,
    capped: bool,
}

/// 1. MQTT restart → next signal line, interleaved with the broker round trip baseline.
async fn bench_signal(
    lines: &mut Lines,
    publisher: &Mqtt,
    echo: &mut Mqtt,
    committed: &mut mpsc::UnboundedReceiver<Instant>,
    n: usize,
    cap: Duration,
) -> anyhow::Result<SignalResult> {
    let started = Instant::now();
    let mut r = SignalResult {
        signal: Vec::with_capacity(n),
        echo: Vec::with_capacity(n),
        to_commit: Vec::with_capacity(n),
        commit_to_line: Vec::with_capacity(n),
        extra_lines: 0,
        capped: false,
    };
    let topic = restart_topic();
    for i in 0..WARMUP + n {
        if started.elapsed() > cap {
            r.capped = true;
            break;
        }
        // Baseline: publish → the same message at the second client.
        echo.drain();
        let payload = format!("echo-{i}");
        let t0 = Instant::now();
        publisher.publish("bench/echo", &payload).await?;
        let until = t0 + SAMPLE_TIMEOUT;
        let at = loop {
            let m = echo.next(until).await.context("broker round trip")?;
            if m.payload.as_ref() == payload.as_bytes() {
                break m.at;
            }
        };
        if i >= WARMUP {
            r.echo.push(at - t0);
        }
        tokio::time::sleep(GAP).await;

        // Measurement: publish restart → next signal line.
        r.extra_lines += lines.drain_ready();
        while committed.try_recv().is_ok() {}
        let t0 = Instant::now();
        publisher.publish(&topic, RESTART).await?;
        let (at, line) = lines
            .next(SAMPLE_TIMEOUT)
            .await
            .context("MQTT restart → signal line")?;
        if !String::from_utf8_lossy(&line).contains("CONFIG_ENDPOINT_APP_INFO") {
            bail!(
                "unexpected signal line: {}",
                String::from_utf8_lossy(&line).trim()
            );
        }
        if i >= WARMUP {
            r.signal.push(at - t0);
            // The commit's broadcast can reach this runtime after the line (both wake it).
            let commit = match committed.try_recv() {
                Ok(c) => Some(c),
                Err(_) => tokio::time::timeout(SAMPLE_TIMEOUT, committed.recv())
                    .await
                    .ok()
                    .flatten(),
            };
            if let Some(c) = commit {
                let c = c.min(at);
                r.to_commit.push(c.saturating_duration_since(t0));
                r.commit_to_line.push(at - c);
            }
        }
        tokio::time::sleep(GAP).await;
    }
    Ok(r)
}

/// Timestamps every committed store change that signals EVE, as it reaches this runtime.
fn watch_commits(store: &StoreHandle) -> mpsc::UnboundedReceiver<Instant> {
    let mut changes = store.subscribe();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(change) if !change.signals.is_empty() => {
                    if tx.send(Instant::now()).is_err() {
                        return;
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

struct AppinfoResult {
    to_response: Vec<Duration>,
    posts: Vec<usize>,
    post_rtt: Vec<Duration>,
    location: Vec<Duration>,
    capped: bool,
}

/// 2. MQTT restart → the first appinfo answer carrying it, interleaved with the location
///    round trip baseline.
async fn bench_appinfo(
    http: &Http,
    publisher: &Mqtt,
    n: usize,
    cap: Duration,
) -> anyhow::Result<AppinfoResult> {
    let started = Instant::now();
    let appinfo_url = http.url("appinfo");
    let location_url = http.url("location");
    let apps = vision_apps();
    let loc = location();
    let topic = restart_topic();
    let mut r = AppinfoResult {
        to_response: Vec::with_capacity(n),
        posts: Vec::with_capacity(n),
        post_rtt: Vec::with_capacity(n * 4),
        location: Vec::with_capacity(n),
        capped: false,
    };
    let (status, body) = http.post(&appinfo_url, &apps).await?;
    let mut last = newest_command(status, &body)?.unwrap_or(0);
    for i in 0..WARMUP + n {
        if started.elapsed() > cap {
            r.capped = true;
            break;
        }
        // Baseline: a bare location round trip (the same fix each time: nothing to persist).
        let t0 = Instant::now();
        let (status, _) = http.post(&location_url, &loc).await?;
        let took = t0.elapsed();
        if status != 200 {
            bail!("location answered {status}");
        }
        if i >= WARMUP {
            r.location.push(took);
        }
        tokio::time::sleep(GAP).await;

        // Measurement: publish restart, then poll appinfo until the new command is in the answer.
        let t0 = Instant::now();
        publisher.publish(&topic, RESTART).await?;
        let mut posts = 0;
        let took = loop {
            let tp = Instant::now();
            let (status, body) = http.post(&appinfo_url, &apps).await?;
            let now = Instant::now();
            posts += 1;
            if i >= WARMUP {
                r.post_rtt.push(now - tp);
            }
            if let Some(ts) = newest_command(status, &body)? {
                if ts > last {
                    last = ts;
                    break now - t0;
                }
            }
            if now - t0 > SAMPLE_TIMEOUT {
                bail!("restart never reached an appinfo answer ({posts} POSTs)");
            }
        };
        if i >= WARMUP {
            r.to_response.push(took);
            r.posts.push(posts);
        }
        tokio::time::sleep(GAP).await;
    }
    Ok(r)
}

struct AppsResult {
    all_received: Vec<Duration>,
    post_rtt: Vec<Duration>,
    unchanged: Vec<Duration>,
    stray: usize,
    capped: bool,
}

/// 3. appinfo (50 apps, all states flipped) → 50 retained app messages, interleaved with the
///    same POST unchanged as baseline.
async fn bench_apps50(
    http: &Http,
    sub: &mut Mqtt,
    n: usize,
    cap: Duration,
) -> anyhow::Result<AppsResult> {
    let started = Instant::now();
    let url = http.url("appinfo");
    let halted = eve_side::apps(APPS, ZSwState::Halted);
    let running = eve_side::apps(APPS, ZSwState::Running);
    let mut r = AppsResult {
        all_received: Vec::with_capacity(n),
        post_rtt: Vec::with_capacity(n),
        unchanged: Vec::with_capacity(n),
        stray: 0,
        capped: false,
    };
    // Start from a known state: all HALTED and received.
    let (status, body) = http.post(&url, &halted).await?;
    if status != 200 && status != 204 {
        bail!(
            "appinfo (50 apps) answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    eve_side::await_app_states(
        sub,
        APPS,
        "HALTED",
        Instant::now() + Duration::from_secs(10),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Not strays: e.g. the deletion of the retained topic of an app no longer reported.
    sub.drain();
    for i in 0..WARMUP + n {
        if started.elapsed() > cap {
            r.capped = true;
            break;
        }
        let (body, state) = if i % 2 == 0 {
            (&running, "RUNNING")
        } else {
            (&halted, "HALTED")
        };
        r.stray += sub.drain();
        let t0 = Instant::now();
        let (status, _) = http.post(&url, body).await?;
        let rtt = t0.elapsed();
        if status != 200 && status != 204 {
            bail!("appinfo (50 apps) answered {status}");
        }
        let last = eve_side::await_app_states(sub, APPS, state, t0 + SAMPLE_TIMEOUT).await?;
        if i >= WARMUP {
            r.all_received.push(last - t0);
            r.post_rtt.push(rtt);
        }
        tokio::time::sleep(GAP).await;

        // Baseline: the same report again; nothing changes, nothing is persisted or published.
        let t0 = Instant::now();
        let (status, _) = http.post(&url, body).await?;
        let took = t0.elapsed();
        if status != 200 && status != 204 {
            bail!("appinfo (50 apps, unchanged) answered {status}");
        }
        if i >= WARMUP {
            r.unchanged.push(took);
        }
        tokio::time::sleep(GAP).await;
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// 4. Memory of the release binary

#[derive(Default, Clone, Copy)]
struct Mem {
    rss_kb: u64,
    hwm_kb: u64,
    threads: u64,
}

fn read_mem(pid: u32) -> anyhow::Result<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let mut m = Mem::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let key = parts.next().unwrap_or("");
        let value: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match key {
            "VmRSS:" => m.rss_kb = value,
            "VmHWM:" => m.hwm_kb = value,
            "Threads:" => m.threads = value,
            _ => {}
        }
    }
    Ok(m)
}

fn release_binary() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    // target/release/examples/bench → target/release/lps-bridge
    if let Ok(exe) = std::env::current_exe() {
        if let Some(release) = exe.parent().and_then(Path::parent) {
            candidates.push(release.join("lps-bridge"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/lps-bridge"));
    candidates.into_iter().find(|p| p.is_file())
}

enum MemResult {
    Measured {
        binary: PathBuf,
        idle: Mem,
        loaded: Option<Mem>,
        load_note: String,
    },
    NotMeasured(String),
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn bench_memory() -> anyhow::Result<MemResult> {
    let Some(binary) = release_binary() else {
        return Ok(MemResult::NotMeasured(
            "target/release/lps-bridge is missing: build it with `cargo build --release`, then run this again".into(),
        ));
    };
    let tmp = tempfile::tempdir()?;
    let lps_port = free_port();
    let mqtt_port = free_port();
    let config = tmp.path().join("lps-bridge.toml");
    let data = tmp.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[lps]\nlisten = \"127.0.0.1:{lps_port}\"\nserver_token = \"{TOKEN}\"\n\n\
             [mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n\n\
             [operator]\nlisten = \"\"\n\n\
             [store]\ndir = \"{}\"\n",
            data.display()
        ),
    )?;
    let log = std::fs::File::create(tmp.path().join("stderr.log"))?;
    let child = std::process::Command::new(&binary)
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

    // Wait until it listens, then let it settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", lps_port))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = child.0.try_wait() {
            let log = std::fs::read_to_string(tmp.path().join("stderr.log")).unwrap_or_default();
            return Ok(MemResult::NotMeasured(format!(
                "the release binary exited ({status}) before listening: {}",
                log.trim()
            )));
        }
        if Instant::now() > deadline {
            return Ok(MemResult::NotMeasured(
                "the release binary did not listen within 10 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let http = Http::new(format!("http://127.0.0.1:{lps_port}"));
    http.post(&http.url("appinfo"), &vision_apps()).await?;
    http.post(&http.url("devinfo"), &devinfo()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = read_mem(pid)?;

    // Load: the same workloads as benchmarks 2 and 3 (fewer samples), with EVE's signal stream
    // and two MQTT clients connected; then measure again with everyone still connected.
    let load = async {
        let mut lines = Lines::open(&http.base).await?;
        let drain =
            tokio::spawn(
                async move { while lines.next(Duration::from_secs(3600)).await.is_ok() {} },
            );
        let publisher = Mqtt::connect(mqtt_port, "load-pub", &[]).await?;
        let mut sub = Mqtt::connect(mqtt_port, "load-sub", &[&format!("{BASE}/app/+")]).await?;
        let started = Instant::now();
        let a = bench_appinfo(&http, &publisher, 500, CAP_CHILD_LOAD / 2).await?;
        let b = bench_apps50(&http, &mut sub, 100, CAP_CHILD_LOAD / 2).await?;
        let note = format!(
            "after {} MQTT restarts each polled out of appinfo ({} appinfo POSTs), {} location POSTs, {} 50-app appinfo POSTs, in {:.1} s; signal stream and 2 MQTT clients still connected",
            a.to_response.len() + WARMUP,
            a.posts.iter().sum::<usize>(),
            a.location.len() + WARMUP,
            2 * (b.all_received.len() + WARMUP) + 1,
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let loaded = read_mem(pid)?;
        drain.abort();
        drop(publisher);
        drop(sub);
        anyhow::Ok((loaded, note))
    };
    let (loaded, load_note) = match load.await {
        Ok((m, note)) => (Some(m), note),
        Err(e) => (None, format!("after-load not measured: {e:#}")),
    };
    drop(child);
    Ok(MemResult::Measured {
        binary,
        idle,
        loaded,
        load_note,
    })
}

// ---------------------------------------------------------------------------------------------
// Main

fn machine() -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.split_whitespace().collect::<Vec<_>>()[1..].join(" "))
        })
        .unwrap_or_default();
    format!("nproc {nproc}; cpu: {cpu}; kernel {kernel}; memory {mem_total}")
}

fn bench_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.lps.listen = "127.0.0.1:0".into();
    c.lps.server_token = TOKEN.into();
    c.lps.signal_burst = 1_000_000;
    c.lps.signal_interval = Duration::ZERO;
    c.lps.eve_offline_after = Duration::from_secs(600);
    c.mqtt.listen = format!("127.0.0.1:{}", free_port());
    c.operator.listen = String::new();
    c.store.dir = dir.to_path_buf();
    c
}

struct InProcess {
    signal: SignalResult,
    signal_commits: String,
    signal_commit_mean: f64,
    plc: PlcResult,
    appinfo: AppinfoResult,
    appinfo_commits: String,
    apps: AppsResult,
    apps_commits: String,
}

async fn in_process(
    lps: &str,
    mqtt_port: u16,
    store: &StoreHandle,
    scale: eve_side::Scale,
) -> anyhow::Result<InProcess> {
    let smoke = scale == eve_side::Scale::Smoke;
    let n_signal = if smoke { SMOKE_N } else { N_SIGNAL };
    let n_appinfo = if smoke { SMOKE_N } else { N_APPINFO };
    let n_apps50 = if smoke { SMOKE_N } else { N_APPS50 };
    let n_plc = if smoke { SMOKE_PLC } else { N_PLC };
    let http = Http::new(lps.to_string());
    // EVE reports its apps first, so that "vision" resolves.
    let (status, body) = http.post(&http.url("appinfo"), &vision_apps()).await?;
    newest_command(status, &body)?;
    let publisher = Mqtt::connect(mqtt_port, "pub", &[]).await?;
    let mut echo = Mqtt::connect(mqtt_port, "echo", &["bench/echo"]).await?;
    let mut lines = Lines::open(lps).await?;

    eprintln!("[bench] 1/4 MQTT publish → signal line ({n_signal} samples + baseline)");
    let c0 = commits(store);
    let mut committed = watch_commits(store);
    let signal = bench_signal(
        &mut lines,
        &publisher,
        &mut echo,
        &mut committed,
        n_signal,
        CAP_SIGNAL,
    )
    .await?;
    let c1 = commits(store);
    let signal_commits = commits_note(&c0, &c1);
    let signal_commit_mean = if c1.commits > c0.commits {
        (c1.total_us - c0.total_us) as f64 / (c1.commits - c0.commits) as f64 / 1e3
    } else {
        0.0
    };

    eprintln!(
        "[bench] 1p MQTT publish → signal line after {} s quiet ({n_plc} samples + baseline)",
        PLC_QUIET.as_secs_f64()
    );
    let plc = bench_plc(&mut lines, &publisher, &mut echo, n_plc).await?;
    drop(echo);

    eprintln!(
        "[bench] 2/4 MQTT publish → command in appinfo answer ({n_appinfo} samples + baseline)"
    );
    let c0 = commits(store);
    let appinfo = bench_appinfo(&http, &publisher, n_appinfo, CAP_APPINFO).await?;
    let appinfo_commits = commits_note(&c0, &commits(store));

    eprintln!("[bench] 3/4 appinfo (50 apps) → 50 MQTT app states ({n_apps50} samples + baseline)");
    let mut sub = Mqtt::connect(mqtt_port, "apps", &[&format!("{BASE}/app/+")]).await?;
    let c0 = commits(store);
    let apps = bench_apps50(&http, &mut sub, n_apps50, CAP_APPS50).await?;
    let apps_commits = commits_note(&c0, &commits(store));
    drop(lines);
    Ok(InProcess {
        signal,
        signal_commits,
        signal_commit_mean,
        plc,
        appinfo,
        appinfo_commits,
        apps,
        apps_commits,
    })
}

struct PlcResult {
    signal: Vec<Duration>,
    echo: Vec<Duration>,
}

/// 1p. The PLC case: a command after [`PLC_QUIET`] of nothing, so that every thread on the path
///     (broker, link, store, HTTP) has parked. The baseline broker round trip gets its own quiet
///     period before each sample too, so both are measured cold.
async fn bench_plc(
    lines: &mut Lines,
    publisher: &Mqtt,
    echo: &mut Mqtt,
    n: usize,
) -> anyhow::Result<PlcResult> {
    let mut r = PlcResult {
        signal: Vec::with_capacity(n),
        echo: Vec::with_capacity(n),
    };
    let topic = restart_topic();
    for i in 0..n {
        tokio::time::sleep(PLC_QUIET).await;
        lines.drain_ready();
        let t0 = Instant::now();
        publisher.publish(&topic, RESTART).await?;
        let (at, _) = lines
            .next(SAMPLE_TIMEOUT)
            .await
            .context("PLC case: MQTT restart → signal line")?;
        r.signal.push(at - t0);

        tokio::time::sleep(PLC_QUIET).await;
        echo.drain();
        let payload = format!("plc-echo-{i}");
        let t0 = Instant::now();
        publisher.publish("bench/echo", &payload).await?;
        let until = t0 + SAMPLE_TIMEOUT;
        let at = loop {
            let m = echo
                .next(until)
                .await
                .context("PLC case: broker round trip")?;
            if m.payload.as_ref() == payload.as_bytes() {
                break m.at;
            }
        };
        r.echo.push(at - t0);
    }
    Ok(r)
}

fn capped(flag: bool, cap: Duration) -> String {
    if flag {
        format!(" (stopped at the {} s time cap)", cap.as_secs())
    } else {
        String::new()
    }
}

fn main() -> anyhow::Result<()> {
    let run_started = Instant::now();
    println!("# lps-bridge benchmark");
    println!();
    println!("- command: `{COMMAND}`");
    println!(
        "- date: {}",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    println!("- machine: {}", machine());
    println!(
        "- build: {} profile",
        if cfg!(debug_assertions) {
            "DEBUG (numbers are meaningless; use --release)"
        } else {
            "release"
        }
    );
    let arg = |name: &str| std::env::args().skip(1).any(|a| a == name);
    let scale = if arg("smoke") {
        eve_side::Scale::Smoke
    } else {
        eve_side::Scale::Full
    };
    if arg("latency") {
        broker::latency_table(scale);
        return Ok(());
    }
    if arg("eve") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(eve_side::print_all(scale));
        println!();
        println!(
            "Total run time: {:.1} s.",
            run_started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if arg("broker") {
        broker::print_all(scale);
        println!();
        println!(
            "Total run time: {:.1} s.",
            run_started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    // Gateway under test, in-process, on its own multi-threaded runtime (as the binary runs it).
    let tmp = tempfile::tempdir()?;
    let config = bench_config(tmp.path());
    let prepared = app::prepare(config)?;
    let mqtt_port = prepared
        .settings
        .mqtt_listen
        .map(|a| a.port())
        .ok_or_else(|| anyhow!("no MQTT listener"))?;
    let gateway_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gateway")
        .build()?;
    let running = gateway_rt.block_on(app::start(prepared))?;
    let lps = format!("http://{}", running.lps_addr);
    println!(
        "- gateway for 1–3: in-process (`lps_bridge::app::start`) on a multi-threaded tokio runtime; \
         LPS {lps}, MQTT 127.0.0.1:{mqtt_port}; store {} (redb, fsync per commit)",
        tmp.path().display()
    );
    println!(
        "- config for 1–3: like `tests/it/common::test_config`, but **`lps.signal_burst = 1000000`, \
         `lps.signal_interval = 0s`** (EVE-style signal pacing, 3 lines then one per 3 s by default, \
         is switched off so it does not throttle the benchmark), `lps.eve_offline_after = 10m`"
    );
    println!(
        "- clients: rumqttc (QoS 1) and one keep-alive reqwest client, on a separate single-threaded \
         runtime; {WARMUP} warm-up iterations per benchmark are discarded; measurement and baseline \
         samples alternate, with a {} ms pause after each",
        GAP.as_millis()
    );

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = running.store.clone();
    let results = client_rt.block_on(in_process(&lps, mqtt_port, &store, scale));
    gateway_rt.block_on(running.stop());
    gateway_rt.shutdown_timeout(Duration::from_secs(2));
    let r = results?;

    // `inproc`: rows 1–3 only (the in-process gateway), for iterating on the command path.
    let inproc = arg("inproc");
    let mem = if inproc {
        None
    } else {
        eprintln!("[bench] 4/4 memory of the release binary");
        Some(client_rt.block_on(bench_memory()))
    };

    // ---- Tables
    println!();
    println!("## Latency");
    println!();
    let s = &r.signal;
    let a = &r.appinfo;
    let p = &r.apps;
    let sig = summarize(&s.signal);
    let rows = vec![
        Row::new(
            "1. MQTT publish restart → signal NDJSON line",
            &s.signal,
            Some(s.echo.as_slice()),
        )
        .target(format!(
            "p99 < 5 ms: **{}**",
            if sig.p99 < TARGET_SIGNAL_P99 {
                "met"
            } else {
                "MISSED"
            }
        )),
        Row::new(
            "1b. baseline: MQTT publish → 2nd client (broker round trip)",
            &s.echo,
            None,
        ),
        Row::new(
            "1p. PLC case: MQTT publish restart after 3.1 s quiet → signal line",
            &r.plc.signal,
            Some(r.plc.echo.as_slice()),
        )
        .target(format!(
            "p99 < 5 ms: **{}**",
            if summarize(&r.plc.signal).p99 < TARGET_SIGNAL_P99 {
                "met"
            } else {
                "MISSED"
            }
        )),
        Row::new(
            "1pb. baseline: MQTT publish after 3.1 s quiet → 2nd client",
            &r.plc.echo,
            None,
        ),
        Row::new(
            "2. MQTT publish restart → command in appinfo 200",
            &a.to_response,
            Some(a.location.as_slice()),
        ),
        Row::new(
            "2a. appinfo POST round trip (during 2)",
            &a.post_rtt,
            Some(a.location.as_slice()),
        ),
        Row::new("2b. baseline: POST location round trip", &a.location, None),
        Row::new(
            "3. appinfo POST (50 apps, all changed) → 50 app states on MQTT",
            &p.all_received,
            Some(p.unchanged.as_slice()),
        ),
        Row::new(
            "3a. appinfo POST (50 apps, all changed) round trip",
            &p.post_rtt,
            Some(p.unchanged.as_slice()),
        ),
        Row::new(
            "3b. baseline: appinfo POST (50 apps, unchanged) round trip",
            &p.unchanged,
            None,
        ),
    ];
    print_table(&rows);
    println!();
    let (c50, c99, cmax, cmean) = count_summary(&a.posts);
    println!(
        "- 1: {} stray signal lines{}; {}",
        s.extra_lines,
        capped(s.capped, CAP_SIGNAL),
        r.signal_commits
    );
    println!(
        "- 2: appinfo POSTs needed per command: p50 {c50}, p99 {c99}, max {cmax}, mean {cmean:.2}{}; {}",
        capped(a.capped, CAP_APPINFO),
        r.appinfo_commits
    );
    println!(
        "- 3: {} stray app messages{}; {}",
        p.stray,
        capped(p.capped, CAP_APPS50),
        r.apps_commits
    );

    println!();
    println!("### Row 1 by hop");
    println!();
    println!("| hop | n | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    let commit_mean = r.signal_commit_mean;
    for (name, samples) in [
        (
            "1b. broker alone: MQTT publish → a 2nd client (round trip through the same broker)",
            &s.echo,
        ),
        (
            "1h1. publish → store change committed (broker, gateway link, ingress, actor queue, apply, redb commit + fsync)",
            &s.to_commit,
        ),
        (
            "1h2. committed → signal line at the client (signal task, HTTP chunk, client read)",
            &s.commit_to_line,
        ),
        ("1. end to end", &s.signal),
    ] {
        let x = summarize(samples);
        println!(
            "| {name} | {} | {} | {} | {} |",
            x.n,
            ms(x.p50),
            ms(x.p99),
            ms(x.max)
        );
    }
    println!();
    println!(
        "- of 1h1, the store's own commit (redb write + fsync, from its write statistics) took {commit_mean:.3} ms on average in this phase; \
         the rest of 1h1 is the broker, the link, ingress and the actor's queue"
    );

    let Some(mem) = mem else {
        println!();
        println!(
            "Total run time: {:.1} s.",
            run_started.elapsed().as_secs_f64()
        );
        return Ok(());
    };
    println!();
    println!("## Memory (release binary, `lps-bridge run --config <tmp toml>`)");
    println!();
    println!("| measurement | VmRSS | VmHWM (peak) | threads | target | result |");
    println!("|---|---:|---:|---:|---|---|");
    let verdict = |kb: u64| {
        if kb < TARGET_RSS_KB {
            "**met**"
        } else {
            "**MISSED**"
        }
    };
    let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    let mut mem_notes = Vec::new();
    match mem {
        Ok(MemResult::Measured {
            binary,
            idle,
            loaded,
            load_note,
        }) => {
            println!(
                "| 4. idle: 3 s after start, then 1 appinfo + 1 devinfo, 2 s later | {} | {} | {} | RSS < 30 MB | {} |",
                mb(idle.rss_kb),
                mb(idle.hwm_kb),
                idle.threads,
                verdict(idle.rss_kb)
            );
            match loaded {
                Some(m) => println!(
                    "| 4a. after load (see below) | {} | {} | {} | RSS < 30 MB | {} |",
                    mb(m.rss_kb),
                    mb(m.hwm_kb),
                    m.threads,
                    verdict(m.rss_kb)
                ),
                None => println!("| 4a. after load | not measured | — | — | RSS < 30 MB | — |"),
            }
            mem_notes.push(format!("binary: {}", binary.display()));
            mem_notes.push(format!("4a: {load_note}"));
            mem_notes.push(
                "a baseline RSS of another process would say nothing here; the comparison is against the 30 MB target"
                    .into(),
            );
        }
        Ok(MemResult::NotMeasured(why)) => {
            eve_side::NOT_MEASURED.fetch_add(1, Ordering::Relaxed);
            println!("| 4. idle RSS | not measured | — | — | RSS < 30 MB | — |");
            mem_notes.push(format!("not measured: {why}"));
        }
        Err(e) => {
            eve_side::NOT_MEASURED.fetch_add(1, Ordering::Relaxed);
            println!("| 4. idle RSS | not measured | — | — | RSS < 30 MB | — |");
            mem_notes.push(format!("not measured: {e:#}"));
        }
    }
    println!();
    for n in mem_notes {
        println!("- {n}");
    }
    client_rt.block_on(eve_side::print_all(scale));
    broker::print_all(scale);
    println!();
    println!(
        "Total run time: {:.1} s.",
        run_started.elapsed().as_secs_f64()
    );
    let missing = eve_side::NOT_MEASURED.load(Ordering::Relaxed);
    if missing > 0 {
        bail!("{missing} benchmark rows could not be measured (see the report)");
    }
    Ok(())
}

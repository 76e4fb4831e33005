//! 1. Crash consistency: `kill -9` at random instants while commands stream in over MQTT (QoS 1,
//!    three clients) and REST and the EVE simulator polls; after each restart every acknowledged
//!    command is in the log with its original timestamp, timestamps never repeat or go back (one
//!    cycle runs under `faketime` with the wall clock an hour behind), and the retained state is
//!    complete again.

use crate::clients::{command_log, rest_command, retained_topics, Ack, Commander, Ledger, Shared};
use crate::gateway::{any_port_open, Clock, Gateway, Simulator, Site, LIBFAKETIME};
use crate::report::{spread, Table};
use rand::Rng;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const MQTT_CLIENTS: usize = 3;
const PATIENCE: Duration = Duration::from_secs(30);

pub async fn run(cycles: usize) -> Table {
    let mut t = Table::new(&format!("1. Crash consistency ({cycles} × kill -9)"));
    match run_inner(cycles, &mut t).await {
        Ok(()) => {}
        Err(e) => t.row("scenario ran to the end", e, false),
    }
    t
}

fn faketime_available() -> bool {
    std::path::Path::new(LIBFAKETIME).exists()
}

async fn run_inner(cycles: usize, t: &mut Table) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut site = Site::new(tmp.path());
    site.keep_finished = 1_000_000; // every acknowledged command stays in the log to be checked
    let http = reqwest::Client::new();
    let _sim = Simulator::spawn(&site, 10.0);
    let faketime = faketime_available();
    let back_cycle = cycles / 2;

    let mut all: Vec<Ack> = Vec::new();
    let mut lost = 0usize;
    let mut refused = 0usize;
    let mut restart_us = Vec::new();
    let mut retained_us = Vec::new();
    let mut retained_missing = 0usize;
    let mut baseline: Option<HashSet<String>> = None;
    let mut back_acks: Vec<Ack> = Vec::new();
    let mut back_before = 0u64;
    let mut latencies = Vec::new();
    let mut lifecycles = std::collections::BTreeMap::new();
    let mut back_real_ms = 0u64;
    let mut back_offset_s: Option<i64> = None;

    for cycle in 0..=cycles {
        let clock = if faketime && cycle == back_cycle && cycle > 0 {
            Clock::HourBack
        } else {
            Clock::Real
        };
        if any_port_open(&site) {
            return Err(format!("cycle {cycle}: a port still answers after kill -9"));
        }
        let mut gw = Gateway::spawn(&site, clock);
        let up = gw
            .wait_listening(&site, PATIENCE)
            .await
            .map_err(|e| format!("cycle {cycle}: {e}"))?;
        if cycle > 0 {
            restart_us.push(up.as_micros() as u64);
        }

        // Every command acknowledged so far is in the log with its timestamp.
        let log = command_log(&http, &site.rest_url())
            .await
            .map_err(|e| format!("cycle {cycle}: command log: {e}"))?;
        for a in &all {
            if log.get(&a.id).map(|e| e.timestamp) != Some(a.timestamp) {
                lost += 1;
                eprintln!(
                    "cycle {cycle}: acknowledged command {a:?} is {:?} in the log",
                    log.get(&a.id)
                );
            }
        }

        // The retained state comes back complete (the broker's retained store died with it).
        let since = Instant::now();
        match &baseline {
            None => {
                // First start: wait for EVE's first reports, then take what is retained.
                let b = settle_baseline(site.mqtt).await?;
                baseline = Some(b);
            }
            Some(b) => loop {
                let now = retained_topics(site.mqtt, Duration::from_millis(300)).await?;
                if b.is_subset(&now) {
                    retained_us.push(since.elapsed().as_micros() as u64);
                    break;
                }
                if since.elapsed() > Duration::from_secs(10) {
                    retained_missing += 1;
                    eprintln!(
                        "cycle {cycle}: retained topics missing: {:?}",
                        b.difference(&now).collect::<Vec<_>>()
                    );
                    break;
                }
            },
        }
        if cycle == cycles {
            for l in log.values() {
                *lifecycles.entry(l.lifecycle.clone()).or_insert(0usize) += 1;
            }
            if let Some(a) = back_acks.first() {
                let real = back_real_ms as i64;
                back_offset_s = log
                    .get(&a.id)
                    .map(|l| (real - l.accepted_at_ms as i64) / 1000);
            }
            gw.stop();
            break;
        }

        // Stream commands, and kill at a random instant.
        let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..MQTT_CLIENTS {
            let cmd =
                Commander::connect(site.mqtt, &format!("crash-{cycle}-{c}"), ledger.clone(), 64)
                    .await
                    .map_err(|e| format!("cycle {cycle}: {e}"))?;
            let (ledger, stop) = (ledger.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (topic, command) = if i % 2 == 0 {
                        ("device/set", "collect_info")
                    } else {
                        ("app/vision/set", "restart")
                    };
                    if !cmd
                        .send(&ledger, topic, command, &format!("{}-{i}", cmd.id))
                        .await
                    {
                        break;
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }));
        }
        {
            let (ledger, stop, http, rest) =
                (ledger.clone(), stop.clone(), http.clone(), site.rest_url());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match rest_command(&http, &rest, "device", r#"{"command":"collect_info"}"#)
                        .await
                    {
                        Ok(a) => ledger.lock().unwrap().acks.push(a),
                        Err(e) => ledger.lock().unwrap().errors.push(e),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }));
        }
        let wait = rand::rng().random_range(100..1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        gw.kill9();
        stop.store(true, Ordering::Relaxed);
        // Replies already in the clients' sockets are still read; then the clients see EOF.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for task in tasks {
            task.abort();
        }
        let l = std::mem::take(&mut *ledger.lock().unwrap());
        // Errors after the kill are connection errors; a refusal from a live gateway has a status.
        refused += l
            .errors
            .iter()
            .filter(|e| e.contains("\"status\":\"error\""))
            .count();
        latencies.extend(l.latencies_us);
        if clock == Clock::HourBack {
            back_before = all.iter().map(|a| a.timestamp).max().unwrap_or(0);
            back_acks = l.acks.clone();
            back_real_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
        }
        all.extend(l.acks);
    }

    // Timestamps: unique, and increasing with the command id (the order the store took them).
    let mut by_id = all.clone();
    by_id.sort_by_key(|a| a.id);
    let ids_unique = by_id.windows(2).all(|w| w[0].id != w[1].id);
    let increasing = by_id.windows(2).all(|w| w[0].timestamp < w[1].timestamp);

    t.info("kill -9 cycles", format!("{cycles}"));
    t.row(
        "commands acknowledged (MQTT QoS 1 × 3 clients + REST)",
        all.len().to_string(),
        !all.is_empty(),
    );
    t.row(
        "acknowledged commands lost or changed after restart",
        lost.to_string(),
        lost == 0,
    );
    t.info(
        "commands refused by a live gateway (not acknowledged)",
        refused.to_string(),
    );
    t.row("command ids unique", ids_unique.to_string(), ids_unique);
    t.row(
        "timestamps strictly increase with id (no repeat, never back)",
        increasing.to_string(),
        increasing,
    );
    if faketime {
        let after = back_acks.iter().all(|a| a.timestamp > back_before);
        t.row(
            &format!("cycle {back_cycle} under faketime (wall clock −1 h): commands acked / all after earlier ones"),
            format!(
                "{} / {after} (accepted_at {} s behind the real clock)",
                back_acks.len(),
                back_offset_s.map_or("?".into(), |s| s.to_string())
            ),
            after && !back_acks.is_empty(),
        );
    } else {
        t.row(
            "cycle with the wall clock set back",
            "faketime not installed (apt-get install faketime)",
            false,
        );
    }
    t.row(
        "restarts with the retained state incomplete after 10 s",
        retained_missing.to_string(),
        retained_missing == 0,
    );
    t.info(
        "restart → retained state complete",
        spread(&mut retained_us),
    );
    t.info(
        "restart → LPS, MQTT and REST listening",
        spread(&mut restart_us),
    );
    t.info(
        "MQTT command → reply (under the stream)",
        spread(&mut latencies),
    );
    t.info(
        "command log at the end, by lifecycle (EVE served them while it all went on)",
        format!("{lifecycles:?}"),
    );
    Ok(())
}

/// The retained topics once EVE (the simulator) has reported its apps and device.
async fn settle_baseline(port: u16) -> Result<HashSet<String>, String> {
    let since = Instant::now();
    loop {
        let now = retained_topics(port, Duration::from_millis(300)).await?;
        if now.iter().any(|t| t.ends_with("/app/vision"))
            && now.iter().any(|t| t.ends_with("/app/logger"))
        {
            // One more read, so that reports that came with the apps are in too.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return retained_topics(port, Duration::from_millis(300)).await;
        }
        if since.elapsed() > PATIENCE {
            return Err(format!(
                "EVE's apps never appeared in the retained state: {now:?}"
            ));
        }
    }
}

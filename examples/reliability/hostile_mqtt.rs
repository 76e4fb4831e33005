//! 4. Hostile input on MQTT: a 1 MB and a deeply nested JSON command, a 20,000-command flood from
//!    one client and from ten, 200 clients connecting and dropping: every command answered, fds
//!    and RSS flat afterwards, and one command at a time from another client still answered.

use crate::clients::{options, Commander, Ledger, Shared};
use crate::eve::{fresh_client, post, two_apps};
use crate::gateway::{Clock, Gateway, Site, BASE};
use crate::report::{kb, spread, Table};
use crate::Size;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub async fn run(size: Size) -> Table {
    let mut t = Table::new("4. Hostile input on MQTT");
    if let Err(e) = run_inner(size, &mut t).await {
        t.row("scenario ran to the end", e, false);
    }
    t
}

/// One command every 250 ms from a separate client, latencies into its ledger.
fn watcher(cmd: Commander, ledger: Shared, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            cmd.send(&ledger, "device/set", "collect_info", &format!("watch-{i}"))
                .await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// Waits until `ledger` has no pending command (or `cap` passes); whether all were answered.
async fn drained(ledger: &Shared, cap: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < cap {
        if ledger.lock().unwrap().pending.is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn flood(
    site: &Site,
    clients: usize,
    total: usize,
    t: &mut Table,
    watch: &Shared,
) -> Result<(), String> {
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    let mut cmds = Vec::new();
    for c in 0..clients {
        cmds.push(
            Commander::connect(
                site.mqtt,
                &format!("flood-{clients}-{c}"),
                ledger.clone(),
                1000,
            )
            .await?,
        );
    }
    watch.lock().unwrap().latencies_us.clear();
    let start = Instant::now();
    let per = total / clients;
    let mut tasks = Vec::new();
    for cmd in cmds {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                cmd.send(
                    &ledger,
                    "app/vision/set",
                    "restart",
                    &format!("{}-{i}", cmd.id),
                )
                .await;
            }
            cmd
        }));
    }
    let mut keep = Vec::new();
    for task in tasks {
        keep.push(task.await.map_err(|e| e.to_string())?);
    }
    let all = drained(&ledger, Duration::from_secs(180)).await;
    let secs = start.elapsed().as_secs_f64();
    let (sent, acks, errors) = {
        let l = ledger.lock().unwrap();
        (l.sent, l.acks.len(), l.errors.len())
    };
    let answered = acks + errors;
    t.row(
        &format!("{total} commands from {clients} client(s): answered"),
        format!(
            "{answered}/{sent} ({acks} ok, {errors} refused) in {secs:.1} s = {:.0}/s",
            answered as f64 / secs
        ),
        all && answered == sent,
    );
    let mut w = std::mem::take(&mut watch.lock().unwrap().latencies_us);
    t.info(
        &format!("another client's command during the {clients}-client flood"),
        spread(&mut w),
    );
    for c in keep {
        c.close().await;
    }
    Ok(())
}

async fn run_inner(size: Size, t: &mut Table) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let site = Site::new(tmp.path());
    let mut gw = Gateway::spawn(&site, Clock::Real);
    gw.wait_listening(&site, Duration::from_secs(30)).await?;
    post(&fresh_client(), &site.lps_url(), "appinfo", two_apps()).await;
    let watch: Shared = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let w = watcher(
        Commander::connect(site.mqtt, "watcher", watch.clone(), 64).await?,
        watch.clone(),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss0, fds0) = (gw.rss_kb(), gw.fds());

    // Oversized and nested payloads, from a client of their own.
    let big: Shared = Arc::new(Mutex::new(Ledger::default()));
    let c = Commander::connect(site.mqtt, "hostile-json", big.clone(), 16).await?;
    let huge = format!(
        r#"{{"command":"collect_info","transaction":"huge","pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let _ = c
        .client
        .publish(format!("{BASE}/device/set"), QoS::AtLeastOnce, false, huge)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let huge_reply = big.lock().unwrap().errors.first().cloned();
    t.info(
        "1 MB JSON command (mqtt.max_payload_bytes is 256 KiB)",
        huge_reply.map_or(
            "no reply: the broker dropped the oversized packet / client".to_string(),
            |r| r.chars().take(120).collect::<String>(),
        ),
    );
    let nested_ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    let c2 = Commander::connect(site.mqtt, "nested-json", nested_ledger.clone(), 16).await?;
    // Within the 64 KiB command limit, so that the JSON parser sees it.
    let nested = format!(
        r#"{{"transaction":"deep","command":{}{}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    let _ = c2
        .client
        .publish(
            format!("{BASE}/device/set"),
            QoS::AtLeastOnce,
            false,
            nested,
        )
        .await;
    let t0 = Instant::now();
    while nested_ledger.lock().unwrap().errors.is_empty() && t0.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = nested_ledger
        .lock()
        .unwrap()
        .errors
        .first()
        .cloned()
        .unwrap_or_default();
    t.row(
        "JSON nested 30,000 deep (60 kB) → refused with a reason",
        reply.chars().take(120).collect::<String>(),
        !reply.is_empty(),
    );
    c.close().await;
    c2.close().await;

    flood(&site, 1, size.pick(5_000, 20_000), t, &watch).await?;
    flood(&site, 10, size.pick(5_000, 20_000), t, &watch).await?;

    // 200 clients connecting and dropping.
    let churn_for = size.pick(Duration::from_secs(10), Duration::from_secs(30));
    let connects = Arc::new(AtomicUsize::new(0));
    let churn_stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..200 {
        let (connects, churn_stop, port) = (connects.clone(), churn_stop.clone(), site.mqtt);
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !churn_stop.load(Ordering::Relaxed) {
                let (client, mut ev) =
                    AsyncClient::new(options(&format!("churn-{n}-{i}"), port), 10);
                let _ = client
                    .subscribe(format!("{BASE}/#"), QoS::AtLeastOnce)
                    .await;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, ev.poll()).await {
                    if let Event::Incoming(Packet::SubAck(_)) = e {
                        connects.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                drop(ev); // the socket closes without DISCONNECT
                i += 1;
            }
        }));
    }
    watch.lock().unwrap().latencies_us.clear();
    tokio::time::sleep(churn_for).await;
    churn_stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let mut wl = std::mem::take(&mut watch.lock().unwrap().latencies_us);
    t.info(
        &format!(
            "200 clients connecting and dropping for {} s",
            churn_for.as_secs()
        ),
        format!("{} connections", connects.load(Ordering::Relaxed)),
    );
    t.info("another client's command during the churn", spread(&mut wl));

    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = w.await;
    let all_watch = drained(&watch, Duration::from_secs(10)).await;
    // The watcher is the last client of the suite's own: after it, the gateway's fds are its own.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss1, fds1) = (gw.rss_kb(), gw.fds());
    t.row(
        "watcher's commands all answered",
        all_watch.to_string(),
        all_watch,
    );
    t.row(
        "fds before / after",
        format!("{fds0} / {fds1}"),
        fds1 <= fds0 + 5,
    );
    t.info("RSS before / after", format!("{} / {}", kb(rss0), kb(rss1)));
    let alive = gw.exited().is_none();
    t.row("gateway alive", alive.to_string(), alive);
    gw.stop();
    Ok(())
}

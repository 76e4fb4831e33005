//! 6. Soak: the EVE simulator at 10 × its real rate, 5,000 MQTT messages/s (5 publishers, QoS 1,
//!    200 B) to a subscriber, and a command every 200 ms, for 10 minutes (1 in smoke mode): no
//!    error, no lost command, EVE stays online, and the RSS slope is reported.

use crate::clients::{options, Commander, Ledger, Shared};
use crate::gateway::{Clock, Gateway, Simulator, Site};
use crate::report::{kb, spread, Table};
use crate::Size;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PUBLISHERS: usize = 5;
const PER_TICK: usize = 10; // every 10 ms → 1,000 msg/s per publisher

pub async fn run(size: Size) -> Table {
    let minutes = size.pick(1, 10);
    let mut t = Table::new(&format!("6. Soak ({minutes} min)"));
    if let Err(e) = run_inner(Duration::from_secs(60 * minutes), &mut t).await {
        t.row("scenario ran to the end", e, false);
    }
    t
}

/// Least-squares slope of (seconds, kB) samples, in kB per minute.
fn slope_kb_per_min(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (sx, sy) = samples
        .iter()
        .fold((0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = samples.iter().fold((0.0, 0.0), |a, s| {
        (a.0 + (s.0 - mx) * (s.1 - my), a.1 + (s.0 - mx).powi(2))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den * 60.0
    }
}

async fn run_inner(length: Duration, t: &mut Table) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let site = Site::new(tmp.path());
    let mut gw = Gateway::spawn(&site, Clock::Real);
    gw.wait_listening(&site, Duration::from_secs(30)).await?;
    let _sim = Simulator::spawn(&site, 10.0);
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(3)).await; // the simulator's first reports

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let (sub, mut sev) = AsyncClient::new(options("soak-sub", site.mqtt), 100);
    sub.subscribe("plant/#", QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    // Publishing starts only once the subscription is in place (else its first messages are
    // published to no one, and counted as lost).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, sev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("soak subscriber: {e}")),
            Err(_) => return Err("soak subscriber: no SUBACK in 10 s".into()),
        }
    }
    let r = received.clone();
    let sub_task = tokio::spawn(async move {
        while let Ok(e) = sev.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = e {
                r.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let (client, mut ev) = AsyncClient::new(options(&format!("soak-pub-{p}"), site.mqtt), 1000);
        tasks.push(tokio::spawn(
            async move { while ev.poll().await.is_ok() {} },
        ));
        let (stop, sent) = (stop.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let payload = vec![b's'; 200];
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for _ in 0..PER_TICK {
                    if client
                        .publish(
                            format!("plant/soak/{p}"),
                            QoS::AtLeastOnce,
                            false,
                            payload.clone(),
                        )
                        .await
                        .is_ok()
                    {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let cmds: Shared = Arc::new(Mutex::new(Ledger::default()));
    let c = Commander::connect(site.mqtt, "soak-commands", cmds.clone(), 100).await?;
    let (cl, cs) = (cmds.clone(), stop.clone());
    let cmd_task = tokio::spawn(async move {
        let mut i = 0;
        while !cs.load(Ordering::Relaxed) {
            c.send(&cl, "app/vision/set", "restart", &format!("soak-{i}"))
                .await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let start = Instant::now();
    let mut rss = Vec::new();
    let mut eve_offline = 0;
    while start.elapsed() < length {
        tokio::time::sleep(Duration::from_secs(5)).await;
        rss.push((start.elapsed().as_secs_f64(), gw.rss_kb() as f64));
        let eve: serde_json::Value = match http
            .get(format!("{}/api/eve", site.rest_url()))
            .send()
            .await
        {
            Ok(r) => r
                .bytes()
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        eve_offline += (eve["state"] != "online") as usize;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = cmd_task.await;
    let elapsed = start.elapsed().as_secs_f64();
    // Let the publishers' queues drain to the subscriber (until nothing more arrives for 3 s).
    let mut last = (received.load(Ordering::Relaxed), Instant::now());
    while received.load(Ordering::Relaxed) < sent.load(Ordering::Relaxed)
        && last.1.elapsed() < Duration::from_secs(3)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = received.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    for task in tasks {
        task.abort();
    }
    sub_task.abort();
    let (s, r) = (
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    let cl = cmds.lock().unwrap();
    let (answered, csent, errors) = (cl.acks.len(), cl.sent, cl.errors.len());
    let mut lat = cl.latencies_us.clone();
    drop(cl);
    let second_half: Vec<_> = rss
        .iter()
        .copied()
        .filter(|s| s.0 >= length.as_secs_f64() / 2.0)
        .collect();
    let slope = slope_kb_per_min(&second_half);
    t.row(
        "MQTT messages delivered / published",
        format!("{r}/{s} ({:.0} msg/s)", s as f64 / elapsed),
        r >= s && s > 0,
    );
    t.row(
        "commands acknowledged / sent (errors)",
        format!("{answered}/{csent} ({errors})"),
        answered == csent && errors == 0,
    );
    t.info("command → reply", spread(&mut lat));
    t.row(
        "EVE (simulator, 10 ×) offline at a 5 s sample",
        format!("{eve_offline} of {}", rss.len()),
        eve_offline == 0,
    );
    t.info(
        "RSS first / last sample",
        format!(
            "{} / {}",
            kb(rss.first().map_or(0.0, |s| s.1) as u64),
            kb(rss.last().map_or(0.0, |s| s.1) as u64)
        ),
    );
    if length >= Duration::from_secs(300) {
        t.row(
            "RSS slope over the second half",
            format!("{slope:.0} kB/min"),
            slope < 256.0,
        );
    } else {
        // One minute is mostly warm-up (buffers, the command log): reported, not judged.
        t.info(
            "RSS slope over the second half (smoke: warm-up, not judged)",
            format!("{slope:.0} kB/min"),
        );
    }
    let alive = gw.exited().is_none();
    t.row("gateway alive", alive.to_string(), alive);
    gw.stop();
    Ok(())
}

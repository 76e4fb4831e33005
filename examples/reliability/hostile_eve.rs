//! 3. Hostile input on the EVE side, while a second client polls `local_profile` (a fresh
//!    connection per request): bodies at and over `lps.max_body_bytes`, garbage and deeply nested
//!    protobuf, 10,000 apps, hostile app names and duplicate ids. Every answer is a 2xx or a 4xx
//!    (never a 5xx, never a dead gateway); the poller's p99 and the RSS are reported.

use crate::eve::{app, appinfo, fresh_client, get_profile, nested, post, two_apps, uuid_n};
use crate::gateway::{Clock, Gateway, Site};
use crate::report::{kb, spread, Table};
use rand::RngCore;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MAX_BODY: usize = 1024 * 1024;

pub async fn run() -> Table {
    let mut t = Table::new("3. Hostile input on the EVE side");
    if let Err(e) = run_inner(&mut t).await {
        t.row("scenario ran to the end", e, false);
    }
    t
}

/// Polls local_profile until `stop`; latencies (µs) and failures.
fn poller(
    lps: String,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<(Vec<u64>, usize)>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = fresh_client();
        while !stop.load(Ordering::Relaxed) {
            let (s, d) = get_profile(&http, &lps).await;
            {
                let mut o = out.lock().unwrap();
                o.0.push(d.as_micros() as u64);
                o.1 += (s != 200 && s != 204) as usize;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

async fn run_inner(t: &mut Table) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let site = Site::new(tmp.path());
    let mut gw = Gateway::spawn(&site, Clock::Real);
    gw.wait_listening(&site, Duration::from_secs(30)).await?;
    let lps = site.lps_url();
    let http = fresh_client();
    post(&http, &lps, "appinfo", two_apps()).await;

    // Baseline p99 of the poller with nothing else going on.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = Arc::new(Mutex::new((Vec::new(), 0)));
    let p = poller(lps.clone(), stop.clone(), quiet.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = p.await;
    let rss_start = gw.rss_kb();

    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(Mutex::new((Vec::new(), 0)));
    let p = poller(lps.clone(), stop.clone(), busy.clone());

    let mut garbage = vec![0u8; 10_000];
    rand::rng().fill_bytes(&mut garbage);
    let mut at_limit = vec![0u8; MAX_BODY];
    rand::rng().fill_bytes(&mut at_limit);
    let over_limit = vec![0x0au8; MAX_BODY + 1];
    let many: Vec<_> = (0..10_000)
        .map(|i| app(uuid_n(i + 10), format!("app-{i}")))
        .collect();
    let weird = vec![
        app(uuid_n(100_001), "a/b".into()),
        app(uuid_n(100_002), "plus+".into()),
        app(uuid_n(100_003), "hash#".into()),
        app(uuid_n(100_004), "emoji-🚀🔥".into()),
        app(uuid_n(100_005), "x".repeat(10_000)),
        app(uuid_n(100_006), String::new()),
        app(uuid_n(100_007), "dup-a".into()),
        app(uuid_n(100_007), "dup-b".into()),
        app(String::new(), "no-id".into()),
    ];
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "random bytes at lps.max_body_bytes (1 MiB)",
            "appinfo",
            at_limit,
        ),
        ("1 MiB + 1 byte", "appinfo", over_limit),
        ("10 kB of garbage", "appinfo", garbage.clone()),
        ("garbage devinfo", "devinfo", garbage.clone()),
        ("garbage network", "network", garbage.clone()),
        ("garbage radio", "radio", garbage.clone()),
        ("garbage location", "location", garbage.clone()),
        ("garbage appbootinfo", "appbootinfo", garbage),
        (
            "protobuf nested 5,000 deep (appinfo)",
            "appinfo",
            nested(5_000),
        ),
        (
            "protobuf nested 5,000 deep (network)",
            "network",
            nested(5_000),
        ),
        ("appinfo with 10,000 apps", "appinfo", appinfo(many)),
        (
            "names with / + # emoji, 10,000 chars, empty; duplicate and empty ids",
            "appinfo",
            appinfo(weird),
        ),
    ];
    let mut rss_10k = 0;
    for (what, endpoint, body) in cases {
        let (status, took) = post(&http, &lps, endpoint, body).await;
        let ok = (200..500).contains(&status);
        t.row(
            &format!("{what} → {endpoint}"),
            format!("HTTP {status} in {:.0} ms", took.as_secs_f64() * 1000.0),
            ok,
        );
        if what.contains("10,000 apps") {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss_10k = gw.rss_kb();
        }
    }
    // EVE reports few apps again.
    let (status, _) = post(&http, &lps, "appinfo", two_apps()).await;
    stop.store(true, Ordering::Relaxed);
    let _ = p.await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = gw.rss_kb();
    let alive = gw.exited().is_none() && get_profile(&http, &lps).await.0 == 200;

    t.row(
        "two apps reported again",
        format!("HTTP {status}"),
        (200..300).contains(&status),
    );
    t.row(
        "gateway alive and answering after the attack",
        alive.to_string(),
        alive,
    );
    let (mut q, qf) = std::mem::take(&mut *quiet.lock().unwrap());
    let (mut b, bf) = std::mem::take(&mut *busy.lock().unwrap());
    t.info(
        "local_profile poll, quiet (fresh connection each)",
        spread(&mut q),
    );
    t.row(
        "local_profile poll during the attack",
        format!("{} ; failed {bf}", spread(&mut b)),
        bf == 0 && qf == 0,
    );
    t.info(
        "RSS before / after 10,000 apps / 3 s after two apps again",
        format!("{} / {} / {}", kb(rss_start), kb(rss_10k), kb(rss_after)),
    );
    gw.stop();
    Ok(())
}

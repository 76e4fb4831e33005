//! 5. Slow and dead consumers: signal-stream readers that never read, and a QoS 1 subscriber on
//!    `#` over a raw socket that never reads or acks, while messages and commands flow: EVE's
//!    answers and other clients are unaffected, and the gateway's memory stays bounded.

use crate::clients::{options, Commander, Ledger, Shared};
use crate::eve::{fresh_client, post, two_apps};
use crate::gateway::{Clock, Gateway, Site};
use crate::report::{kb, spread, Table};
use crate::Size;
use rumqttc::{AsyncClient, QoS};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub async fn run(size: Size) -> Table {
    let mut t = Table::new("5. Slow and dead consumers");
    if let Err(e) = run_inner(size, &mut t).await {
        t.row("scenario ran to the end", e, false);
    }
    t
}

/// An MQTT 3.1.1 CONNECT and a QoS 1 SUBSCRIBE to `#`, by hand; the socket is then never read.
fn dead_subscriber(port: u16, id: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x02, 0x58];
    connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
    connect.extend_from_slice(id.as_bytes());
    let mut packet = vec![0x10, connect.len() as u8];
    packet.extend(connect);
    packet.extend_from_slice(&[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'#', 0x01]);
    s.write_all(&packet)?;
    Ok(s)
}

/// A `GET /api/v1/signal` whose response is never read.
fn dead_signal_reader(lps_port: u16) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", lps_port))?;
    s.write_all(b"GET /api/v1/signal HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    Ok(s)
}

async fn run_inner(size: Size, t: &mut Table) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let site = Site::new(tmp.path());
    let mut gw = Gateway::spawn(&site, Clock::Real);
    gw.wait_listening(&site, Duration::from_secs(30)).await?;
    let http = fresh_client();
    post(&http, &site.lps_url(), "appinfo", two_apps()).await;
    let rss0 = gw.rss_kb();

    let _dead: Vec<TcpStream> = (0..5)
        .map(|_| dead_signal_reader(site.lps))
        .chain((0..2).map(|i| dead_subscriber(site.mqtt, &format!("dead-{i}"))))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stop = Arc::new(AtomicBool::new(false));
    // Plant traffic the dead subscribers are sent: 1 kB messages, QoS 1.
    let messages = size.pick(20_000, 100_000);
    let (publisher, mut ev) = AsyncClient::new(options("plant-publisher", site.mqtt), 1000);
    let pump = tokio::spawn(async move { while ev.poll().await.is_ok() {} });
    let pub_task = tokio::spawn(async move {
        let payload = vec![b'p'; 1000];
        for i in 0..messages {
            if publisher
                .publish(
                    format!("plant/line{}/data", i % 10),
                    QoS::AtLeastOnce,
                    false,
                    payload.clone(),
                )
                .await
                .is_err()
            {
                return i;
            }
        }
        messages
    });
    // Commands (each one a signal line the dead readers are sent), one client.
    let cmds: Shared = Arc::new(Mutex::new(Ledger::default()));
    let c = Commander::connect(site.mqtt, "commands", cmds.clone(), 100).await?;
    let (cl, cs) = (cmds.clone(), stop.clone());
    let cmd_task = tokio::spawn(async move {
        let mut i = 0;
        while !cs.load(Ordering::Relaxed) {
            c.send(&cl, "app/vision/set", "restart", &format!("cmd-{i}"))
                .await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // EVE's polls meanwhile.
    let mut eve_us = Vec::new();
    let mut eve_fail = 0;
    let mut peak = 0;
    let start = Instant::now();
    while !pub_task.is_finished() || start.elapsed() < Duration::from_secs(5) {
        if start.elapsed() > Duration::from_secs(120) {
            break;
        }
        let (s, d) = post(&http, &site.lps_url(), "appinfo", two_apps()).await;
        eve_us.push(d.as_micros() as u64);
        eve_fail += !(200..300).contains(&s) as usize;
        peak = peak.max(gw.rss_kb());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = cmd_task.await;
    let sent = pub_task.await.unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cl = cmds.lock().unwrap();
    let (acked, sent_cmds, unanswered) =
        (cl.acks.len() + cl.errors.len(), cl.sent, cl.pending.len());
    let mut lat = cl.latencies_us.clone();
    drop(cl);
    pump.abort();
    let rss1 = gw.rss_kb();
    t.info(
        "dead consumers",
        "5 signal streams never read, 2 raw QoS 1 subscribers on # never reading or acking",
    );
    t.row(
        "plant messages published (1 kB, QoS 1)",
        format!(
            "{sent}/{messages} in {:.1} s",
            start.elapsed().as_secs_f64()
        ),
        sent == messages,
    );
    t.row(
        "EVE appinfo POSTs answered 2xx",
        format!("{}/{}", eve_us.len() - eve_fail, eve_us.len()),
        eve_fail == 0,
    );
    t.info("EVE appinfo POST (fresh connection)", spread(&mut eve_us));
    t.row(
        "commands from a live client answered",
        format!("{acked}/{sent_cmds} ({unanswered} unanswered)"),
        unanswered == 0,
    );
    t.info("command → reply", spread(&mut lat));
    t.row(
        "RSS before / peak / after",
        format!("{} / {} / {}", kb(rss0), kb(peak), kb(rss1)),
        peak < rss0 + 200 * 1024,
    );
    let alive = gw.exited().is_none();
    t.row("gateway alive", alive.to_string(), alive);
    gw.stop();
    Ok(())
}

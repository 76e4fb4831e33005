//! 2. Store faults: the data dir on a 4 MiB tmpfs (needs root) that fills up under a command
//!    stream, then start-up on a full disk and on a read-only mount. While the store cannot
//!    write, commands are refused with a reason and EVE is still answered; once writable again it
//!    heals without a restart, and nothing acknowledged is lost across a `kill -9`.

use crate::clients::{command_log, rest_command, Ack, Commander, Ledger, Shared};
use crate::gateway::{Clock, Gateway, Simulator, Site};
use crate::report::{spread, Table};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);
/// The store's write back-off may have grown to 16 s before it retries.
const HEAL_PATIENCE: Duration = Duration::from_secs(45);

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "mount tmpfs (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(path.to_path_buf()))
    }

    fn remount(&self, option: &str) -> Result<(), String> {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{option}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(()).ok_or(format!("remount,{option} failed"))
    }

    fn fill(&self) {
        let Ok(mut f) = std::fs::File::create(self.0.join("filler")) else {
            return;
        };
        let chunk = vec![0xA5u8; 16 * 1024];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0xA5]).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Streams commands (2 MQTT clients, QoS 1, and REST) into `ledger` until `stop`.
async fn stream(
    site: &Site,
    tag: &str,
    ledger: Shared,
    stop: Arc<AtomicBool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let mut tasks = Vec::new();
    for c in 0..2 {
        let cmd =
            Commander::connect(site.mqtt, &format!("faults-{tag}-{c}"), ledger.clone(), 64).await?;
        let (ledger, stop) = (ledger.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if !cmd
                    .send(
                        &ledger,
                        "device/set",
                        "collect_info",
                        &format!("{}-{i}", cmd.id),
                    )
                    .await
                {
                    break;
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let (http, rest) = (reqwest::Client::new(), site.rest_url());
    tasks.push(tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match rest_command(&http, &rest, "device", r#"{"command":"collect_info"}"#).await {
                Ok(a) => ledger.lock().unwrap().acks.push(a),
                Err(e) => ledger.lock().unwrap().errors.push(e),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }));
    Ok(tasks)
}

async fn readyz(http: &reqwest::Client, site: &Site) -> u16 {
    http.get(format!("{}/readyz", site.rest_url()))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// EVE's profile poll answered?
async fn eve_ok(http: &reqwest::Client, site: &Site) -> bool {
    http.get(format!("{}/api/v1/local_profile", site.lps_url()))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success() || r.status().as_u16() == 204)
}

async fn wait_ready(http: &reqwest::Client, site: &Site) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < HEAL_PATIENCE {
        if readyz(http, site).await == 200 {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

pub async fn run() -> Table {
    let mut t = Table::new("2. Store faults (4 MiB tmpfs data dir)");
    if let Err(e) = run_inner(&mut t).await {
        t.row("scenario ran to the end", e, false);
    }
    t
}

async fn run_inner(t: &mut Table) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut site = Site::new(tmp.path());
    site.keep_finished = 1_000_000; // every acknowledged command stays in the log to be checked
    let fs = Tmpfs::mount(&site.data_dir())?;
    let http = reqwest::Client::new();
    let _sim = Simulator::spawn(&site, 10.0);
    let mut acked: Vec<Ack> = Vec::new();

    // a. The disk fills under a command stream, then space returns.
    let mut gw = Gateway::spawn(&site, Clock::Real);
    gw.wait_listening(&site, PATIENCE).await?;
    let ledger: Shared = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = stream(&site, "fill", ledger.clone(), stop.clone()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    fs.fill();
    let before = ledger.lock().unwrap().acks.len();
    let mut refused_seen = false;
    let (mut eve_n, mut eve_good) = (0, 0);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        eve_n += 1;
        eve_good += eve_ok(&http, &site).await as usize;
        refused_seen |= ledger
            .lock()
            .unwrap()
            .errors
            .iter()
            .any(|e| e.contains("\"status\":\"error\""));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_full = readyz(&http, &site).await;
    let during = ledger.lock().unwrap().acks.len() - before;
    let reason = ledger
        .lock()
        .unwrap()
        .errors
        .iter()
        .find(|e| e.contains("\"status\":\"error\""))
        .cloned()
        .unwrap_or_default();
    fs.free();
    let healed = wait_ready(&http, &site).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_heal = ledger.lock().unwrap().acks.len();
    gw.kill9();
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    tasks.into_iter().for_each(|t| t.abort());
    let l = std::mem::take(&mut *ledger.lock().unwrap());
    let mut lat = l.latencies_us.clone();
    acked.extend(l.acks);
    t.row(
        "disk full: commands refused with a reason",
        reason.chars().take(160).collect::<String>(),
        refused_seen,
    );
    t.info(
        "disk full: commands still acknowledged after the fill (space the store had reserved)",
        during.to_string(),
    );
    t.row(
        "disk full: /readyz",
        ready_full.to_string(),
        ready_full == 503,
    );
    t.row(
        "disk full: EVE's local_profile polls answered",
        format!("{eve_good}/{eve_n}"),
        eve_good == eve_n,
    );
    t.row(
        "space back → ready again without a restart",
        healed.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64())),
        healed.is_some(),
    );
    t.row(
        "commands acknowledged after healing",
        (after_heal.saturating_sub(before + during)).to_string(),
        after_heal > before + during,
    );
    t.info("command → reply during the fill", spread(&mut lat));

    // b. Start-up on a full disk, and c. on a read-only mount.
    for (what, brk, fix) in [
        ("full disk", "fill", "free"),
        ("read-only mount", "ro", "rw"),
    ] {
        match brk {
            "fill" => fs.fill(),
            _ => fs.remount("ro")?,
        }
        let mut gw = Gateway::spawn(&site, Clock::Real);
        let up = gw.wait_listening(&site, PATIENCE).await;
        let ready = readyz(&http, &site).await;
        let eve = eve_ok(&http, &site).await;
        let log = command_log(&http, &site.rest_url())
            .await
            .unwrap_or_default();
        let kept = acked
            .iter()
            .filter(|a| log.get(&a.id).map(|l| l.timestamp) == Some(a.timestamp))
            .count();
        t.row(
            &format!("start on a {what}: listening"),
            up.as_ref().map_or_else(
                |e| e.clone(),
                |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0),
            ),
            up.is_ok(),
        );
        t.row(
            &format!("start on a {what}: /readyz 503, EVE answered"),
            format!("{ready}, {eve}"),
            ready == 503 && eve,
        );
        t.row(
            &format!("start on a {what}: acknowledged commands served from disk"),
            format!("{kept}/{}", acked.len()),
            kept == acked.len(),
        );
        match fix {
            "free" => fs.free(),
            _ => fs.remount("rw")?,
        }
        let healed = wait_ready(&http, &site).await;
        t.row(
            &format!("start on a {what}: heals when writable"),
            healed.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64())),
            healed.is_some(),
        );
        // One command after healing, then kill -9: it must be there at the next start.
        if let Ok(a) = rest_command(
            &http,
            &site.rest_url(),
            "device",
            r#"{"command":"collect_info"}"#,
        )
        .await
        {
            acked.push(a);
        }
        gw.kill9();
    }

    let mut gw = Gateway::spawn(&site, Clock::Real);
    gw.wait_listening(&site, PATIENCE).await?;
    let log = command_log(&http, &site.rest_url()).await?;
    let lost = acked
        .iter()
        .filter(|a| log.get(&a.id).map(|l| l.timestamp) != Some(a.timestamp))
        .count();
    t.row(
        "acknowledged commands lost (after all faults and kill -9s)",
        format!("{lost} of {}", acked.len()),
        lost == 0 && !acked.is_empty(),
    );
    gw.stop();
    Ok(())
}

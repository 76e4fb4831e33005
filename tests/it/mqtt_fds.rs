//! Descriptor exhaustion: a gateway whose open-file limit cannot be raised (soft = hard = 1024)
//! gets 1,100 TCP connections on its MQTT port that never send CONNECT. EVE's API must still
//! answer, a real MQTT client must get in once the idle ones time out, and the log must stay
//! small (rumqttd's accept loop used to log "Too many open files" at 50–94 MB/s).

use crate::common;

use common::mqtt::Probe;
use common::plant::wait_ports;
use common::*;
use lps_bridge::eve::profile::LocalProfile;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: u64 = 1024;
const IDLE: usize = 1100;

/// This test process holds the idle connections itself: it needs more than 1,024 descriptors.
/// Safe in the shared test process: the soft limit only rises (to the hard one), so neighbours get
/// more room, never less; the limit under test is the gateway child's, set in `pre_exec`.
fn raise_own_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur >= 4 * IDLE as u64,
        "the test needs a hard open-file limit of at least {}, has {}",
        4 * IDLE,
        lim.rlim_cur
    );
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_cannot_starve_eve_or_fill_the_log() {
    raise_own_limit();
    let tmp = tempfile::tempdir().unwrap();
    let (lps_port, mqtt_port) = (free_port(), free_port());
    let config = tmp.path().join("lps-bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[lps]\nlisten = \"127.0.0.1:{lps_port}\"\nserver_token = \"{TOKEN}\"\n\
             [mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\nconnect_timeout = \"60s\"\n\
             [operator]\nlisten = \"\"\n[store]\ndir = \"{}\"\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let log_path = tmp.path().join("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_lps-bridge"));
    command
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    // SAFETY: only async-signal-safe setrlimit between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let gateway = Child(command.spawn().unwrap());
    let fd_dir = format!("/proc/{}/fd", gateway.0.id());
    wait_ports(&[lps_port, mqtt_port]).await;
    let lps = format!("http://127.0.0.1:{lps_port}");

    // 1,100 connections that never send CONNECT (more than the gateway's whole limit).
    let idle: Vec<std::net::TcpStream> = tokio::task::spawn_blocking(move || {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], mqtt_port));
        // A loaded machine accepts more slowly than we connect: connects beyond the listen
        // backlog fail, so retry until IDLE are open (or 30 s have passed).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut open = Vec::with_capacity(IDLE);
        while open.len() < IDLE && std::time::Instant::now() < deadline {
            if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                open.push(s);
            }
        }
        open
    })
    .await
    .unwrap();
    assert!(
        idle.len() >= IDLE / 2,
        "only {} idle connections",
        idle.len()
    );

    // The broker takes all the descriptors it may (about one per 2 ms): wait until the gateway
    // holds its whole limit but the reserve kept for EVE (64); then, while none of the idle ones
    // has timed out, EVE must still be served.
    let fds = eventually("the broker to take every descriptor it may", || {
        let fd_dir = fd_dir.clone();
        async move {
            let n = std::fs::read_dir(&fd_dir).ok()?.count() as u64;
            (n + 64 + 8 >= LIMIT).then_some(n)
        }
    })
    .await;
    eprintln!("gateway holds {fds} descriptors");
    for _ in 0..3 {
        let client = reqwest::Client::new();
        let resp = client
            .get(format!("{lps}/api/v1/local_profile"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let resp = resp.expect("EVE's local_profile must answer while the broker port is flooded");
        assert_eq!(resp.status(), 200);
        let _: LocalProfile = decode(resp).await;
    }

    // Once the idle connections time out, a real client gets in and a command is answered. The
    // timeout is long (60 s) so that a loaded machine still accepts all of them before the first
    // expires; wait for the expiry by counting descriptors, not by a fixed sleep.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let n = std::fs::read_dir(&fd_dir).unwrap().count() as u64;
        if n < LIMIT / 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle connections never timed out ({n} descriptors held)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut probe = Probe::connect(mqtt_port, &[&format!("{B}/response/#")]).await;
    let reply = probe
        .command(B, "profile/set", r#"{"profile":"after-flood"}"#)
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    drop(idle);

    let bytes = std::fs::metadata(&log_path).unwrap().len();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        text.matches("Too many open files").count(),
        0,
        "the reserve keeps the broker from running out of descriptors"
    );
    assert!(
        bytes < 512 * 1024,
        "the log grew to {bytes} bytes during the flood:\n{}",
        String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()[..4096.min(bytes as usize)])
    );
}

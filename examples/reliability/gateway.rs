//! The gateway under test: the release binary as a child process, on fixed loopback ports and a
//! data dir that outlives it (so a restart finds the same store), plus /proc readings of it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "reliability-token";
pub const BASE: &str = "lps/edge";

/// The release binary beside this example (built by `cargo run --release --example ...`), or
/// `LPS_BRIDGE_BIN`.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("LPS_BRIDGE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/release/examples/reliability → target/release/lps-bridge
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("lps-bridge"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release` first",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Ports and directory of one gateway; kept across restarts.
#[derive(Clone)]
pub struct Site {
    pub dir: PathBuf,
    pub lps: u16,
    pub mqtt: u16,
    pub operator: u16,
    /// Extra TOML appended to the config (whole sections).
    pub extra: String,
    /// `store.keep_finished_commands`: the default, or all (scenario 1 checks every command).
    pub keep_finished: usize,
}

impl Site {
    pub fn new(dir: &Path) -> Site {
        Site {
            dir: dir.to_path_buf(),
            lps: free_port(),
            mqtt: free_port(),
            operator: free_port(),
            extra: String::new(),
            keep_finished: 500,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn lps_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.lps)
    }

    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.operator)
    }

    fn write_config(&self) -> PathBuf {
        let path = self.dir.join("lps-bridge.toml");
        std::fs::write(
            &path,
            format!(
                "[lps]\nlisten = \"127.0.0.1:{}\"\nserver_token = \"{TOKEN}\"\nsignal_interval = \"200ms\"\n\
                 [mqtt]\nlisten = \"127.0.0.1:{}\"\n\
                 [operator]\nlisten = \"127.0.0.1:{}\"\n\
                 [store]\ndir = \"{}\"\nkeep_finished_commands = {}\n{}",
                self.lps,
                self.mqtt,
                self.operator,
                self.data_dir().display(),
                self.keep_finished,
                self.extra
            ),
        )
        .unwrap();
        path
    }
}

pub struct Gateway {
    child: Child,
    pub started: Instant,
    /// Spawn → all three ports accept connections.
    pub to_listening: Option<Duration>,
}

/// Debian's libfaketime (package `faketime`), multi-threaded variant.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Whether any of the site's ports still accepts connections (a gateway that did not die).
pub fn any_port_open(site: &Site) -> bool {
    [site.lps, site.mqtt, site.operator]
        .iter()
        .any(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
}

/// How the child is started.
#[derive(Clone, Copy, PartialEq)]
pub enum Clock {
    Real,
    /// Under `faketime`, the wall clock one hour behind (monotonic clock left alone).
    HourBack,
}

impl Gateway {
    pub fn spawn(site: &Site, clock: Clock) -> Gateway {
        let config = site.write_config();
        let mut cmd = match clock {
            Clock::Real => Command::new(binary()),
            Clock::HourBack => {
                // libfaketime preloaded into the gateway itself (the `faketime` wrapper would
                // fork, and kill -9 would hit the wrapper, not the gateway).
                let mut c = Command::new(binary());
                c.env("LD_PRELOAD", LIBFAKETIME)
                    .env("FAKETIME", "-3600")
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                c
            }
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(site.dir.join("gateway.log"))
                    .unwrap(),
            ))
            .spawn()
            .expect("spawn the gateway");
        Gateway {
            child,
            started: Instant::now(),
            to_listening: None,
        }
    }

    /// Waits until the LPS, MQTT and REST ports accept connections; Err if the child exits or
    /// `patience` passes first.
    pub async fn wait_listening(
        &mut self,
        site: &Site,
        patience: Duration,
    ) -> Result<Duration, String> {
        let ports = [site.lps, site.mqtt, site.operator];
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("gateway exited at start: {status}"));
            }
            if ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                let d = self.started.elapsed();
                self.to_listening = Some(d);
                return Ok(d);
            }
            if self.started.elapsed() > patience {
                return Err(format!("not listening after {patience:?}"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Exited (e.g. refused to start)? With its exit status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: no goodbye, nothing flushed.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (up to 10 s, then SIGKILL).
    pub fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill9();
    }

    pub fn rss_kb(&self) -> u64 {
        proc_rss_kb(self.pid())
    }

    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn proc_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The EVE simulator (`lps-bridge simulate-eve`) as a child process.
pub struct Simulator(Child);

impl Simulator {
    pub fn spawn(site: &Site, speed: f64) -> Simulator {
        let child = Command::new(binary())
            .args(["simulate-eve", "--lps"])
            .arg(site.lps_url())
            .args(["--token", TOKEN, "--apps", "vision,logger", "--speed"])
            .arg(speed.to_string())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn simulate-eve");
        Simulator(child)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! `lps-bridge demo`: the gateway on embedded defaults plus a simulated EVE node with sample apps
//! and profiles, so a newcomer sees everything working with one command. Each demo starts from an
//! empty store unless asked to keep the data, so no command of an earlier demo turns up.

use crate::config::{Config, ProfileEntry};
use crate::simulator::{self, AppSpec, SimOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The token the demo's gateway and simulated node share unless the config sets one.
pub const DEMO_TOKEN: &str = "demo-token";
/// Sample apps: a vision app for the day shift, a GPU trainer for nights, two that always run.
pub const DEMO_APPS: &str = "vision@day,gpu-trainer@night,historian,plc-gateway";

/// The demo's config and where its data lives.
#[derive(Debug, Clone)]
pub struct Demo {
    pub config: Config,
    /// The data directory is the demo's own (a scratch directory): removed on exit.
    pub remove_on_exit: bool,
    /// Continue from what the data directory holds instead of starting fresh.
    pub keep_data: bool,
}

/// The defaults the demo starts from without a config file: the built-in ones with the EVE API
/// on loopback, since the simulated node is local and nothing else needs to reach it.
pub fn defaults() -> Config {
    let mut c = Config::default();
    c.lps.listen = "127.0.0.1:8888".into();
    // Said explicitly: the demo's MQTT clients are on this machine, so anonymous clients are
    // taken from loopback only (Mosquitto 2's rule), as everywhere without this key.
    c.mqtt.allow_anonymous = false;
    c
}

/// Whether the file names `[store] dir` itself (the parsed config cannot tell a default apart).
pub fn sets_store_dir(file: &Path) -> bool {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|t| {
            t.get("store")
                .and_then(|s| s.as_table())
                .is_some_and(|s| s.contains_key("dir"))
        })
}

/// The data directory of a demo given none: one per process, because one process at a time may
/// open a store and a second demo must not fail on the first one's lock. Removed when the demo
/// stops.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("lps-bridge-demo-{}", std::process::id()))
}

/// Where `--keep-data` without a data directory keeps the data between demos.
pub fn kept_dir() -> PathBuf {
    std::env::temp_dir().join("lps-bridge-demo")
}

impl Demo {
    /// `base` ([`defaults`], or a file) with a shared token and two profiles unless set, and the
    /// data in `data_dir`, else [`kept_dir`] with `keep_data`, else [`scratch_dir`].
    pub fn new(base: Config, data_dir: Option<PathBuf>, keep_data: bool) -> Demo {
        let mut c = base;
        if c.lps.server_token.is_empty() {
            c.lps.server_token = DEMO_TOKEN.into();
        }
        let remove_on_exit = data_dir.is_none() && !keep_data;
        c.store.dir = match data_dir {
            Some(dir) => dir,
            None if keep_data => kept_dir(),
            None => scratch_dir(),
        };
        if c.profiles.is_empty() {
            c.profiles = vec![
                ProfileEntry {
                    name: "day".into(),
                    description: "Vision inspection owns the GPU".into(),
                    apps: None,
                },
                ProfileEntry {
                    name: "night".into(),
                    description: "Model training owns the GPU".into(),
                    apps: None,
                },
            ];
        }
        Demo {
            config: c,
            remove_on_exit,
            keep_data,
        }
    }
}

/// Removes the store an earlier demo left in `dir` (only the store's own file: the directory
/// may be the user's). Returns whether there was one.
fn start_fresh(dir: &Path) -> anyhow::Result<bool> {
    let file = dir.join(crate::store::DB_FILE);
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(anyhow::anyhow!(
            "cannot remove the earlier demo's store {}: {e} (or keep it with --keep-data)",
            file.display()
        )),
    }
}

/// Runs the gateway (`prepared`: the demo's config, checked once by the caller) and the simulated
/// node until `signal`.
pub async fn run(
    demo: Demo,
    prepared: crate::app::Prepared,
    speed: f64,
    signal: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = demo.config;
    let data = config.store.dir.clone();
    let cleared = if demo.keep_data {
        false
    } else {
        start_fresh(&data)?
    };
    let banner = Banner {
        base_topic: config.mqtt.base_topic.clone(),
        token: config.lps.server_token.clone(),
        data: data.clone(),
        remove_on_exit: demo.remove_on_exit,
        cleared,
        kept: demo.keep_data,
    };
    let running = crate::app::start(prepared).await?;
    let mut opts = SimOptions::new(format!("http://{}", running.lps_addr), banner.token.clone());
    opts.apps = AppSpec::parse_list(DEMO_APPS).map_err(anyhow::Error::msg)?;
    opts.speed = speed;
    let sim = simulator::spawn(opts);
    print!(
        "{}",
        banner.render(running.operator_addr, running.mqtt_addr, running.lps_addr)
    );
    signal.await;
    sim.stop().await;
    running.stop().await;
    if demo.remove_on_exit {
        // Stopped, so the store is closed: nothing of this demo is needed again.
        if let Err(e) = std::fs::remove_dir_all(&data) {
            eprintln!("lps-bridge demo: could not remove {}: {e}", data.display());
        }
    }
    Ok(())
}

/// What the demo prints once it runs: the addresses it really bound and the config it really
/// has, so that every command shown works as printed.
struct Banner {
    base_topic: String,
    token: String,
    data: PathBuf,
    remove_on_exit: bool,
    cleared: bool,
    kept: bool,
}

/// How a client reaches a listener: a wildcard address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

impl Banner {
    fn render(
        &self,
        operator: Option<SocketAddr>,
        mqtt: Option<SocketAddr>,
        lps: SocketAddr,
    ) -> String {
        let base = &self.base_topic;
        let dashboard = operator
            .map(|a| format!("http://{}/", reachable(a)))
            .unwrap_or_else(|| "(operator API off)".into());
        let mut out = format!(
            "\n  lps-bridge demo: a gateway and a simulated EVE node with apps {DEMO_APPS}\n\n  dashboard   {dashboard}\n"
        );
        match mqtt {
            Some(a) => out += &format!("  MQTT        {}   (base topic {base})\n", reachable(a)),
            None => out += "  MQTT        (embedded broker off)\n",
        }
        out += &format!(
            "  EVE API     http://{}/api/v1/   (token {})\n",
            reachable(lps),
            self.token
        );
        let note = if self.remove_on_exit {
            "   (removed on exit; keep it with --data-dir or --keep-data)"
        } else if self.kept {
            "   (continued from an earlier demo: --keep-data)"
        } else if self.cleared {
            "   (started fresh: an earlier demo's store was removed; keep it with --keep-data)"
        } else {
            ""
        };
        out += &format!("  data        {}{note}\n\n", self.data.display());
        if let Some(a) = mqtt {
            let a = reachable(a);
            let (host, port) = (a.ip(), a.port());
            out += &format!("  try:  mosquitto_sub -h {host} -p {port} -t '{base}/#' -v\n");
            out += &format!(
                "        mosquitto_pub -h {host} -p {port} -t {base}/profile/set -m night\n"
            );
            out += &format!(
                "        mosquitto_pub -h {host} -p {port} -t {base}/app/vision/set -m '{{\"command\":\"restart\"}}'\n\n"
            );
        }
        out += "  Ctrl-C stops it.\n";
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_shows_what_is_configured() {
        let banner = Banner {
            base_topic: "plant/a".into(),
            token: "s3cret".into(),
            data: "/tmp/d".into(),
            remove_on_exit: false,
            cleared: true,
            kept: false,
        };
        let text = banner.render(
            Some("127.0.0.1:18080".parse().unwrap()),
            Some("0.0.0.0:11883".parse().unwrap()),
            "127.0.0.1:18888".parse().unwrap(),
        );
        assert!(
            text.contains("127.0.0.1:11883   (base topic plant/a)"),
            "{text}"
        );
        assert!(text.contains("(token s3cret)"), "{text}");
        assert!(
            text.contains("mosquitto_pub -h 127.0.0.1 -p 11883 -t plant/a/profile/set"),
            "{text}"
        );
        assert!(
            !text.contains("lps/edge") && !text.contains(DEMO_TOKEN),
            "{text}"
        );
        assert!(text.contains("started fresh"), "{text}");
    }

    #[test]
    fn data_dir_choice() {
        let d = Demo::new(defaults(), None, false);
        assert!(d.remove_on_exit && d.config.store.dir == scratch_dir());
        let d = Demo::new(defaults(), None, true);
        assert!(!d.remove_on_exit && d.config.store.dir == kept_dir());
        let d = Demo::new(defaults(), Some("/x".into()), false);
        assert!(!d.remove_on_exit && d.config.store.dir == Path::new("/x"));
        assert_eq!(d.config.lps.server_token, DEMO_TOKEN);
    }
}

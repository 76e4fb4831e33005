//! Counters for `/metrics` (Prometheus text format): EVE requests, MQTT traffic, store commits,
//! plus gauges read from the state snapshot when scraped.

mod losses;
pub use losses::{Loss, Losses};

use crate::eve::Endpoint;
use crate::state::{CommandKind, Lifecycle, State};
use crate::store::WriteStats;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    /// By endpoint label (its wire name, `other` for a path that is none) and status.
    eve_requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub mqtt_messages_in: AtomicU64,
    pub mqtt_messages_out: AtomicU64,
    pub mqtt_connections: AtomicU64,
    pub operator_requests: AtomicU64,
    /// Foreign publishes on the gateway's own retained state topics (re-asserted).
    pub mqtt_state_overwrites: AtomicU64,
    /// Messages the embedded broker dropped for subscribers that fell behind.
    pub mqtt_losses: Losses,
}

impl Metrics {
    /// Counts one request; `None` for a path that is no endpoint.
    pub fn count_eve(&self, endpoint: Option<Endpoint>, status: u16) {
        let label = endpoint.map_or("other", Endpoint::name);
        let mut map = self.eve_requests.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((label, status)).or_default() += 1;
    }

    pub fn eve_requests(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.eve_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Renders everything in Prometheus' text exposition format.
    pub fn render(&self, state: &State, writes: &WriteStats, now_unix_ms: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP lps_bridge_eve_requests_total Requests from EVE by LPS endpoint and HTTP status.");
        let _ = writeln!(out, "# TYPE lps_bridge_eve_requests_total counter");
        for ((endpoint, status), n) in self.eve_requests() {
            let _ = writeln!(
                out,
                "lps_bridge_eve_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP lps_bridge_eve_online 1 while EVE polls within lps.eve_offline_after."
        );
        let _ = writeln!(out, "# TYPE lps_bridge_eve_online gauge");
        let _ = writeln!(out, "lps_bridge_eve_online {}", u8::from(state.eve.online));
        let _ = writeln!(out, "# HELP lps_bridge_eve_last_seen_seconds Seconds since EVE's last request (-1 = never).");
        let _ = writeln!(out, "# TYPE lps_bridge_eve_last_seen_seconds gauge");
        let since = state
            .eve_last_seen_ms()
            .map(|ms| now_unix_ms.saturating_sub(ms) as f64 / 1000.0)
            .unwrap_or(-1.0);
        let _ = writeln!(out, "lps_bridge_eve_last_seen_seconds {since}");

        let mut by: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for kind in ["app", "device"] {
            for lc in Lifecycle::ALL {
                by.insert((kind, lc.name()), 0);
            }
        }
        for cmd in state.commands.values() {
            let kind = match cmd.kind {
                CommandKind::App { .. } => "app",
                CommandKind::Device { .. } => "device",
            };
            *by.entry((kind, cmd.lifecycle.name())).or_default() += 1;
        }
        let _ = writeln!(
            out,
            "# HELP lps_bridge_commands Commands in the log by kind and lifecycle state."
        );
        let _ = writeln!(out, "# TYPE lps_bridge_commands gauge");
        for ((kind, lifecycle), n) in by {
            let _ = writeln!(
                out,
                "lps_bridge_commands{{kind=\"{kind}\",lifecycle=\"{lifecycle}\"}} {n}"
            );
        }
        let counters = [
            (
                "lps_bridge_mqtt_messages_received_total",
                "counter",
                "MQTT messages received on command and rule topics.",
                self.mqtt_messages_in.load(Ordering::Relaxed),
            ),
            (
                "lps_bridge_mqtt_state_overwrites_total",
                "counter",
                "Publishes by other clients on the gateway's retained state topics (the gateway's value was re-asserted).",
                self.mqtt_state_overwrites.load(Ordering::Relaxed),
            ),
            (
                "lps_bridge_mqtt_messages_published_total",
                "counter",
                "MQTT messages published (telemetry, events, replies).",
                self.mqtt_messages_out.load(Ordering::Relaxed),
            ),
            (
                "lps_bridge_mqtt_connections",
                "gauge",
                "Clients connected to the embedded broker.",
                self.mqtt_connections.load(Ordering::Relaxed),
            ),
            (
                "lps_bridge_store_commits_total",
                "counter",
                "Durable store commits.",
                writes.commits.load(Ordering::Relaxed),
            ),
            (
                "lps_bridge_store_failures_total",
                "counter",
                "Times the store turned read-only (failed commit, or start without write access).",
                writes.failures.load(Ordering::Relaxed),
            ),
            (
                "lps_bridge_store_recoveries_total",
                "counter",
                "Times the store became writable again without a restart.",
                writes.reopens.load(Ordering::Relaxed),
            ),
            (
                "lps_bridge_store_writable",
                "gauge",
                "1 while the store takes writes, 0 while it is read-only (see /readyz for why).",
                u64::from(state.store.is_writable()),
            ),
        ];
        for (name, kind, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        let total = writes.total_us.load(Ordering::Relaxed) as f64 / 1e6;
        let max = writes.max_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "# HELP lps_bridge_store_commit_seconds_sum Total time spent in store commits (fsync included).");
        let _ = writeln!(out, "# TYPE lps_bridge_store_commit_seconds_sum counter");
        let _ = writeln!(out, "lps_bridge_store_commit_seconds_sum {total}");
        let _ = writeln!(
            out,
            "# HELP lps_bridge_store_commit_seconds_max Longest store commit since start."
        );
        let _ = writeln!(out, "# TYPE lps_bridge_store_commit_seconds_max gauge");
        let _ = writeln!(out, "lps_bridge_store_commit_seconds_max {max}");
        self.mqtt_losses.render(&mut out);
        out
    }
}

/// The embedded broker's link and listeners, and the publisher's queues, as read at a scrape.
#[derive(Debug, Default)]
pub struct BrokerFacts {
    /// `None` without an embedded broker.
    pub link_up: Option<bool>,
    pub link_reconnects: u64,
    pub publish_dropped: u64,
    pub sockets: Vec<crate::descriptors::SocketAudit>,
    pub fd_soft_limit: Option<u64>,
}

/// Renders `facts` in Prometheus' text format (appended after `Metrics::render`).
pub fn render_broker(out: &mut String, facts: &BrokerFacts) {
    let mut gauge = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    if let Some(up) = facts.link_up {
        gauge(
            "lps_bridge_mqtt_link_up",
            "gauge",
            "1 while the gateway's own link into the embedded broker is subscribed.",
            u64::from(up),
        );
        gauge(
            "lps_bridge_mqtt_link_reconnects_total",
            "counter",
            "Times the gateway's link was lost (e.g. a client used its id) and built again.",
            facts.link_reconnects,
        );
    }
    gauge(
        "lps_bridge_mqtt_publish_dropped_total",
        "counter",
        "Messages dropped because a broker connection's queue (16384) was full.",
        facts.publish_dropped,
    );
    if let Some(limit) = facts.fd_soft_limit {
        gauge(
            "lps_bridge_open_files_limit",
            "gauge",
            "Soft limit on open files.",
            limit,
        );
    }
    if facts.sockets.is_empty() {
        return;
    }
    type Series = (
        &'static str,
        &'static str,
        fn(&crate::descriptors::SocketAudit) -> u64,
    );
    let series: [Series; 3] = [
        (
            "lps_bridge_mqtt_listener_fds",
            "Descriptors open in the process, as seen by the listener.",
            |a| a.fds,
        ),
        (
            "lps_bridge_mqtt_listener_sockets",
            "Client sockets the listener accepted and holds.",
            |a| a.clients,
        ),
        (
            "lps_bridge_mqtt_listener_sockets_without_nodelay",
            "Accepted client sockets without TCP_NODELAY (replies would wait for delayed ACKs).",
            |a| a.clients_without_nodelay,
        ),
    ];
    for (name, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for audit in &facts.sockets {
            let _ = writeln!(
                out,
                "{name}{{listener=\"{}\"}} {}",
                audit.listener,
                value(audit)
            );
        }
    }
}

/// Established TCP connections whose local port is one of `ports`, from the kernel's socket table
/// (the embedded broker does not report its clients). `None` where /proc is not available.
pub fn established_connections(ports: &[u16]) -> Option<u64> {
    count_sockets(ports, ESTABLISHED)
}

const ESTABLISHED: &str = "01";
/// The kernel's code for a listening socket.
pub const LISTEN: &str = "0A";

/// Sockets in `state` (the kernel's hex code) whose local port is one of `ports`.
pub fn count_sockets(ports: &[u16], state: &str) -> Option<u64> {
    let mut total = 0;
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        total += count_in_state(&text, ports, state);
    }
    readable.then_some(total)
}

fn count_in_state(table: &str, ports: &[u16], wanted: &str) -> u64 {
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1).unwrap_or("");
            let state = fields.nth(1).unwrap_or("");
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            state == wanted && port.is_some_and(|p| ports.contains(&p))
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_established_sockets_on_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:075B 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:C350 0100007F:075B 01 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: 0100007F:075B 0100007F:C351 06 00000000:00000000 00:00000000 00000000     0        0 4 1";
        assert_eq!(
            count_in_state(table, &[1883], ESTABLISHED),
            1,
            "listening, client side and TIME_WAIT excluded"
        );
        assert_eq!(count_in_state(table, &[1883], LISTEN), 1);
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.count_eve(Some(Endpoint::AppInfo), 204);
        m.count_eve(Some(Endpoint::AppInfo), 204);
        m.count_eve(Some(Endpoint::DevInfo), 200);
        let text = m.render(&State::default(), &WriteStats::default(), 0);
        assert!(
            text.contains("lps_bridge_eve_requests_total{endpoint=\"appinfo\",status=\"204\"} 2"),
            "{text}"
        );
        assert!(text.contains("lps_bridge_commands{kind=\"device\",lifecycle=\"accepted\"} 0"));
        assert!(text.contains("lps_bridge_eve_last_seen_seconds -1"));
        assert!(text.contains("lps_bridge_store_writable 1"), "{text}");
        assert!(text.contains("lps_bridge_store_failures_total 0"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
        }
    }
}

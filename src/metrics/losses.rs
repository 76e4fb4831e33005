//! Messages the embedded broker skipped for subscribers that fell behind (filled by
//! `mqtt::alerts` from rumqttd's warnings), per (client, filter), rendered into `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    /// Cursor jumps (each one a run of lost messages).
    pub jumps: u64,
    /// Messages skipped by those jumps (0 while the count is unknown).
    pub lost: u64,
}

/// Losses per (client, filter) since start, rendered into `/metrics`.
#[derive(Debug, Default)]
pub struct Losses {
    by: Mutex<BTreeMap<(String, String), Loss>>,
}

impl Losses {
    pub fn get(&self, client: &str, filter: &str) -> Loss {
        lock(&self.by)
            .get(&(client.to_string(), filter.to_string()))
            .copied()
            .unwrap_or_default()
    }

    pub fn add(&self, key: &(String, String), loss: Loss) {
        let mut by = lock(&self.by);
        let entry = by.entry(key.clone()).or_default();
        entry.jumps += loss.jumps;
        entry.lost += loss.lost;
    }

    pub fn render(&self, out: &mut String) {
        let by = lock(&self.by).clone();
        let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(out, "# HELP lps_bridge_mqtt_messages_lost_total Messages the embedded broker skipped for a subscriber that fell behind its filter's backlog (mqtt.segment_*), by client and filter.");
        let _ = writeln!(out, "# TYPE lps_bridge_mqtt_messages_lost_total counter");
        for ((client, filter), loss) in &by {
            let _ = writeln!(
                out,
                "lps_bridge_mqtt_messages_lost_total{{client=\"{}\",filter=\"{}\"}} {}",
                label(client),
                label(filter),
                loss.lost
            );
        }
        let _ = writeln!(out, "# HELP lps_bridge_mqtt_cursor_jumps_total Times the embedded broker moved a subscriber's cursor past messages it had not sent, by client and filter.");
        let _ = writeln!(out, "# TYPE lps_bridge_mqtt_cursor_jumps_total counter");
        for ((client, filter), loss) in &by {
            let _ = writeln!(
                out,
                "lps_bridge_mqtt_cursor_jumps_total{{client=\"{}\",filter=\"{}\"}} {}",
                label(client),
                label(filter),
                loss.jumps
            );
        }
        let total: u64 = by.values().map(|l| l.jumps).sum();
        let _ = writeln!(out, "# HELP lps_bridge_mqtt_cursor_jumps_all_total Cursor jumps of every client and filter together.");
        let _ = writeln!(out, "# TYPE lps_bridge_mqtt_cursor_jumps_all_total counter");
        let _ = writeln!(out, "lps_bridge_mqtt_cursor_jumps_all_total {total}");
    }
}

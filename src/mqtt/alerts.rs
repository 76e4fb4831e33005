//! Messages the embedded broker drops, made visible: counted per client and filter in
//! `/metrics`, logged with the client id and announced as `mqtt_messages_lost` on `B/events`.
//!
//! rumqttd drops messages in one place only: a subscriber that fell further behind than its
//! filter's log holds has its cursor jumped forward (see `broker.rs`). It reports that on its
//! alerts link as `CursorJump { filter, lost }`, but `lost` is always 0 in 0.20, so the number
//! comes from the warning it logs at the same moment ("Read cursor start jumped from (segment,
//! offset) to (segment, offset)"), inside a span that carries the client id: [`layer`] reads that
//! into a process-wide ledger, and each alert takes its client and filter's share. Without the
//! layer installed jumps are still counted and announced, with `lost` unknown (null).

use crate::metrics::Metrics;
use crate::state::Event;
use crate::store::StoreHandle;
use rumqttd::alerts::AlertsLink;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The client id of the gateway's own link: a jump there loses accepted commands.
const OWN_LINK: &str = "lps-bridge";
/// rumqttd logs the jump from this module, inside this span.
const ROUTING: &str = "rumqttd::router::routing";
const SPAN: &str = "outgoing_publish";
/// At most this many (client, filter) pairs are logged and announced per alert batch (one batch
/// a second); the rest are summed in one line, so no flood of jumps can flood the log.
const REPORT_PER_BATCH: usize = 10;

/// rumqttd pushes collected alerts at this interval (whole seconds only).
pub fn alert_settings() -> HashMap<rumqttd::MetricType, rumqttd::MetricSettings> {
    // MetricSettings' field is private: it can only be built the way a config file builds it.
    // rumqttd's timer unwraps both intervals whichever is configured, so meters get one too
    // (nobody takes the meters link: pushing them is a no-op).
    serde_json::from_value(json!({
        "alerts": { "push_interval": 1 },
        "meters": { "push_interval": 3600 },
    }))
    .expect("a valid rumqttd metrics setting")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The ledger of lost messages, filled from rumqttd's log events

type Key = (String, String);

/// Messages lost per (client, filter) that no alert has claimed yet. Process-wide because a
/// tracing layer is; the key includes the client id, so two gateways in one process (tests)
/// do not take each other's counts unless their clients share ids.
static LEDGER: Mutex<BTreeMap<Key, u64>> = Mutex::new(BTreeMap::new());
static LAYER_INSTALLED: AtomicBool = AtomicBool::new(false);

fn take_lost(client: &str, filter: &str) -> Option<u64> {
    if !LAYER_INSTALLED.load(Ordering::Relaxed) {
        return None;
    }
    Some(
        lock(&LEDGER)
            .remove(&(client.to_string(), filter.to_string()))
            .unwrap_or(0),
    )
}

/// Everything still unclaimed (when rumqttd's alert log overflowed and some alerts were lost).
fn take_all_lost() -> BTreeMap<Key, u64> {
    std::mem::take(&mut *lock(&LEDGER))
}

/// The tracing layer that reads how many messages each cursor jump skipped. Install it beside
/// the log output (the binary does); it sees only rumqttd's routing span and warnings, whatever
/// the log filter says.
pub fn layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    LAYER_INSTALLED.store(true, Ordering::Relaxed);
    CursorJumps.with_filter(RoutingOnly)
}

struct CursorJumps;
struct RoutingOnly;
/// The client id recorded on rumqttd's `outgoing_publish` span.
struct ClientId(String);

impl<S> Filter<S> for RoutingOnly {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        meta.target() == ROUTING
            && ((meta.is_span() && meta.name() == SPAN)
                || (meta.is_event() && *meta.level() == Level::WARN))
    }
}

#[derive(Default)]
struct Fields {
    client_id: Option<String>,
    request_cursor: Option<String>,
    start_cursor: Option<String>,
    message: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}

impl Fields {
    fn set(&mut self, field: &Field, value: String) {
        let slot = match field.name() {
            "client_id" => &mut self.client_id,
            "request_cursor" => &mut self.request_cursor,
            "start_cursor" => &mut self.start_cursor,
            "error" | "message" => &mut self.message,
            _ => return,
        };
        *slot = Some(value);
    }
}

/// `(segment, offset)` as rumqttd prints a cursor: the offset is absolute within the filter's log.
fn cursor_offset(text: &str) -> Option<u64> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').nth(1)?.trim().parse().ok()
}

/// The filter named at the end of "Read cursor start jumped from … to … on <filter>".
fn jumped_filter(message: &str) -> Option<&str> {
    let rest = message.trim_matches('"');
    // The second cursor is the first one followed by " on ": the filter is all that follows.
    rest.starts_with("Read cursor start jumped")
        .then(|| rest.split_once(") on ").map(|(_, f)| f))
        .flatten()
}

impl<S> Layer<S> for CursorJumps
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(client), Some(span)) = (fields.client_id, ctx.span(id)) {
            let client = client.trim_matches('"').to_string();
            span.extensions_mut().insert(ClientId(client));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (Some(from), Some(to), Some(message)) =
            (fields.request_cursor, fields.start_cursor, fields.message)
        else {
            return;
        };
        let (Some(from), Some(to), Some(filter)) = (
            cursor_offset(&from),
            cursor_offset(&to),
            jumped_filter(&message),
        ) else {
            return;
        };
        let Some(client) = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<ClientId>().map(|c| c.0.clone()))
        else {
            return;
        };
        *lock(&LEDGER)
            .entry((client, filter.to_string()))
            .or_default() += to.saturating_sub(from);
    }
}

// ---------------------------------------------------------------------------------------------
// Counts for /metrics

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
    by: Mutex<BTreeMap<Key, Loss>>,
    /// Jumps whose alert rumqttd itself dropped (it keeps at most 99 per push interval).
    unattributed_jumps: Mutex<u64>,
}

impl Losses {
    pub fn get(&self, client: &str, filter: &str) -> Loss {
        lock(&self.by)
            .get(&(client.to_string(), filter.to_string()))
            .copied()
            .unwrap_or_default()
    }

    fn add(&self, key: &Key, loss: Loss) {
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
        let total: u64 =
            by.values().map(|l| l.jumps).sum::<u64>() + *lock(&self.unattributed_jumps);
        let _ = writeln!(out, "# HELP lps_bridge_mqtt_cursor_jumps_all_total Cursor jumps of every client, including those whose alert the broker dropped.");
        let _ = writeln!(out, "# TYPE lps_bridge_mqtt_cursor_jumps_all_total counter");
        let _ = writeln!(out, "lps_bridge_mqtt_cursor_jumps_all_total {total}");
    }
}

// ---------------------------------------------------------------------------------------------
// The alerts task

/// One batch of alerts: jumps per (client, filter) and how many alerts rumqttd dropped.
#[derive(Debug, Default, PartialEq)]
struct Batch {
    jumps: BTreeMap<Key, u64>,
    dropped: u64,
}

fn batch(alerts: &[rumqttd::Alert]) -> Batch {
    let mut b = Batch {
        // The alert log restarts its sequence at 0 after each push and drops the oldest beyond
        // 99, so the first sequence of a batch is how many it dropped.
        dropped: alerts.first().map(|a| a.sequence as u64).unwrap_or(0),
        ..Batch::default()
    };
    for alert in alerts {
        // rumqttd does not export the alert's kind type; its serialized form is stable enough.
        let kind = serde_json::to_value(&alert.kind).unwrap_or_default();
        if let Some(filter) = kind["CursorJump"]["filter"].as_str() {
            *b.jumps
                .entry((alert.client_id.clone(), filter.to_string()))
                .or_default() += 1;
        }
    }
    b
}

/// Reads the broker's alerts until the broker stops: counts, logs and announces every jump.
pub async fn run(alerts: AlertsLink, metrics: Arc<Metrics>, store: StoreHandle) {
    while let Ok(list) = alerts.next().await {
        let b = batch(&list);
        let mut reports = Vec::new();
        for (key, jumps) in &b.jumps {
            let lost = take_lost(&key.0, &key.1);
            metrics.mqtt_losses.add(
                key,
                Loss {
                    jumps: *jumps,
                    lost: lost.unwrap_or(0),
                },
            );
            reports.push((key.clone(), *jumps, lost));
        }
        if b.dropped > 0 {
            *lock(&metrics.mqtt_losses.unattributed_jumps) += b.dropped;
            // Their lost messages are in the ledger with nobody left to claim them.
            for (key, lost) in take_all_lost() {
                metrics.mqtt_losses.add(&key, Loss { jumps: 0, lost });
                reports.push((key, 0, Some(lost)));
            }
            tracing::warn!(
                dropped = b.dropped,
                "the MQTT broker dropped some of its own loss alerts (more than 99 in a second)"
            );
        }
        report(&reports, &store);
    }
    tracing::debug!("MQTT broker alerts stopped");
}

fn report(reports: &[(Key, u64, Option<u64>)], store: &StoreHandle) {
    for ((client, filter), jumps, lost) in reports.iter().take(REPORT_PER_BATCH) {
        let lost_text = lost.map_or("an unknown number of".to_string(), |n| n.to_string());
        if client == OWN_LINK {
            tracing::error!(client, filter, jumps, lost = ?lost, "the gateway's own MQTT link fell behind: {lost_text} accepted messages were dropped by the broker before the gateway read them (raise mqtt.own_segment_bytes)");
        } else {
            tracing::warn!(client, filter, jumps, lost = ?lost, "MQTT subscriber fell behind its backlog: the broker skipped {lost_text} messages (raise mqtt.segment_bytes / mqtt.own_segment_bytes, or make the subscriber faster)");
        }
        store.announce(Event::new(
            "mqtt_messages_lost",
            json!({ "client": client, "filter": filter, "lost": lost, "jumps": jumps }),
        ));
    }
    if reports.len() > REPORT_PER_BATCH {
        let rest = &reports[REPORT_PER_BATCH..];
        let lost: u64 = rest.iter().filter_map(|r| r.2).sum();
        tracing::warn!(
            pairs = rest.len(),
            lost,
            "more MQTT subscribers lost messages (see lps_bridge_mqtt_messages_lost_total)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rumqttd_cursors_and_filters() {
        assert_eq!(cursor_offset("(3, 41020)"), Some(41020));
        assert_eq!(cursor_offset("(0,7)"), Some(7));
        assert_eq!(cursor_offset("3, 4"), None);
        assert_eq!(
            jumped_filter("Read cursor start jumped from (0, 5) to (2, 900) on a/b/#"),
            Some("a/b/#")
        );
        // A filter may itself contain " on ".
        assert_eq!(
            jumped_filter("Read cursor start jumped from (0, 5) to (2, 9) on a on b/#"),
            Some("a on b/#")
        );
        assert_eq!(jumped_filter("something else on x"), None);
    }

    #[test]
    fn renders_losses_per_client_and_filter() {
        let l = Losses::default();
        l.add(
            &("plc\"1".into(), "a/#".into()),
            Loss {
                jumps: 2,
                lost: 300,
            },
        );
        let mut out = String::new();
        l.render(&mut out);
        assert!(
            out.contains(
                r#"lps_bridge_mqtt_messages_lost_total{client="plc\"1",filter="a/#"} 300"#
            ),
            "{out}"
        );
        assert!(
            out.contains("lps_bridge_mqtt_cursor_jumps_all_total 2"),
            "{out}"
        );
    }
}

//! Messages the embedded broker drops, made visible: counted per client and filter in
//! `/metrics`, logged with the client id and announced as `mqtt_messages_lost` on `B/events`.
//!
//! rumqttd drops messages in one place only: a subscriber that fell further behind than its
//! filter's log holds has its cursor jumped forward (see `broker.rs`). Its `CursorJump` alert
//! says `lost: 0` in 0.20, and alerts are only pushed by a timer that `Broker::start` runs, which
//! we do not use (our listeners run on threads of ours, for TCP_NODELAY). The warning it logs at
//! the same moment ("Read cursor start jumped from (segment, offset) to (segment, offset) on
//! <filter>"), inside a span that carries the client id, has everything: [`layer`] reads it into
//! a process-wide ledger, and [`run`] takes the ledger once a second to count, log and announce.
//! The layer must be installed (the binary does, in `logging::init`; tests install it too).

use crate::metrics::{Loss, Metrics};
use crate::state::{Event, EventName};
use crate::store::StoreHandle;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The client id prefix of the gateway's own links: a jump there loses accepted commands.
const OWN_LINK: &str = super::auth::LINK_ID_PREFIX;
/// rumqttd logs the jump from this module, inside this span.
const ROUTING: &str = "rumqttd::router::routing";
const SPAN: &str = "outgoing_publish";
/// At most this many (client, filter) pairs are logged and announced per second; the rest are
/// summed in one line, so no flood of jumps can flood the log.
const REPORT_PER_BATCH: usize = 10;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The ledger of lost messages, filled from rumqttd's log events

type Key = (String, String);

/// Jumps and messages lost per (client, filter) not yet counted. Process-wide because a tracing
/// layer is; the key includes the client id, so two gateways in one process (tests) do not take
/// each other's counts unless their clients share ids.
/// Keyed by the router thread's name too (`router-<id>`, the id unique per broker in the process,
/// see `broker::start`): rumqttd logs the jump on its router's thread, so each gateway takes only
/// its own broker's losses.
static LEDGER: Mutex<BTreeMap<(String, Key), Loss>> = Mutex::new(BTreeMap::new());

/// Takes what the router thread named `router` has lost since the last call.
fn take_router(router: &str) -> BTreeMap<Key, Loss> {
    let mut taken = BTreeMap::new();
    lock(&LEDGER).retain(|(r, key), loss| {
        if r != router {
            return true;
        }
        taken.insert(key.clone(), *loss);
        false
    });
    taken
}

/// The tracing layer that reads how many messages each cursor jump skipped. Install it beside
/// the log output (the binary does); it sees only rumqttd's routing span and warnings, whatever
/// the log filter says.
pub fn layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
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
        let router = std::thread::current().name().unwrap_or("").to_string();
        let mut ledger = lock(&LEDGER);
        let entry = ledger
            .entry((router, (client, filter.to_string())))
            .or_default();
        entry.jumps += 1;
        entry.lost += to.saturating_sub(from);
    }
}

// Counts for /metrics live in `crate::metrics::losses` (this layer only fills them).

// ---------------------------------------------------------------------------------------------
// The reporting task

/// Once a second until shutdown: counts, logs and announces every jump the layer saw on the
/// router thread named `router`.
pub async fn run(
    router: String,
    metrics: Arc<Metrics>,
    store: StoreHandle,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while store.is_alive() {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let taken = take_router(&router);
        if taken.is_empty() {
            continue;
        }
        let mut reports = Vec::with_capacity(taken.len());
        for (key, loss) in taken {
            metrics.mqtt_losses.add(&key, loss);
            reports.push((key, loss.jumps, Some(loss.lost)));
        }
        report(&reports, &store).await;
    }
}

async fn report(reports: &[(Key, u64, Option<u64>)], store: &StoreHandle) {
    for ((client, filter), jumps, lost) in reports.iter().take(REPORT_PER_BATCH) {
        let lost_text = lost.map_or("an unknown number of".to_string(), |n| n.to_string());
        if client.starts_with(OWN_LINK) {
            tracing::error!(client, filter, jumps, lost = ?lost, "the gateway's own MQTT link fell behind: {lost_text} accepted messages were dropped by the broker before the gateway read them (raise mqtt.own_segment_bytes)");
        } else {
            tracing::warn!(client, filter, jumps, lost = ?lost, "MQTT subscriber fell behind its backlog: the broker skipped {lost_text} messages (raise mqtt.segment_bytes / mqtt.own_segment_bytes, or make the subscriber faster)");
        }
        store
            .event(Event::new(
                EventName::MqttMessagesLost,
                json!({ "client": client, "filter": filter, "lost": lost, "jumps": jumps }),
            ))
            .await;
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
    use crate::metrics::Losses;

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

//! Egress: turns store changes into retained state topics and `B/events`. Publishes a topic only
//! when its payload changed, and republishes everything at start (from the store).

use super::views;
use crate::mqtt::topics::{stable_hash, Topics, MAX_PAYLOAD_BYTES};
use crate::mqtt::{Outgoing, Publisher};
use crate::state::{State, StateTopic};
use crate::store::StoreHandle;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

/// The topic (below the base) where a state topic's JSON is retained; `apps` also fans out to
/// `app/<name>` for each app.
pub fn state_topic_name(topic: StateTopic) -> &'static str {
    match topic {
        StateTopic::Eve => "eve/state",
        StateTopic::Device => "device",
        StateTopic::Apps => "apps",
        StateTopic::Profile => "profile",
        StateTopic::Radio => "radio",
        StateTopic::Network => "network",
        StateTopic::Location => "location",
    }
}

pub struct Telemetry {
    topics: Topics,
    publisher: Publisher,
    /// A hash of what each retained topic holds now, to skip unchanged republishes (the payloads
    /// themselves are kept once, in the publisher's retained cache).
    last: HashMap<String, u64>,
    app_topics: BTreeSet<String>,
}

/// How many app topics must go in one change before freed memory is handed back to the system.
const TRIM_AFTER_REMOVED: usize = 256;

/// Where the full content of an oversize state topic can be read instead.
fn full_view_at(topic: StateTopic) -> &'static str {
    match topic {
        StateTopic::Eve => "GET /api/eve",
        StateTopic::Device => "GET /api/device",
        StateTopic::Apps => "B/app/+ (one retained topic per app) or GET /api/apps",
        StateTopic::Profile => "GET /api/profile",
        StateTopic::Radio => "GET /api/radio",
        StateTopic::Network => "GET /api/network",
        StateTopic::Location => "GET /api/location",
    }
}

/// The payload to publish for `value`: its JSON, or, beyond [`MAX_PAYLOAD_BYTES`], a short notice
/// saying how large it was and where to read it (subscribers' packet limits are often lower still).
pub fn bounded_payload(value: &Value, see: &str) -> Bytes {
    let text = value.to_string();
    if text.len() <= MAX_PAYLOAD_BYTES {
        return Bytes::from(text);
    }
    let mut notice = json!({
        "too_large": true,
        "bytes": text.len(),
        "limit": MAX_PAYLOAD_BYTES,
        "see": see,
    });
    for key in ["id", "name"] {
        if let Some(v) = value.get(key).and_then(Value::as_str) {
            notice[key] = json!(v);
        }
    }
    if let Value::Array(items) = value {
        notice["count"] = json!(items.len());
    }
    Bytes::from(notice.to_string())
}

impl Telemetry {
    pub fn new(topics: Topics, publisher: Publisher) -> Telemetry {
        Telemetry {
            topics,
            publisher,
            last: HashMap::new(),
            app_topics: BTreeSet::new(),
        }
    }

    fn retain(&mut self, topic: String, value: &Value, see: &str) {
        let payload = bounded_payload(value, see);
        let hash = stable_hash(&payload);
        if self.last.get(&topic) == Some(&hash) {
            return;
        }
        self.last.insert(topic.clone(), hash);
        self.publisher.publish(Outgoing::retained(topic, payload));
    }

    pub fn publish_topic(&mut self, state: &State, topic: StateTopic) {
        let name = self.topics.topic(state_topic_name(topic));
        let see = full_view_at(topic);
        match topic {
            StateTopic::Eve => self.retain(name, &views::eve(state), see),
            StateTopic::Device => self.retain(name, &views::device(state), see),
            StateTopic::Profile => self.retain(name, &views::profile(state), see),
            StateTopic::Radio => self.retain(name, &views::radio(state), see),
            StateTopic::Network => self.retain(name, &views::network(state), see),
            StateTopic::Location => self.retain(name, &views::location(state), see),
            StateTopic::Apps => {
                let apps = views::apps(state);
                let now: BTreeSet<String> = apps
                    .iter()
                    .map(|(level, _)| self.topics.app(level))
                    .collect();
                // Apps EVE no longer reports: delete their retained topics.
                let gone: Vec<String> = self.app_topics.difference(&now).cloned().collect();
                for topic in &gone {
                    self.last.remove(topic);
                    self.publisher
                        .publish(Outgoing::clear_retained(topic.clone()));
                }
                // Each full view is dropped as soon as it is published and summed up, so that a
                // 10,000-app report never holds all views and the whole summary at once.
                let mut summary = Vec::with_capacity(apps.len());
                for (level, view) in apps {
                    let see = match view["id"].as_str() {
                        Some(id) => format!("GET /api/apps/{id}"),
                        None => "GET /api/apps".into(),
                    };
                    self.retain(self.topics.app(&level), &view, &see);
                    summary.push(views::app_summary(&level, &view));
                }
                // The summary last: whoever sees it has seen every app topic it lists.
                let summary = Value::Array(summary);
                self.retain(name, &summary, see);
                drop(summary);
                self.app_topics = now;
                if gone.len() >= TRIM_AFTER_REMOVED {
                    self.last.shrink_to_fit();
                    super::memory::give_back_soon();
                }
            }
        }
    }

    /// Full retained state: bridge, then every state topic.
    pub fn publish_all(&mut self, state: &State, features: &Value) {
        self.publish_bridge_state(state);
        self.retain(
            self.topics.topic("bridge/info"),
            &json!({
                "version": env!("CARGO_PKG_VERSION"),
                "topic_schema": 1,
                "base_topic": self.topics.base(),
                "features": features,
            }),
            "GET /readyz",
        );
        for topic in StateTopic::ALL {
            self.publish_topic(state, topic);
        }
    }

    /// `B/bridge/state`: online, and whether the store takes writes (and if not, why).
    pub fn publish_bridge_state(&mut self, state: &State) {
        self.retain(
            self.topics.topic("bridge/state"),
            &views::bridge_state(state),
            "GET /readyz",
        );
    }

    pub fn publish_event(&self, event: &crate::state::Event, at_ms: u64) {
        let body = views::event(event, at_ms);
        self.publisher.publish(Outgoing::message(
            self.topics.events(),
            bounded_payload(&body, "GET /api/events (SSE) or GET /api/commands"),
        ));
    }
}

/// Runs until shutdown: republishes from the store, then follows changes.
pub async fn run(
    mut telemetry: Telemetry,
    store: StoreHandle,
    features: Value,
    shutdown: CancellationToken,
) {
    let mut changes = store.subscribe();
    telemetry.publish_all(&store.snapshot(), &features);
    loop {
        let change = tokio::select! {
            _ = shutdown.cancelled() => break,
            got = changes.recv() => got,
        };
        match change {
            Ok(first) => {
                // Take every change already queued: events all go out in order, each state
                // topic once, so a burst of commands costs one republish, not one per command.
                let mut topics: BTreeSet<StateTopic> = BTreeSet::new();
                let mut lagged = false;
                let mut store_event = false;
                let at = views::unix_ms_now();
                let mut next = Some(first);
                while let Some(change) = next.take() {
                    for event in &change.events {
                        telemetry.publish_event(event, at);
                    }
                    store_event |= change.events.iter().any(|e| e.event.is_store());
                    topics.extend(change.topics.iter().copied());
                    next = match changes.try_recv() {
                        Ok(change) => Some(change),
                        Err(TryRecvError::Lagged(_)) => {
                            lagged = true;
                            None
                        }
                        Err(_) => None,
                    };
                }
                if lagged {
                    tracing::warn!("telemetry fell behind; republishing full state");
                    topics.extend(StateTopic::ALL);
                }
                let state = store.snapshot();
                if store_event || lagged {
                    telemetry.publish_bridge_state(&state);
                }
                for topic in topics {
                    telemetry.publish_topic(&state, topic);
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "telemetry fell behind; republishing full state");
                let state = store.snapshot();
                telemetry.publish_bridge_state(&state);
                for topic in StateTopic::ALL {
                    telemetry.publish_topic(&state, topic);
                }
            }
            Err(RecvError::Closed) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::AppReport;

    fn state_with_apps(n: usize) -> State {
        let mut state = State::default();
        state.reports.apps = Some(
            (0..n)
                .map(|i| AppReport {
                    id: format!("id-{i}"),
                    name: format!("app-{i}"),
                    last_cmd_timestamp: 0,
                    info: json!({"id": format!("id-{i}"), "name": format!("app-{i}"), "state": "RUNNING"}),
                })
                .collect(),
        );
        state
    }

    /// Issue 7: after EVE reports 10,000 apps and then 3, nothing of the 9,997 gone apps stays in
    /// telemetry's own maps or the publisher's retained cache (counts and capacities, no timing).
    #[test]
    fn a_shrunk_app_list_leaves_nothing_behind() {
        let publisher = Publisher::default();
        let mut sink = publisher.add_sink();
        let mut t = Telemetry::new(Topics::new("lps/edge"), publisher.clone());
        t.publish_topic(&state_with_apps(10_000), StateTopic::Apps);
        assert_eq!(t.app_topics.len(), 10_000);
        assert_eq!(publisher.retained().len(), 10_001);
        while sink.try_recv().is_ok() {}

        t.publish_topic(&state_with_apps(3), StateTopic::Apps);
        assert_eq!(t.app_topics.len(), 3);
        assert_eq!(t.last.len(), 4, "3 app topics and the summary");
        assert!(
            t.last.capacity() < 64,
            "the hash map was shrunk, capacity {}",
            t.last.capacity()
        );
        assert_eq!(publisher.retained().len(), 4);
        // Every gone app's retained topic is cleared at the broker.
        let mut cleared = 0;
        while let Ok(out) = sink.try_recv() {
            if out.retain && out.payload.is_empty() {
                cleared += 1;
            }
        }
        assert_eq!(cleared, 9_997);
    }
}

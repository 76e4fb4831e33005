//! Egress: turns store changes into retained state topics and `B/events`. Publishes a topic only
//! when its payload changed, and republishes everything at start (from the store).

use super::views;
use crate::mqtt::topics::Topics;
use crate::mqtt::{Outgoing, Publisher};
use crate::state::{State, StateTopic};
use crate::store::StoreHandle;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use tokio::sync::broadcast::error::RecvError;
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
    /// What each retained topic holds now, to skip unchanged republishes.
    last: HashMap<String, Bytes>,
    app_topics: BTreeSet<String>,
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

    fn retain(&mut self, topic: String, value: &Value) {
        let payload = Bytes::from(value.to_string());
        if self.last.get(&topic) == Some(&payload) {
            return;
        }
        self.last.insert(topic.clone(), payload.clone());
        self.publisher.publish(Outgoing::retained(topic, payload));
    }

    pub fn publish_topic(&mut self, state: &State, topic: StateTopic) {
        let name = self.topics.topic(state_topic_name(topic));
        match topic {
            StateTopic::Eve => self.retain(name, &views::eve(state)),
            StateTopic::Device => self.retain(name, &views::device(state)),
            StateTopic::Profile => self.retain(name, &views::profile(state)),
            StateTopic::Radio => self.retain(name, &views::radio(state)),
            StateTopic::Network => self.retain(name, &views::network(state)),
            StateTopic::Location => self.retain(name, &views::location(state)),
            StateTopic::Apps => {
                self.retain(name, &views::apps_summary(state));
                let mut now = BTreeSet::new();
                for (name, view) in views::apps(state) {
                    let topic = self.topics.app(&name);
                    now.insert(topic.clone());
                    self.retain(topic, &view);
                }
                // Apps EVE no longer reports: delete their retained topics.
                for gone in self
                    .app_topics
                    .difference(&now)
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    self.last.remove(&gone);
                    self.publisher.publish(Outgoing::clear_retained(gone));
                }
                self.app_topics = now;
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
        );
    }

    pub fn publish_event(&self, event: &crate::state::Event, at_ms: u64) {
        let body = views::event(event, at_ms);
        self.publisher.publish(Outgoing::message(
            self.topics.events(),
            Bytes::from(body.to_string()),
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
            Ok(change) => {
                let state = store.snapshot();
                let at = views::unix_ms_now();
                for event in &change.events {
                    telemetry.publish_event(event, at);
                }
                if change.events.iter().any(|e| e.event.starts_with("store_")) {
                    telemetry.publish_bridge_state(&state);
                }
                for topic in &change.topics {
                    telemetry.publish_topic(&state, *topic);
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

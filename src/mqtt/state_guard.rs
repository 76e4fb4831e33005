//! Our retained state topics stay ours. Until the broker has ACLs any client may publish on
//! `B/profile` and the like (a retained `{"desired":"hacked"}` would stay there for every new
//! subscriber). The gateway subscribes to its own fixed state topics: a message there that is not
//! one of its own recent payloads is a foreign publish, so it is counted, logged, and our retained
//! value published again (an empty one deletes a foreign retained copy where we hold none).
//! Per-app topics (`B/app/<level>`) are not guarded: their echoes would cost one message per app
//! change.

use super::link::Incoming;
use super::topics::{stable_hash, Topics};
use super::{Outgoing, Publisher};
use crate::metrics::Metrics;
use std::sync::atomic::Ordering;

/// The guarded topics, below the base: every fixed retained topic the gateway publishes.
const GUARDED: [&str; 8] = [
    "eve/state",
    "device",
    "apps",
    "profile",
    "radio",
    "network",
    "location",
    "bridge/state",
];

/// The full names of the guarded topics (subscribed beside the command filters).
pub fn filters(topics: &Topics) -> Vec<String> {
    GUARDED.iter().map(|t| topics.topic(t)).collect()
}

/// Registers the guarded topics with the publisher, so it remembers what it recently sent there.
pub fn register(topics: &Topics, publisher: &Publisher) {
    publisher.remember_recent(filters(topics));
}

/// Whether `msg` was on a guarded topic (then it is handled here and is not a command); a
/// foreign publish is counted and our value re-asserted.
pub fn check(msg: &Incoming, topics: &Topics, publisher: &Publisher, metrics: &Metrics) -> bool {
    let Some(relative) = topics.relative(&msg.topic) else {
        return false;
    };
    if !GUARDED.contains(&relative) {
        return false;
    }
    // Our own publish coming back (the gateway is subscribed to what it publishes), possibly
    // overtaken by a newer one of ours.
    if publisher.published_recently(&msg.topic, stable_hash(&msg.payload)) {
        return true;
    }
    let n = metrics
        .mqtt_state_overwrites
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    let ours = publisher.retained_payload(&msg.topic);
    tracing::warn!(
        topic = %msg.topic,
        bytes = msg.payload.len(),
        overwrites_total = n,
        "a client published on a state topic of the gateway; the gateway's retained value is published again (restrict publishing on the base topic with [[mqtt.users]] / an ACL broker)"
    );
    publisher.publish(match ours {
        Some(payload) => Outgoing::retained(msg.topic.clone(), payload),
        None => Outgoing::clear_retained(msg.topic.clone()),
    });
    true
}

//! The subsystems that run beside the MQTT side: telemetry, schedules, the Sparkplug B edge node.

use super::messaging::Mqtt;
use super::Core;
use crate::schedule::{self, Board, Planner, Schedule};
use crate::telemetry::publish::{self as telemetry, Telemetry};
use serde_json::Value;

/// Retained state topics and `B/events`, when any broker runs.
pub(super) fn telemetry(core: &Core, mqtt: &Mqtt, features: Value) {
    if mqtt.embedded.is_none() && !mqtt.external {
        return;
    }
    let telemetry = Telemetry::new(mqtt.topics.clone(), mqtt.publisher.clone());
    core.tasks.output.spawn(telemetry::run(
        telemetry,
        core.store.clone(),
        features,
        core.tasks.output.stop.clone(),
    ));
}

/// The schedules task, when there are schedules; the board the API shows either way.
pub(super) fn schedules(core: &Core, mqtt: &Mqtt, schedules: Vec<Schedule>) -> Board {
    if schedules.is_empty() {
        return Board::fixed(&[]);
    }
    let (board, _task) = schedule::spawn(
        Planner::new(schedules),
        core.store.clone(),
        mqtt.publisher.clone(),
        mqtt.topics.topic("schedules"),
        schedule::system_clock(),
        schedule::POLL_EVERY,
        &core.tasks,
    );
    board
}

/// The Sparkplug B edge node, when enabled: its own MQTT client; NDEATH and DISCONNECT on stop.
pub(super) fn sparkplug(core: &Core) {
    if let Some(broker) = crate::sparkplug::broker(&core.settings) {
        core.tasks.output.spawn(crate::sparkplug::run(
            core.settings.clone(),
            broker,
            core.store.clone(),
            core.tasks.clone(),
        ));
    }
}

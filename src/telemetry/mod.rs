//! Telemetry: JSON views of the state and the task that publishes them to MQTT.

pub mod memory;
pub mod publish;
pub mod views;

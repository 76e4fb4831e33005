//! lps-bridge: an EVE-OS Local Profile Server with an embedded MQTT broker.
//!
//! # Layout
//! - `eve`: the protobuf types of EVE's LPS API, generated from `proto/` (edge only).
//! - `simulator`: an EVE node that polls an LPS the way EVE does (test peer and demo).

pub mod app;
pub mod backoff;
pub mod command;
pub mod config;
pub mod demo;
pub mod descriptors;
pub mod eve;
pub mod logging;
pub mod lps;
pub mod metrics;
pub mod mqtt;
pub mod operator;
pub mod rules;
pub mod simulator;
pub mod state;
pub mod store;
pub mod telemetry;

//! lps-bridge: an EVE-OS Local Profile Server with an embedded MQTT broker.
//!
//! # Layout
//! - `eve`: the protobuf types of EVE's LPS API, generated from `proto/` (edge only): the
//!   `eve-proto` crate (crates/eve-proto), re-exported.
//! - `simulator`: an EVE node that polls an LPS the way EVE does (test peer and demo): the
//!   `eve-sim` crate (crates/eve-sim), re-exported with the default `simulator` feature.

pub mod app;
pub mod backoff;
pub mod commands;
pub mod config;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod descriptors;
pub use eve_proto as eve;
pub mod logging;
pub mod lps;
pub mod metrics;
pub mod mqtt;
pub mod operator;
pub mod rules;
pub mod schedule;
#[cfg(feature = "simulator")]
pub use eve_sim as simulator;
pub mod sparkplug;
pub mod state;
pub mod store;
pub mod telemetry;

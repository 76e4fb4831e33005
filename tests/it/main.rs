//! The integration tests: one binary (`cargo test --test it`), so the gateway's whole dependency
//! graph is linked once instead of once per file. Each file is a module named after what it
//! tests; `common` holds the harness (a real gateway on loopback, MQTT probes, load helpers).
//!
//! Where new tests go: a new file `tests/it/<what_it_tests>.rs` with `use crate::common;`, and a
//! `mod <what_it_tests>;` line below. Tests share this process: no `std::env::set_var`, no global
//! tracing subscriber of their own (`common::install_log_layers` installs the binary's), and no
//! process-wide limit a neighbour could trip over (see `mqtt_fds`).
#![cfg(feature = "simulator")]

mod common;

mod api_docs;
mod app_report_duplicates;
mod cli;
mod command_flow;
mod dashboard_browser;
mod demo;
mod durability;
mod external_broker;
mod external_mosquitto;
mod fuzz_regressions;
mod hostile_input;
mod last_seen;
mod lps_contract;
mod method_not_allowed;
mod module_graph;
mod mqtt_backlog;
mod mqtt_contract;
mod mqtt_door;
mod mqtt_fds;
mod mqtt_links;
mod mqtt_security;
mod mqtt_tls;
mod operator_api;
mod refusals;
mod rules;
mod schedules;
mod shutdown;
mod signal_stream;
mod sparkplug;
mod sparkplug_burst;
mod stalled;
mod state_guard;
mod store_faults;
mod wire_vectors;

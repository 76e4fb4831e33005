//! lps-bridge: an EVE-OS Local Profile Server with an embedded MQTT broker.
//!
//! # Modules
//! - `state`: the pure state machine; `apply(&mut State, Input, Now)` is the only place state
//!   changes, and it returns effects (persist, publish, event, signal).
//! - `store`: the actor that owns the state (one writer), commits to redb per batch, then
//!   answers and broadcasts what changed.
//! - `command`: operator commands whatever way they come in: target, payload grammar,
//!   port configs, reply shape, the one submit path.
//! - `lps`: EVE's HTTP/protobuf API; `lps::convert` is the only place proto and domain meet.
//! - `mqtt`: the embedded broker, the gateway's link into it, an optional plant broker, command
//!   ingress and the publisher.
//! - `telemetry`: JSON views of the state and the task that publishes them as retained topics.
//! - `rules`: bridge rules (plant topics → intents).
//! - `operator`: REST, SSE, `/metrics`, health checks, the dashboard.
//! - `config`: the TOML file as typed data; `app`: the wiring, start and stop order; `tasks`:
//!   which stop stage each spawned task belongs to.
//! - `metrics`, `logging`, `backoff`, `descriptors`: counters, bounded logs, retry delays,
//!   file-descriptor facts.
//! - `schedule`: `[[schedules]]`, cron entries that fire intents; `sparkplug`: the Sparkplug B
//!   edge node (births, data, NCMD/DCMD writes as intents).
//! - `eve`: the protobuf types generated from `proto/` (the `eve-proto` crate, crates/eve-proto);
//!   `simulator` (the `eve-sim` crate, crates/eve-sim, default feature `simulator`) and `demo`: an
//!   EVE node that polls like EVE does (test peer and demo).
//!
//! # MQTT command → EVE
//! `B/app/vision/set` reaches `mqtt::ingress`, which maps the topic to a `command::Target`,
//! `command::parse`s the payload into an `Intent` and `command::submit`s it. The store actor
//! `apply`s it (a new `Command` in the log), commits, and only then the reply goes to
//! `B/response/app/vision/set`. EVE's next poll (`POST /api/v1/appinfo`) reaches `lps::handlers`,
//! `apply` answers with the open commands, `lps::convert` encodes them as protobuf. REST
//! (`POST /api/...`) and rules take the same path from `command::parse` on.
//!
//! # EVE report → MQTT
//! EVE posts a report (`/api/v1/appinfo`, `/devinfo`, …); `lps::handlers` decodes it,
//! `lps::convert` turns it into that endpoint's `state::poll` request (each kind of input has a
//! reply type of its own), the store `apply`s it and commits. The actor
//! publishes the new snapshot and a `Change` (events, state topics); `telemetry::publish` renders
//! the changed views to retained `B/...` topics and events to `B/events` through
//! `mqtt::Publisher`; the operator's SSE stream reads the same `Change`.
//!
//! # Words
//! - *command message*: what an operator sends (MQTT `…/set`, `POST /api/…`, a rule's action).
//! - *intent*: a parsed command message, the input `apply` takes from operators.
//! - *command* (`state::Command`): an entry in the store's log with an id and a lifecycle
//!   (accepted → delivered → completed).
//! - *EVE command*: the protobuf EVE gets in an LPS reply (`AppCommand`, `LocalDevCmd`).
//! - *subcommand*: the CLI verb (`run`, `demo`, `check-config`, …).
//! - *event*: a line on `B/events` and the SSE stream.

pub mod app;
pub mod backoff;
pub mod command;
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
pub mod tasks;
pub mod telemetry;

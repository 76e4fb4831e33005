//! What `apply` asks the world to do. The store actor carries these out, in this order:
//! persist, reply, then publish (so nothing is acknowledged before it is durable).

use super::model::CommandId;
use serde::Serialize;
use serde_json::Value;

/// A piece of durable state that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// Desired state, last timestamp, next id.
    Meta,
    /// A command record (deleted when no longer in the state).
    Command(CommandId),
    Report(ReportKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReportKind {
    Apps,
    Device,
    Radio,
    Boot,
    Network,
    Location,
}

impl ReportKind {
    pub const ALL: [ReportKind; 6] = [
        ReportKind::Apps,
        ReportKind::Device,
        ReportKind::Radio,
        ReportKind::Boot,
        ReportKind::Network,
        ReportKind::Location,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Apps => "apps",
            ReportKind::Device => "device",
            ReportKind::Radio => "radio",
            ReportKind::Boot => "boot",
            ReportKind::Network => "network",
            ReportKind::Location => "location",
        }
    }
}

/// A retained state topic whose content may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateTopic {
    Eve,
    Device,
    Apps,
    Profile,
    Radio,
    Network,
    Location,
}

impl StateTopic {
    pub const ALL: [StateTopic; 7] = [
        StateTopic::Eve,
        StateTopic::Device,
        StateTopic::Apps,
        StateTopic::Profile,
        StateTopic::Radio,
        StateTopic::Network,
        StateTopic::Location,
    ];
}

/// The LPS endpoints EVE can be told to poll now (`ConfigEndpoint` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Endpoint {
    LocalProfile = 1,
    Radio = 2,
    AppInfo = 3,
    AppBootInfo = 4,
    DevInfo = 5,
    Network = 6,
}

/// Something that happened, for `B/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event: &'static str,
    #[serde(flatten)]
    pub data: serde_json::Map<String, Value>,
}

impl Event {
    pub fn new(event: &'static str, data: Value) -> Event {
        let data = match data {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                let mut map = serde_json::Map::new();
                map.insert("value".into(), other);
                map
            }
        };
        Event { event, data }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Persist(Key),
    Event(Event),
    Publish(StateTopic),
    /// EVE should poll this endpoint now.
    Signal(Endpoint),
}

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

/// The LPS endpoints; `Effect::Signal` names the ones EVE can be told to poll now.
pub use eve_proto::Endpoint;

/// The name of an event on `B/events` and the SSE stream (the `event` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventName {
    CommandAccepted,
    CommandDelivered,
    CommandStalled,
    CommandCompleted,
    CommandSuperseded,
    CommandCancelled,
    ProfileSet,
    ProfileDelivered,
    ProfileSettled,
    ProfileUnsettled,
    BootOrderSet,
    BootOrderApplied,
    RadioSet,
    RadioApplied,
    RadioFailed,
    NetworkSet,
    NetworkApplied,
    NetworkRejected,
    EveOnline,
    EveOffline,
    StoreFailed,
    StoreRecovered,
    MqttMessagesLost,
    RuleFired,
    RuleFailed,
    RuleHoldStarted,
    RuleHoldCancelled,
    ScheduleFired,
    ScheduleFailed,
    SparkplugWriteRefused,
}

impl EventName {
    /// Every event the gateway emits (for the API documents' tests).
    pub const ALL: &'static [EventName] = &[
        EventName::CommandAccepted,
        EventName::CommandDelivered,
        EventName::CommandStalled,
        EventName::CommandCompleted,
        EventName::CommandSuperseded,
        EventName::CommandCancelled,
        EventName::ProfileSet,
        EventName::ProfileDelivered,
        EventName::ProfileSettled,
        EventName::ProfileUnsettled,
        EventName::BootOrderSet,
        EventName::BootOrderApplied,
        EventName::RadioSet,
        EventName::RadioApplied,
        EventName::RadioFailed,
        EventName::NetworkSet,
        EventName::NetworkApplied,
        EventName::NetworkRejected,
        EventName::EveOnline,
        EventName::EveOffline,
        EventName::StoreFailed,
        EventName::StoreRecovered,
        EventName::MqttMessagesLost,
        EventName::RuleFired,
        EventName::RuleFailed,
        EventName::RuleHoldStarted,
        EventName::RuleHoldCancelled,
        EventName::ScheduleFired,
        EventName::ScheduleFailed,
        EventName::SparkplugWriteRefused,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::CommandAccepted => "command_accepted",
            EventName::CommandDelivered => "command_delivered",
            EventName::CommandStalled => "command_stalled",
            EventName::CommandCompleted => "command_completed",
            EventName::CommandSuperseded => "command_superseded",
            EventName::CommandCancelled => "command_cancelled",
            EventName::ProfileSet => "profile_set",
            EventName::ProfileDelivered => "profile_delivered",
            EventName::ProfileSettled => "profile_settled",
            EventName::ProfileUnsettled => "profile_unsettled",
            EventName::BootOrderSet => "boot_order_set",
            EventName::BootOrderApplied => "boot_order_applied",
            EventName::RadioSet => "radio_set",
            EventName::RadioApplied => "radio_applied",
            EventName::RadioFailed => "radio_failed",
            EventName::NetworkSet => "network_set",
            EventName::NetworkApplied => "network_applied",
            EventName::NetworkRejected => "network_rejected",
            EventName::EveOnline => "eve_online",
            EventName::EveOffline => "eve_offline",
            EventName::StoreFailed => "store_failed",
            EventName::StoreRecovered => "store_recovered",
            EventName::MqttMessagesLost => "mqtt_messages_lost",
            EventName::RuleFired => "rule_fired",
            EventName::RuleFailed => "rule_failed",
            EventName::RuleHoldStarted => "rule_hold_started",
            EventName::RuleHoldCancelled => "rule_hold_cancelled",
            EventName::ScheduleFired => "schedule_fired",
            EventName::ScheduleFailed => "schedule_failed",
            EventName::SparkplugWriteRefused => "sparkplug_write_refused",
        }
    }

    /// The store's own events (`store_failed`, `store_recovered`).
    pub fn is_store(self) -> bool {
        matches!(self, EventName::StoreFailed | EventName::StoreRecovered)
    }
}

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Something that happened, for `B/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event: EventName,
    #[serde(flatten)]
    pub data: serde_json::Map<String, Value>,
}

impl Event {
    pub fn new(event: EventName, data: Value) -> Event {
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

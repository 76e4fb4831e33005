//! Who sent a command. Its wire name is kept with the command in the store's log and shown as
//! `source` in replies, events and `/api/commands`.

/// The way a command came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `B/…/set` topic (embedded or plant broker).
    Mqtt,
    /// `POST /api/…`.
    Rest,
    /// A bridge rule, by name.
    Rule(String),
    /// A `[[schedules]]` entry, by name.
    Schedule(String),
    /// A Sparkplug B NCMD / DCMD metric write.
    Sparkplug,
}

impl Source {
    /// One of each kind (a rule's and a schedule's with an empty name), for the docs' tests.
    pub const ALL: &'static [Source] = &[
        Source::Mqtt,
        Source::Rest,
        Source::Rule(String::new()),
        Source::Schedule(String::new()),
        Source::Sparkplug,
    ];
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Mqtt => f.write_str("mqtt"),
            Source::Rest => f.write_str("rest"),
            Source::Rule(name) => write!(f, "rule:{name}"),
            Source::Schedule(name) => write!(f, "schedule:{name}"),
            Source::Sparkplug => f.write_str("sparkplug"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names() {
        assert_eq!(Source::Mqtt.to_string(), "mqtt");
        assert_eq!(Source::Rest.to_string(), "rest");
        assert_eq!(
            Source::Rule("ups poweroff".into()).to_string(),
            "rule:ups poweroff"
        );
        assert_eq!(
            Source::Schedule("night shift".into()).to_string(),
            "schedule:night shift"
        );
        assert_eq!(Source::Sparkplug.to_string(), "sparkplug");
    }
}

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
}

impl Source {
    /// Every kind by its wire name (a rule's carries the rule's name after `rule:`).
    pub const KINDS: &'static [&'static str] = &["mqtt", "rest", "rule:<name>"];
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Mqtt => f.write_str("mqtt"),
            Source::Rest => f.write_str("rest"),
            Source::Rule(name) => write!(f, "rule:{name}"),
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
    }
}

//! The command log as `State` holds it: shared, so that the store's snapshot after every commit
//! costs a reference count instead of a copy of every command.
//!
//! The map sits behind an `Arc` and each command behind its own: a snapshot shares both; the
//! first change after a snapshot copies the map's nodes (not the commands), and a changed
//! command is copied alone.

use super::model::{Command, CommandId};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commands {
    map: Arc<BTreeMap<CommandId, Arc<Command>>>,
}

impl Commands {
    pub fn get(&self, id: &CommandId) -> Option<&Command> {
        self.map.get(id).map(|c| &**c)
    }

    /// The command to change; copies it (and the map's nodes) only if a snapshot shares them.
    pub fn get_mut(&mut self, id: &CommandId) -> Option<&mut Command> {
        if !self.map.contains_key(id) {
            return None;
        }
        Arc::make_mut(&mut self.map).get_mut(id).map(Arc::make_mut)
    }

    pub fn insert(&mut self, id: CommandId, cmd: Command) {
        Arc::make_mut(&mut self.map).insert(id, Arc::new(cmd));
    }

    pub fn remove(&mut self, id: &CommandId) {
        if self.map.contains_key(id) {
            Arc::make_mut(&mut self.map).remove(id);
        }
    }

    pub fn contains_key(&self, id: &CommandId) -> bool {
        self.map.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &CommandId> + '_ {
        self.map.keys()
    }

    /// Oldest (lowest id) first.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Command> + '_ {
        self.map.values().map(|c| &**c)
    }
}

impl std::ops::Index<&CommandId> for Commands {
    type Output = Command;

    fn index(&self, id: &CommandId) -> &Command {
        &self.map[id]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{CommandKind, DeviceAction, Lifecycle};

    fn cmd(id: CommandId) -> Command {
        Command {
            id,
            timestamp: id,
            kind: CommandKind::Device {
                action: DeviceAction::Reboot,
            },
            lifecycle: Lifecycle::Accepted,
            source: "t".into(),
            accepted_at_ms: 0,
            delivered_at_ms: None,
            finished_at_ms: None,
            deliveries: 0,
            stalled_reason: None,
        }
    }

    #[test]
    fn a_snapshot_keeps_what_it_saw_while_the_owner_changes() {
        let mut live = Commands::default();
        live.insert(1, cmd(1));
        live.insert(2, cmd(2));
        let snapshot = live.clone();
        live.get_mut(&1).unwrap().lifecycle = Lifecycle::Completed;
        live.remove(&2);
        live.insert(3, cmd(3));
        assert_eq!(snapshot[&1].lifecycle, Lifecycle::Accepted);
        assert_eq!(snapshot.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(live[&1].lifecycle, Lifecycle::Completed);
        assert_eq!(live.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert!(live.get_mut(&2).is_none());
    }

    #[test]
    fn an_unchanged_command_stays_shared_with_the_snapshot() {
        let mut live = Commands::default();
        live.insert(1, cmd(1));
        live.insert(2, cmd(2));
        let snapshot = live.clone();
        live.get_mut(&2).unwrap().deliveries = 1;
        assert!(Arc::ptr_eq(&live.map[&1], &snapshot.map[&1]));
        assert!(!Arc::ptr_eq(&live.map[&2], &snapshot.map[&2]));
    }
}

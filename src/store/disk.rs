//! The data directory: one redb database (crash-safe, fsync on every commit) holding the desired
//! state and counters, the command log and the last report of each kind.

use crate::state::{Command, Key, Limits, Meta, ReportKind, State};
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const COMMANDS: TableDefinition<u64, &[u8]> = TableDefinition::new("commands");
const REPORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("reports");
const SCHEMA_KEY: &str = "schema";
const META_KEY: &str = "meta";
const SCHEMA_VERSION: &[u8] = b"1";
pub const DB_FILE: &str = "lps-bridge.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("cannot open store {0}: {1}")]
    Open(PathBuf, String),
    #[error("store {0} has schema version {1}, this build reads version 1")]
    Schema(PathBuf, String),
    #[error("store read failed: {0}")]
    Read(String),
    #[error("store write failed: {0}")]
    Write(String),
    #[error("store record {0} is corrupt: {1}")]
    Corrupt(String, String),
}

fn read_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Read(e.to_string())
}

fn write_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Write(e.to_string())
}

pub struct Disk {
    db: Database,
}

impl Disk {
    /// Opens (or creates) the store in `dir`. Fails if another process holds it.
    pub fn open(dir: &Path) -> Result<Disk, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir(dir.to_path_buf(), e))?;
        let path = dir.join(DB_FILE);
        let db =
            Database::create(&path).map_err(|e| StoreError::Open(path.clone(), e.to_string()))?;
        let disk = Disk { db };
        disk.init(&path)?;
        Ok(disk)
    }

    fn init(&self, path: &Path) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            let existing = meta
                .get(SCHEMA_KEY)
                .map_err(read_err)?
                .map(|v| v.value().to_vec());
            match existing {
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(write_err)?;
                }
                Some(v) if v == SCHEMA_VERSION => {}
                Some(v) => {
                    return Err(StoreError::Schema(
                        path.to_path_buf(),
                        String::from_utf8_lossy(&v).into(),
                    ));
                }
            }
            txn.open_table(COMMANDS).map_err(write_err)?;
            txn.open_table(REPORTS).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    /// Reads the whole state back.
    pub fn load(&self, limits: Limits) -> Result<State, StoreError> {
        let mut state = State::new(limits);
        let txn = self.db.begin_read().map_err(read_err)?;
        let meta = txn.open_table(META).map_err(read_err)?;
        if let Some(bytes) = meta.get(META_KEY).map_err(read_err)? {
            state.meta = serde_json::from_slice::<Meta>(bytes.value())
                .map_err(|e| StoreError::Corrupt("meta".into(), e.to_string()))?;
        }
        let commands = txn.open_table(COMMANDS).map_err(read_err)?;
        for row in commands.iter().map_err(read_err)? {
            let (id, bytes) = row.map_err(read_err)?;
            let cmd: Command = serde_json::from_slice(bytes.value()).map_err(|e| {
                StoreError::Corrupt(format!("command {}", id.value()), e.to_string())
            })?;
            state.commands.insert(cmd.id, cmd);
        }
        let reports = txn.open_table(REPORTS).map_err(read_err)?;
        for kind in ReportKind::ALL {
            if let Some(bytes) = reports.get(kind.name()).map_err(read_err)? {
                super::reports::restore(&mut state.reports, kind, bytes.value())
                    .map_err(|e| StoreError::Corrupt(format!("report {}", kind.name()), e))?;
            }
        }
        // Never hand out an id or timestamp that was used before, whatever the meta says.
        if let Some(max) = state.commands.keys().next_back() {
            state.meta.next_id = state.meta.next_id.max(max + 1);
        }
        if let Some(max) = state.commands.values().map(|c| c.timestamp).max() {
            state.meta.last_timestamp = state.meta.last_timestamp.max(max);
        }
        Ok(state)
    }

    /// Writes the changed keys in one durable transaction.
    pub fn write(&self, keys: &BTreeSet<Key>, state: &State) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(write_err)?;
        {
            let mut meta = txn.open_table(META).map_err(write_err)?;
            let mut commands = txn.open_table(COMMANDS).map_err(write_err)?;
            let mut reports = txn.open_table(REPORTS).map_err(write_err)?;
            for key in keys {
                match key {
                    Key::Meta => {
                        let bytes = serde_json::to_vec(&state.meta).map_err(write_err)?;
                        meta.insert(META_KEY, bytes.as_slice()).map_err(write_err)?;
                    }
                    Key::Command(id) => match state.commands.get(id) {
                        Some(cmd) => {
                            let bytes = serde_json::to_vec(cmd).map_err(write_err)?;
                            commands.insert(*id, bytes.as_slice()).map_err(write_err)?;
                        }
                        None => {
                            commands.remove(*id).map_err(write_err)?;
                        }
                    },
                    Key::Report(kind) => {
                        let bytes =
                            super::reports::save(&state.reports, *kind).map_err(write_err)?;
                        reports
                            .insert(kind.name(), bytes.as_slice())
                            .map_err(write_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(write_err)
    }
}

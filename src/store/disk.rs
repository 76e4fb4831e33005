//! The data directory: one redb database (crash-safe, fsync on every commit) holding the desired
//! state and counters, the command log and the last report of each kind.
//!
//! Opening for writing first proves the directory takes a write (a probe file, synced and
//! removed), since redb may reuse free pages inside its file on a full disk and so look healthy
//! until the next commit grows it. When that fails the store is opened as a read-only copy:
//! the file's bytes, read under redb's lock, in memory (redb 2 has no read-only mode, and its
//! open writes to the file).

use crate::state::{Command, Key, Limits, Meta, ReportKind, State};
use redb::backends::{FileBackend, InMemoryBackend};
use redb::{Database, ReadableTable, StorageBackend, TableDefinition};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const COMMANDS: TableDefinition<u64, &[u8]> = TableDefinition::new("commands");
const REPORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("reports");
const SCHEMA_KEY: &str = "schema";
const META_KEY: &str = "meta";
const SCHEMA_VERSION: &[u8] = b"1";
pub const DB_FILE: &str = "lps-bridge.redb";
const PROBE_FILE: &str = "lps-bridge.probe";
/// Room the probe needs before the store counts as writable: a few commits' worth, so a nearly
/// full disk does not flap between writable and read-only on every command.
const PROBE_BYTES: usize = 512 * 1024;

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
    /// The file system refused a write; `fault::describe_io` turns it into advice.
    #[error("store write failed: {0}")]
    Io(std::io::Error),
    #[error("store record {0} is corrupt: {1}")]
    Corrupt(String, String),
    /// Writes are refused until the store heals; the text says why and what to do.
    #[error("the store cannot write: {0}")]
    ReadOnly(String),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

impl StoreError {
    /// What the operator reads while the store is read-only because of this error.
    pub fn fault_reason(&self, dir: &Path) -> String {
        match self {
            StoreError::Io(err) => super::fault::describe_io(err, dir),
            StoreError::ReadOnly(reason) => reason.clone(),
            other => format!("{other}; check the disk holding {}", dir.display()),
        }
    }
}

fn read_err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(io) => StoreError::Io(io),
        other => StoreError::Read(other.to_string()),
    }
}

fn write_err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Io(io) => StoreError::Io(io),
        other => StoreError::Write(other.to_string()),
    }
}

fn encode_err(e: serde_json::Error) -> StoreError {
    StoreError::Write(format!("cannot encode a record: {e}"))
}

pub struct Disk {
    db: Database,
    /// Holds redb's lock on the file while `db` is a read-only copy in memory.
    _lock: Option<FileBackend>,
}

/// How the store came up.
pub enum Opened {
    Writable(Disk),
    /// Serving what is on disk; the error says why writes are refused.
    ReadOnly(Option<Disk>, StoreError),
}

impl Disk {
    /// Opens the store in `dir` for writing, or else as a read-only copy of what is on disk.
    /// Fails only if nothing can be read (or another process holds the store).
    pub fn open(dir: &Path) -> Result<Opened, StoreError> {
        let write_error = match Disk::open_writable(dir) {
            Ok(disk) => return Ok(Opened::Writable(disk)),
            Err(err @ (StoreError::Schema(..) | StoreError::Corrupt(..))) => return Err(err),
            Err(StoreError::Open(path, why)) if why.contains("already open") => {
                return Err(StoreError::Open(path, why))
            }
            Err(err) => err,
        };
        if !dir.is_dir() {
            return Err(write_error);
        }
        let disk = Disk::open_copy(dir).map_err(|read| {
            StoreError::Open(
                dir.join(DB_FILE),
                format!("{write_error}; and reading it failed too: {read}"),
            )
        })?;
        Ok(Opened::ReadOnly(disk, write_error))
    }

    /// Opens (or creates) the store for writing once the directory has taken a probe write.
    pub fn open_writable(dir: &Path) -> Result<Disk, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir(dir.to_path_buf(), e))?;
        probe(dir).map_err(StoreError::Io)?;
        let path = dir.join(DB_FILE);
        let db = Database::create(&path).map_err(|e| match e.into() {
            redb::Error::Io(io) => StoreError::Io(io),
            other => StoreError::Open(path.clone(), other.to_string()),
        })?;
        let disk = Disk { db, _lock: None };
        disk.init(&path)?;
        Ok(disk)
    }

    /// The store's bytes in memory, read under redb's lock; `None` if there is no store yet.
    fn open_copy(dir: &Path) -> Result<Option<Disk>, StoreError> {
        let path = dir.join(DB_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Open(path, e.to_string())),
        };
        let open_err = |e: String| StoreError::Open(path.clone(), e);
        let lock = FileBackend::new(file).map_err(|e| open_err(e.to_string()))?;
        let len = lock.len().map_err(|e| open_err(e.to_string()))?;
        if len == 0 {
            return Ok(None);
        }
        let bytes = lock
            .read(0, len as usize)
            .map_err(|e| open_err(e.to_string()))?;
        let memory = InMemoryBackend::new();
        memory
            .set_len(len)
            .and_then(|()| memory.write(0, &bytes))
            .map_err(|e| open_err(e.to_string()))?;
        let db = Database::builder()
            .create_with_backend(memory)
            .map_err(|e| open_err(e.to_string()))?;
        let disk = Disk {
            db,
            _lock: Some(lock),
        };
        disk.check_schema(&path)?;
        Ok(Some(disk))
    }

    fn check_schema(&self, path: &Path) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(read_err(e)),
        };
        match meta.get(SCHEMA_KEY).map_err(read_err)? {
            Some(v) if v.value() != SCHEMA_VERSION => Err(StoreError::Schema(
                path.to_path_buf(),
                String::from_utf8_lossy(v.value()).into(),
            )),
            _ => Ok(()),
        }
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

    /// Reads the whole state back (a table not there yet reads as empty).
    pub fn load(&self, limits: Limits) -> Result<State, StoreError> {
        let mut state = State::new(limits);
        let txn = self.db.begin_read().map_err(read_err)?;
        if let Some(meta) = optional(txn.open_table(META))? {
            if let Some(bytes) = meta.get(META_KEY).map_err(read_err)? {
                state.meta = serde_json::from_slice::<Meta>(bytes.value())
                    .map_err(|e| StoreError::Corrupt("meta".into(), e.to_string()))?;
            }
        }
        if let Some(commands) = optional(txn.open_table(COMMANDS))? {
            for row in commands.iter().map_err(read_err)? {
                let (id, bytes) = row.map_err(read_err)?;
                let cmd: Command = serde_json::from_slice(bytes.value()).map_err(|e| {
                    StoreError::Corrupt(format!("command {}", id.value()), e.to_string())
                })?;
                state.restore_command(cmd);
            }
        }
        if let Some(reports) = optional(txn.open_table(REPORTS))? {
            for kind in ReportKind::ALL {
                if let Some(bytes) = reports.get(kind.name()).map_err(read_err)? {
                    super::reports::restore(&mut state.reports, kind, bytes.value())
                        .map_err(|e| StoreError::Corrupt(format!("report {}", kind.name()), e))?;
                }
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
                        let bytes = serde_json::to_vec(&state.meta).map_err(encode_err)?;
                        meta.insert(META_KEY, bytes.as_slice()).map_err(write_err)?;
                    }
                    Key::Command(id) => match state.commands.get(id) {
                        Some(cmd) => {
                            let bytes = serde_json::to_vec(cmd).map_err(encode_err)?;
                            commands.insert(*id, bytes.as_slice()).map_err(write_err)?;
                        }
                        None => {
                            commands.remove(*id).map_err(write_err)?;
                        }
                    },
                    Key::Report(kind) => {
                        let bytes =
                            super::reports::save(&state.reports, *kind).map_err(encode_err)?;
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

fn optional<T>(table: Result<T, redb::TableError>) -> Result<Option<T>, StoreError> {
    match table {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(read_err(e)),
    }
}

/// Writes, syncs and removes a file of `PROBE_BYTES` in `dir`: proves there is room and leave
/// to write before the store is opened for writing.
fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let removed = std::fs::remove_file(&path);
    result?;
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

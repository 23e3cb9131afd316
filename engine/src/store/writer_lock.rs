//! One ingestion at a time per table, across processes: an advisory lock (`flock`) on
//! `<db>/<table>.lock` (for a database on an object store, in its local folder: there it
//! serialises this machine's writers only). The kernel releases it when the holder exits, killed or not, so a
//! crash never leaves a stale lock behind. With it held, a job may append the rows of
//! files the table did not hold when the job started: no other Lancet job can have
//! written them since.

use crate::error::{Error, Result};
use crate::store::ChunkTable;
use std::fs::File;
use std::io::{Read, Seek, Write};

/// Held while a job writes a table; released on drop.
#[derive(Debug)]
pub struct WriterLock {
    _file: Option<File>,
}

impl ChunkTable {
    /// Takes the table's writer lock, or fails at once with [`Error::Busy`] naming the
    /// process that holds it, then moves this handle to the table's latest version: what
    /// the holder reads next (file hashes, stored vectors) includes every commit made
    /// before the lock, by any process, however old the handle. Searches, SQL and
    /// `optimize` do not take it: Lance's commits already keep them consistent beside a
    /// writer.
    pub async fn lock_for_writing(&self) -> Result<WriterLock> {
        let lock = self.take_writer_lock().await?;
        self.refresh().await?;
        Ok(lock)
    }

    async fn take_writer_lock(&self) -> Result<WriterLock> {
        let Some(db) = self.database_dir() else {
            return Ok(WriterLock { _file: None });
        };
        let path = lock_path(db, self.name());
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let (mut file, locked) = open_and_lock(&path).await?;
        if !locked {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(Error::Busy {
                table: self.name().to_string(),
                holder: match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("process {pid}"),
                },
            });
        }
        // The holder's pid, for the message of whoever comes next.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(WriterLock { _file: Some(file) })
    }
}

/// How long a busy lock is tried again before it counts as held. A `flock` belongs to
/// the open file, which a child forked by any thread of the holder's process shares until
/// it executes its program: a lock just released (after creating the table, say) can read
/// as held for that moment.
const FORK_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
const FORK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// The writer lock file of table `name` in database folder `db`.
pub(super) fn lock_path(db: &std::path::Path, name: &str) -> std::path::PathBuf {
    db.join(format!("{name}.lock"))
}

/// Opens (creating) the lock file at `path` and locks it, trying again for
/// [`FORK_GRACE`] while it is busy; returns whether it got the lock, which lasts as long
/// as the returned file is open.
pub(super) async fn open_and_lock(path: &std::path::Path) -> Result<(File, bool)> {
    let mut waited = std::time::Duration::ZERO;
    loop {
        let (file, locked) = open_and_try_lock(path)?;
        if locked || waited >= FORK_GRACE {
            return Ok((file, locked));
        }
        drop(file);
        tokio::time::sleep(FORK_RETRY).await;
        waited += FORK_RETRY;
    }
}

/// Opens (creating) the lock file at `path` and tries to lock it once.
fn open_and_try_lock(path: &std::path::Path) -> Result<(File, bool)> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    // An object-store database's local folder may not exist yet.
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    let locked = try_lock_exclusive(&file).map_err(io)?;
    Ok((file, locked))
}

/// `flock(LOCK_EX | LOCK_NB)` on Unix, `LockFileEx` on Windows.
fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

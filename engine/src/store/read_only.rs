//! A cheap check that the folders a write job touches can be written, so that a job on
//! a read-only database stops before it starts, with a message that says so, instead of
//! failing midway inside Lance's writer with an object-store error.

use crate::error::{Error, Result};
use crate::store::ChunkTable;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

impl ChunkTable {
    /// Fails with [`Error::ReadOnly`] when the database folder or the table's folder
    /// cannot be written. Reading a read-only database needs no write: searches, SQL and
    /// status work there. A table not opened from a folder is not checked.
    pub fn check_writable(&self) -> Result<()> {
        let Some(db) = self.database_dir() else {
            return Ok(());
        };
        check_folder(db)?;
        let table_dir = db.join(format!("{}.lance", self.name()));
        if table_dir.is_dir() {
            check_folder(&table_dir)?;
        }
        Ok(())
    }
}

/// Creates and removes a uniquely named empty file in `dir`.
pub(crate) fn check_folder(dir: &Path) -> Result<()> {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let probe = dir.join(format!(
        ".lancet-write-check-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(source)
            if matches!(
                source.kind(),
                ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Err(Error::ReadOnly {
                path: dir.display().to_string(),
                source,
            })
        }
        Err(source) => Err(Error::Io {
            path: dir.display().to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_folder_passes_and_keeps_no_probe() {
        let dir = tempfile::tempdir().unwrap();
        check_folder(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_folder_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = check_folder(&missing).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}

//! Walking the cache: its size by model, and pruning it to a bound.

use super::io_error;
use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The file beside a model's entries that says which model they belong to.
pub(super) const DESCRIPTION: &str = "model.json";
/// The file whose modification time says when the cache was last held to its bound.
pub(super) const LAST_PRUNED: &str = ".last-pruned";
/// A temporary file older than this is a killed writer's leftover.
const ABANDONED: Duration = Duration::from_secs(3600);

/// One model's share of the cache.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CacheModelStats {
    /// Folder name of the model's namespace.
    pub namespace: String,
    /// What `model.json` says about the model (empty if it is missing or unreadable).
    pub model: serde_json::Value,
    /// Entries (one embedded text each).
    pub entries: u64,
    /// Bytes of those entries.
    pub bytes: u64,
}

/// The whole cache.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CacheStats {
    /// Its folder.
    pub root: PathBuf,
    /// By model.
    pub models: Vec<CacheModelStats>,
    /// Entries, all models.
    pub entries: u64,
    /// Bytes, all models.
    pub bytes: u64,
}

/// What a pruning removed and left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Entries removed.
    pub removed: u64,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Entries left.
    pub kept: u64,
    /// Their bytes.
    pub bytes_kept: u64,
}

struct Entry {
    path: PathBuf,
    bytes: u64,
    used: SystemTime,
}

/// The namespace folders under `root` (none if it does not exist yet).
fn namespaces(root: &Path) -> Result<Vec<PathBuf>> {
    let listing = match std::fs::read_dir(root) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error(root, source)),
    };
    let mut out: Vec<PathBuf> = listing
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// The entries of one namespace; abandoned temporary files are removed on the way.
fn entries(namespace: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(namespace) else {
        return out;
    };
    for shard in shards.flatten() {
        if !shard.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files.flatten() {
            let Ok(meta) = file.metadata() else { continue };
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if file.file_name().to_string_lossy().starts_with('.') {
                if used.elapsed().is_ok_and(|age| age > ABANDONED) {
                    let _ = std::fs::remove_file(file.path());
                }
                continue;
            }
            out.push(Entry {
                path: file.path(),
                bytes: meta.len(),
                used,
            });
        }
    }
    out
}

pub(super) fn stats(root: &Path) -> Result<CacheStats> {
    let mut stats = CacheStats {
        root: root.to_path_buf(),
        ..CacheStats::default()
    };
    for namespace in namespaces(root)? {
        let found = entries(&namespace);
        let model = std::fs::read_to_string(namespace.join(DESCRIPTION))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let share = CacheModelStats {
            namespace: namespace
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            model,
            entries: found.len() as u64,
            bytes: found.iter().map(|e| e.bytes).sum(),
        };
        stats.entries += share.entries;
        stats.bytes += share.bytes;
        stats.models.push(share);
    }
    Ok(stats)
}

pub(super) fn prune(
    root: &Path,
    max_bytes: Option<u64>,
    older_than: Option<Duration>,
) -> Result<PruneReport> {
    let mut all: Vec<Entry> = namespaces(root)?.iter().flat_map(|n| entries(n)).collect();
    // Oldest use first.
    all.sort_by_key(|e| e.used);
    let mut total: u64 = all.iter().map(|e| e.bytes).sum();
    let mut report = PruneReport::default();
    for entry in &all {
        let stale =
            older_than.is_some_and(|limit| entry.used.elapsed().is_ok_and(|age| age > limit));
        let over = max_bytes.is_some_and(|max| total > max);
        if !(stale || over) {
            report.kept += 1;
            report.bytes_kept += entry.bytes;
            continue;
        }
        // Another process may have removed it first: it is gone either way.
        match std::fs::remove_file(&entry.path) {
            Ok(()) => {
                report.removed += 1;
                report.bytes_removed += entry.bytes;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error(&entry.path, source)),
        }
        total = total.saturating_sub(entry.bytes);
    }
    Ok(report)
}

//! The machine-wide embedding cache: vectors by model and exact embedded text, shared by
//! every database on the machine, so that a second worktree or clone of an indexed
//! repository embeds nothing.
//!
//! One file per entry under `ROOT/MODEL/xx/HASH` (the layout of ccache and pip's cache):
//! a write goes to a temporary file renamed into place, so a reader sees a whole entry or
//! none, whatever process wrote it and whenever it was killed; each entry carries a
//! checksum of its key and vector, so a damaged one is a miss (and is removed), never a
//! wrong vector. Hits refresh the entry's modification time, which orders the pruning
//! (least recently used first).

mod entry;
mod prune;

pub use prune::{CacheModelStats, CacheStats, PruneReport};

use crate::error::{Error, Result};
use lancet_schemas::ModelIdentity;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Environment variable naming the cache folder (else `$XDG_CACHE_HOME/lancet/embeddings`
/// or `~/.cache/lancet/embeddings`).
pub const CACHE_DIR_ENV: &str = "LANCET_CACHE_DIR";

/// Default bound of the cache's size on disk.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// How often a writing process walks the cache to hold it to its bound.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Entries a process may add before it checks the bound again, whenever it last did.
const PRUNE_AFTER_WRITES: u64 = 20_000;

/// The machine-wide embedding cache (see the module docs).
#[derive(Debug)]
pub struct EmbeddingCache {
    root: PathBuf,
    max_bytes: u64,
    /// Entries written since this process last held the cache to its bound.
    written: AtomicU64,
    /// Names this process's temporary files apart.
    sequence: AtomicU64,
}

/// Where one model's entries live, and how their keys are made.
#[derive(Debug, Clone)]
pub struct CacheNamespace {
    folder: PathBuf,
    key: blake3::Hash,
    dim: usize,
}

/// The folder the cache uses when none is given: [`CACHE_DIR_ENV`], else the user's
/// cache folder.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    Some(crate::user_cache_home()?.join("lancet").join("embeddings"))
}

/// The folder where q8 weights are packed once per model and mapped at later loads
/// (`EncoderOptions::weights_cache`): beside the embedding cache in the user's cache
/// folder.
pub fn default_weights_dir() -> Option<PathBuf> {
    Some(crate::user_cache_home()?.join("lancet").join("weights"))
}

impl EmbeddingCache {
    /// The cache in `root` (created at the first write), bounded to `max_bytes`.
    pub fn new(root: impl Into<PathBuf>, max_bytes: u64) -> Self {
        EmbeddingCache {
            root: root.into(),
            max_bytes,
            written: AtomicU64::new(0),
            sequence: AtomicU64::new(0),
        }
    }

    /// The cache's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The bound on its size.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The namespace of vectors made by `model` with `numerics` (device, precision and
    /// length limit: whatever besides the weights changes a vector). Its description is
    /// written beside the entries for `lancet cache` to show.
    pub fn namespace(&self, model: &ModelIdentity, numerics: &str) -> CacheNamespace {
        let key = blake3::hash(
            format!(
                "{}\0{}\0{}\0{}\0{numerics}",
                model.revision,
                model.pooling.as_str(),
                model.prompt_set,
                model.dim
            )
            .as_bytes(),
        );
        let name = key.to_hex()[..16].to_string();
        CacheNamespace {
            folder: self.root.join(name),
            key,
            dim: model.dim,
        }
    }

    /// The vector stored for `text`, if a whole, undamaged entry holds it. A damaged
    /// entry is removed and reported as a miss (`Ok(None)`), as is an unreadable one.
    pub fn get(&self, namespace: &CacheNamespace, text: &str) -> Option<Vec<f32>> {
        let key = namespace.text_key(text);
        let path = namespace.entry_path(&key);
        let bytes = std::fs::read(&path).ok()?;
        match entry::decode(&key, namespace.dim, &bytes) {
            Some(vector) => {
                // Least recently used goes first when pruning: a hit is a use.
                if let Ok(file) = std::fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(SystemTime::now());
                }
                Some(vector)
            }
            None => {
                tracing::warn!("embedding cache: damaged entry {} removed", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Whether an entry for `text` exists (not read or checked: plans use it).
    pub fn contains(&self, namespace: &CacheNamespace, text: &str) -> bool {
        namespace.entry_path(&namespace.text_key(text)).is_file()
    }

    /// Stores `vector` for `text`: written whole to a temporary file, then renamed over
    /// any entry of the same key.
    pub fn put(&self, namespace: &CacheNamespace, text: &str, vector: &[f32]) -> Result<()> {
        if vector.len() != namespace.dim {
            return Err(Error::InvalidArgument(format!(
                "embedding cache: a {}-d vector for a {}-d model",
                vector.len(),
                namespace.dim
            )));
        }
        let key = namespace.text_key(text);
        let path = namespace.entry_path(&key);
        let folder = path.parent().unwrap_or(&namespace.folder);
        std::fs::create_dir_all(folder).map_err(|source| io_error(folder, source))?;
        let temporary = folder.join(format!(
            ".{}.{}.tmp",
            std::process::id(),
            self.sequence.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::write(&temporary, entry::encode(&key, vector))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(io_error(&path, source));
        }
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a description of the namespace's model beside its entries, once.
    pub fn describe(&self, namespace: &CacheNamespace, model: &ModelIdentity, numerics: &str) {
        let path = namespace.folder.join(prune::DESCRIPTION);
        if path.is_file() {
            return;
        }
        let text = serde_json::json!({
            "model": model.id, "revision": model.revision, "dim": model.dim,
            "prompt_set": model.prompt_set, "numerics": numerics,
        })
        .to_string();
        let temporary = namespace
            .folder
            .join(format!(".{}.description.tmp", std::process::id()));
        let _ = std::fs::create_dir_all(&namespace.folder)
            .and_then(|()| std::fs::write(&temporary, text))
            .and_then(|()| std::fs::rename(&temporary, &path));
    }

    /// Holds the cache to its bound when that is due (a day since the last check, or
    /// many entries written by this process): the least recently used entries go.
    pub fn prune_if_due(&self) -> Result<Option<PruneReport>> {
        let marker = self.root.join(prune::LAST_PRUNED);
        let last = std::fs::metadata(&marker)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let overdue = last.is_none_or(|age| age >= PRUNE_EVERY);
        if !overdue && self.written.load(Ordering::Relaxed) < PRUNE_AFTER_WRITES {
            return Ok(None);
        }
        if !self.root.is_dir() {
            return Ok(None);
        }
        self.written.store(0, Ordering::Relaxed);
        let report = self.prune(Some(self.max_bytes), None)?;
        let _ = std::fs::write(&marker, b"");
        Ok(Some(report))
    }

    /// Removes entries older (by last use) than `older_than`, then the least recently
    /// used until the cache is within `max_bytes`; leftovers of killed writes go too.
    pub fn prune(
        &self,
        max_bytes: Option<u64>,
        older_than: Option<Duration>,
    ) -> Result<PruneReport> {
        prune::prune(&self.root, max_bytes, older_than)
    }

    /// Entries and bytes, by model.
    pub fn stats(&self) -> Result<CacheStats> {
        prune::stats(&self.root)
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<PruneReport> {
        prune::prune(&self.root, Some(0), None)
    }
}

impl CacheNamespace {
    fn text_key(&self, text: &str) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.key.as_bytes());
        hasher.update(text.as_bytes());
        hasher.finalize()
    }

    fn entry_path(&self, key: &blake3::Hash) -> PathBuf {
        let hex = key.to_hex();
        self.folder.join(&hex[..2]).join(&hex[2..32])
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests;

//! Whether indexed files still hold what was indexed: a hit on a file edited since is
//! marked stale, and a status counts the files that changed.

use super::walk::{read_source, walk, WalkItem, WalkOptions};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// How many changed paths a [`Freshness`] names.
const EXAMPLES: usize = 5;

/// How far a tree has moved from its index.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Freshness {
    /// Files new, changed or gone since they were indexed.
    pub changed: usize,
    /// A few of them, in path order (changed and new first, then gone).
    pub examples: Vec<String>,
}

/// Files new, changed or gone under `root` compared with `known` (path to hash, as
/// [`crate::ChunkTable::file_hashes`] gives it), walked with `options`.
pub fn changed_files(
    root: &Path,
    options: &WalkOptions,
    exclude: Vec<PathBuf>,
    known: &HashMap<String, String>,
) -> Freshness {
    let mut seen = HashSet::new();
    let mut changed = Vec::new();
    for item in walk(root, options, exclude) {
        let WalkItem::File(candidate) = item else {
            continue;
        };
        let rel_path = candidate.rel_path.clone();
        let Ok(file) = read_source(candidate, options) else {
            continue;
        };
        if known.get(&rel_path) != Some(&file.hash) {
            changed.push(rel_path.clone());
        }
        seen.insert(rel_path);
    }
    let mut gone: Vec<String> = known
        .keys()
        .filter(|path| !seen.contains(*path))
        .cloned()
        .collect();
    gone.sort();
    changed.extend(gone);
    let count = changed.len();
    changed.truncate(EXAMPLES);
    Freshness {
        changed: count,
        examples: changed,
    }
}

//! The hot index on disk: one folder per saved snapshot and a `CURRENT` file naming the
//! complete one. A snapshot is written in full (every file synced) before `CURRENT` is
//! replaced by rename, so a job killed at any point leaves the previous snapshot, or none,
//! and never a torn one; a snapshot that fails its checks on load is ignored and rebuilt.

use super::attributes::Attributes;
use super::hnsw::{Hnsw, HnswParams};
use super::matrix::Matrix;
use super::HotIndex;
use crate::error::{Error, Result};
use roaring::RoaringBitmap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

const FORMAT: u32 = 1;
const CURRENT: &str = "CURRENT";

/// What a snapshot records about itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Manifest {
    format: u32,
    /// Table version the snapshot reflects.
    pub(crate) table_version: u64,
    /// The table's metadata (model and widths), as JSON, so a snapshot is never used for
    /// a table rebuilt with another model under the same name.
    pub(crate) table_metadata: String,
    rows: usize,
    prefix_dim: usize,
    full_dim: usize,
    params: HnswParams,
}

/// Widest vectors a snapshot may declare.
const MAX_DIM: usize = 65_536;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn write_synced(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let file = File::create(path).map_err(io(path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write(&mut out).map_err(io(path))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Saves `index` under `root` as the current snapshot and removes older ones.
pub(crate) fn save(index: &HotIndex, root: &Path, table_metadata: &str) -> Result<()> {
    fs::create_dir_all(root).map_err(io(root))?;
    let name = format!(
        "v{}-{}",
        index.version,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let dir = root.join(&name);
    fs::create_dir(&dir).map_err(io(&dir))?;
    let manifest = Manifest {
        format: FORMAT,
        table_version: index.version,
        table_metadata: table_metadata.to_string(),
        rows: index.row_ids.len(),
        prefix_dim: index.prefix.dim(),
        full_dim: index.full.dim(),
        params: index.graph.params(),
    };
    write_synced(&dir.join("row_ids.bin"), |out| {
        index
            .row_ids
            .iter()
            .try_for_each(|id| out.write_all(&id.to_le_bytes()))
    })?;
    write_synced(&dir.join("deleted.bin"), |out| {
        index.deleted.serialize_into(out)
    })?;
    write_synced(&dir.join("graph.bin"), |out| index.graph.save(out))?;
    write_synced(&dir.join("attributes.json"), |out| {
        serde_json::to_writer(out, &index.attributes).map_err(std::io::Error::other)
    })?;
    index
        .prefix
        .save(&dir.join("prefix.f16"))
        .map_err(io(&dir))?;
    index.full.save(&dir.join("full.f16")).map_err(io(&dir))?;
    // The manifest last: a folder without one is never complete.
    write_synced(&dir.join("manifest.json"), |out| {
        serde_json::to_writer_pretty(out, &manifest).map_err(std::io::Error::other)
    })?;
    sync_dir(&dir)?;
    let staged = root.join(format!("{CURRENT}.tmp"));
    write_synced(&staged, |out| out.write_all(name.as_bytes()))?;
    fs::rename(&staged, root.join(CURRENT)).map_err(io(root))?;
    sync_dir(root)?;
    remove_other_snapshots(root, &name);
    Ok(())
}

/// Best effort: a leftover folder costs disk space, not correctness.
fn remove_other_snapshots(root: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name != keep && entry.path().is_dir() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The current snapshot's folder, if one was completed.
fn current(root: &Path) -> Result<Option<PathBuf>> {
    let pointer = root.join(CURRENT);
    let name = match fs::read_to_string(&pointer) {
        Ok(name) => name,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&pointer)(e)),
    };
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(invalid(&pointer, "names no snapshot"));
    }
    Ok(Some(root.join(name)))
}

/// Loads the current snapshot under `root`: `Ok(None)` when there is none.
pub(crate) fn load(root: &Path) -> Result<Option<(HotIndex, Manifest)>> {
    let Some(dir) = current(root)? else {
        return Ok(None);
    };
    let manifest_path = dir.join("manifest.json");
    let manifest: Manifest = serde_json::from_reader(BufReader::new(
        File::open(&manifest_path).map_err(io(&manifest_path))?,
    ))
    .map_err(|e| invalid(&manifest_path, e))?;
    if manifest.format != FORMAT {
        return Err(invalid(
            &manifest_path,
            format!("format {} is not {FORMAT}", manifest.format),
        ));
    }
    let rows = manifest.rows;
    // Widths size every matrix slice: check them before anything is read with them.
    if manifest.prefix_dim == 0
        || manifest.prefix_dim > manifest.full_dim
        || manifest.full_dim > MAX_DIM
    {
        return Err(invalid(&manifest_path, "vector widths out of range"));
    }
    let row_ids_path = dir.join("row_ids.bin");
    let bytes = fs::read(&row_ids_path).map_err(io(&row_ids_path))?;
    // The file's real size bounds the row count every later allocation is sized by.
    if rows.checked_mul(8) != Some(bytes.len()) {
        return Err(invalid(&row_ids_path, "wrong size"));
    }
    let row_ids: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .collect();
    let deleted_path = dir.join("deleted.bin");
    let deleted = RoaringBitmap::deserialize_from(BufReader::new(
        File::open(&deleted_path).map_err(io(&deleted_path))?,
    ))
    .map_err(io(&deleted_path))?;
    let graph_path = dir.join("graph.bin");
    let graph = Hnsw::load(
        manifest.params,
        rows,
        &mut BufReader::new(File::open(&graph_path).map_err(io(&graph_path))?),
    )
    .map_err(io(&graph_path))?;
    let attributes_path = dir.join("attributes.json");
    let mut attributes: Attributes = serde_json::from_reader(BufReader::new(
        File::open(&attributes_path).map_err(io(&attributes_path))?,
    ))
    .map_err(|e| invalid(&attributes_path, e))?;
    let prefix_path = dir.join("prefix.f16");
    let prefix = Matrix::map(&prefix_path, manifest.prefix_dim, rows).map_err(io(&prefix_path))?;
    let full_path = dir.join("full.f16");
    let full = Matrix::map(&full_path, manifest.full_dim, rows).map_err(io(&full_path))?;
    let consistent = attributes.finish_load()
        && attributes.len() == rows
        && graph.len() == rows
        && deleted.max().is_none_or(|m| (m as usize) < rows)
        && manifest.prefix_dim <= manifest.full_dim;
    if !consistent {
        return Err(invalid(
            &dir,
            "snapshot files disagree on the number of rows",
        ));
    }
    let node_of = row_ids
        .iter()
        .enumerate()
        .map(|(node, &id)| (id, node as u32))
        .collect();
    let index = HotIndex {
        version: manifest.table_version,
        row_ids,
        node_of,
        deleted,
        pending: Default::default(),
        prefix,
        full,
        graph,
        attributes,
    };
    Ok(Some((index, manifest)))
}

/// Whether a snapshot was completed under `root`.
pub(crate) fn exists(root: &Path) -> bool {
    root.join(CURRENT).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::hot::HotQuery;
    use half::f16;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const PREFIX: usize = 8;
    const FULL: usize = 32;

    fn small_index() -> HotIndex {
        let mut rng = StdRng::seed_from_u64(7);
        let mut index = HotIndex::new(PREFIX, FULL, HnswParams::default());
        for row in 0..300u64 {
            let full: Vec<f16> = (0..FULL)
                .map(|_| f16::from_f32(rng.random_range(-1.0..1.0)))
                .collect();
            let language = ["rust", "go", "python"][row as usize % 3];
            index.push(row * 3, &full[..PREFIX], &full, language, "r", "src/x.rs");
        }
        index.link_new_rows(1);
        index.deleted.insert(5);
        index.version = 9;
        index
    }

    /// One way of damaging a saved snapshot.
    enum Damage {
        Truncate(usize),
        Flip { seed: u64, bytes: usize },
        Overwrite(usize, [u8; 8]),
        Manifest(&'static str, u64),
    }

    fn damage(dir: &Path, file: &str, how: &Damage) {
        let path = dir.join(file);
        let mut bytes = fs::read(&path).unwrap();
        match how {
            Damage::Truncate(keep) => bytes.truncate(*keep.min(&bytes.len())),
            Damage::Flip { seed, bytes: n } => {
                let mut rng = StdRng::seed_from_u64(*seed);
                for _ in 0..*n {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
            Damage::Overwrite(at, word) => {
                let end = (*at + 8).min(bytes.len());
                if *at < end {
                    bytes[*at..end].copy_from_slice(&word[..end - *at]);
                }
            }
            Damage::Manifest(field, value) => {
                let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                let target = match *field {
                    "m" => &mut manifest["params"]["m"],
                    other => &mut manifest[other],
                };
                *target = serde_json::json!(value);
                bytes = serde_json::to_vec(&manifest).unwrap();
            }
        }
        fs::write(&path, bytes).unwrap();
    }

    #[test]
    fn damaged_snapshots_are_refused_or_load_safely_never_panic() {
        let index = small_index();
        let query: Vec<f32> = (0..FULL).map(|i| (i as f32).sin()).collect();
        let files = [
            "manifest.json",
            "row_ids.bin",
            "deleted.bin",
            "graph.bin",
            "attributes.json",
            "prefix.f16",
            "full.f16",
        ];
        let huge = [u64::MAX, 1 << 62, 1 << 40, u32::MAX as u64 + 1, 0];
        let mut cases: Vec<(&str, Damage)> = Vec::new();
        for file in files {
            for keep in [0, 1, 7, 8, 9, 16, 100] {
                cases.push((file, Damage::Truncate(keep)));
            }
            for seed in 0..12 {
                cases.push((
                    file,
                    Damage::Flip {
                        seed,
                        bytes: 1 + seed as usize % 6,
                    },
                ));
            }
            for value in huge {
                for at in [0, 8] {
                    cases.push((file, Damage::Overwrite(at, value.to_le_bytes())));
                }
            }
        }
        for field in ["rows", "prefix_dim", "full_dim", "m"] {
            for value in huge {
                cases.push(("manifest.json", Damage::Manifest(field, value)));
            }
        }
        // Saved once (saving syncs every file); each case damages a fresh copy.
        let saved = tempfile::tempdir().unwrap();
        save(&index, saved.path(), "{}").unwrap();
        let saved_dir = current(saved.path()).unwrap().unwrap();
        let mut refused = 0;
        for (file, how) in &cases {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join(saved_dir.file_name().unwrap());
            fs::create_dir(&dir).unwrap();
            for entry in fs::read_dir(&saved_dir).unwrap() {
                let entry = entry.unwrap();
                fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
            }
            fs::copy(saved.path().join(CURRENT), root.path().join(CURRENT)).unwrap();
            damage(&dir, file, how);
            let outcome = std::panic::catch_unwind(|| match load(root.path()) {
                Ok(Some((loaded, _))) => {
                    // Loaded despite the damage (a flipped vector value, say): its searches
                    // must still be safe.
                    let (prefix, full) = loaded.widths();
                    if full <= query.len() && prefix <= full {
                        loaded.search(&HotQuery {
                            full: &query[..full],
                            k: 10,
                            shortlist: 50,
                            ef: 64,
                            allowed: None,
                        });
                    }
                    false
                }
                Ok(None) | Err(_) => true,
            });
            match outcome {
                Ok(was_refused) => refused += usize::from(was_refused),
                Err(_) => panic!("loading {file} damaged by {:?} panicked", describe(how)),
            }
        }
        // Most damage (every size and count change) must be caught, not merely survived.
        assert!(
            refused * 2 > cases.len(),
            "{refused} of {} refused",
            cases.len()
        );
        // And the undamaged snapshot loads.
        let root = tempfile::tempdir().unwrap();
        save(&index, root.path(), "{}").unwrap();
        assert!(load(root.path()).unwrap().is_some());
    }

    fn describe(how: &Damage) -> String {
        match how {
            Damage::Truncate(keep) => format!("truncation to {keep} bytes"),
            Damage::Flip { seed, bytes } => format!("{bytes} bit flips (seed {seed})"),
            Damage::Overwrite(at, word) => format!("{word:?} written at {at}"),
            Damage::Manifest(field, value) => format!("manifest {field} = {value}"),
        }
    }
}

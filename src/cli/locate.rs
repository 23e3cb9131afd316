//! Finding the database and loading the encoder, shared by the commands.

use super::Args;
use anyhow::{anyhow, Context, Result};
use lancet::engine::cache::{default_cache_dir, EmbeddingCache};
use lancet::engine::ingest::{changed_files, Freshness, IngestOptions, WalkOptions};
use lancet::engine::{ChunkTable, Database, DEFAULT_DB_DIR};
use lancet::udf::{DeviceSpec, Encoder, EncoderOptions, QwenEncoder};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The database of an index job over `root`: `--db`, else `root/.lancet`.
pub fn db_for_root(args: &Args, root: &Path) -> PathBuf {
    args.db.clone().unwrap_or_else(|| root.join(DEFAULT_DB_DIR))
}

/// The database of a query: `--db`, else the nearest `.lancet` above the current folder.
pub fn existing_db(args: &Args) -> Result<PathBuf> {
    if let Some(db) = &args.db {
        if !db.is_dir() {
            return Err(anyhow!(
                "no database at {}; create one with `lancet index PATH --db {}`",
                db.display(),
                db.display()
            ));
        }
        return Ok(db.clone());
    }
    let cwd = std::env::current_dir().context("current directory")?;
    cwd.ancestors()
        .map(|dir| dir.join(DEFAULT_DB_DIR))
        .find(|candidate| candidate.is_dir())
        .ok_or_else(|| {
            anyhow!(
                "no {DEFAULT_DB_DIR} database in {} or above; run `lancet index PATH` first \
                 or pass --db",
                cwd.display()
            )
        })
}

/// Opens the query's table.
pub async fn open_table(args: &Args) -> Result<ChunkTable> {
    let db = Database::open_with(existing_db(args)?, args.consistency).await?;
    Ok(db.open_table(&args.table).await?)
}

/// The machine-wide embedding cache `--cache-dir` names (or the default one), unless
/// `--no-cache` says not to use one or no cache folder can be found.
pub fn embedding_cache(args: &Args) -> Option<Arc<EmbeddingCache>> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(default_cache_dir)?;
    Some(Arc::new(EmbeddingCache::new(
        dir,
        args.cache_max_mb.saturating_mul(1 << 20),
    )))
}

/// Loads the encoder named by `--model` on `--device`: one model per device listed
/// (`cuda:0,1`), each call's texts split across them.
pub fn load_encoder(args: &Args, options: EncoderOptions) -> Result<Arc<dyn Encoder>> {
    let devices = DeviceSpec::parse_list(&args.device)?;
    let options = EncoderOptions {
        precision: args.precision,
        ..options
    };
    QwenEncoder::load_on(&args.model, options, &devices)
        .with_context(|| format!("loading model `{}`", args.model))
}

/// Devices `--device` lists (`cuda:0,1` is two): batches grow with them.
pub fn device_count(args: &Args) -> usize {
    DeviceSpec::parse_list(&args.device).map_or(1, |d| d.len())
}

/// The repository a default database indexes: the folder holding `.lancet`, and the
/// repository name `lancet index` gives it. `None` for a database elsewhere (`--db`),
/// whose tree is not known.
pub fn indexed_root(args: &Args) -> Option<(PathBuf, String)> {
    let db = existing_db(args).ok()?.canonicalize().ok()?;
    if db.file_name()? != DEFAULT_DB_DIR {
        return None;
    }
    let root = db.parent()?.to_path_buf();
    let repo = root.file_name()?.to_string_lossy().into_owned();
    Some((root, repo))
}

/// How far the default database's tree moved from `table` since it was indexed; `None`
/// when the tree is not known or the table holds none of its files.
pub async fn freshness(args: &Args, table: &ChunkTable) -> Result<Option<Freshness>> {
    let Some((root, repo)) = indexed_root(args) else {
        return Ok(None);
    };
    let known = table.file_hashes(&repo).await?;
    if known.is_empty() {
        return Ok(None);
    }
    // The walk `index` would make, without its database and embedding cache.
    let exclude = IngestOptions {
        exclude: Some(root.join(DEFAULT_DB_DIR)),
        cache: embedding_cache(args),
        ..IngestOptions::default()
    }
    .excluded_folders();
    let fresh = tokio::task::spawn_blocking(move || {
        changed_files(&root, &WalkOptions::default(), exclude, &known)
    })
    .await?;
    Ok(Some(fresh))
}

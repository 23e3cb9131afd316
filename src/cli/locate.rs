//! Finding the database and loading the encoder, shared by the commands.

use super::Args;
use anyhow::{anyhow, Context, Result};
use lancet::engine::cache::{default_cache_dir, default_weights_dir, EmbeddingCache};
use lancet::engine::ingest::{changed_files, Freshness, IngestOptions, WalkOptions};
use lancet::engine::{ChunkTable, Database, DatabaseOptions, DbLocation, DEFAULT_DB_DIR};
use lancet::udf::{DeviceSpec, Encoder, EncoderOptions, Precision, QwenEncoder};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The database of an index job over `root`: `--db`, else `root/.lancet`.
pub fn db_for_root(args: &Args, root: &Path) -> DbLocation {
    match &args.db {
        Some(db) => DbLocation::parse(db),
        None => DbLocation::Folder(root.join(DEFAULT_DB_DIR)),
    }
}

/// The database of a query: `--db`, else the nearest `.lancet` above the current folder.
pub fn existing_db(args: &Args) -> Result<DbLocation> {
    if let Some(db) = &args.db {
        let location = DbLocation::parse(db);
        // An object store's database is found (or not) when it is opened.
        if location.folder().is_some_and(|folder| !folder.is_dir()) {
            return Err(anyhow!(
                "no database at {db}; create one with `lancet index PATH --db {db}`"
            ));
        }
        return Ok(location);
    }
    let cwd = std::env::current_dir().context("current directory")?;
    cwd.ancestors()
        .map(|dir| dir.join(DEFAULT_DB_DIR))
        .find(|candidate| candidate.is_dir())
        .map(DbLocation::Folder)
        .ok_or_else(|| {
            anyhow!(
                "no {DEFAULT_DB_DIR} database in {} or above; run `lancet index PATH` first \
                 or pass --db",
                cwd.display()
            )
        })
}

/// How `--consistency` and `--storage-option` say a database is opened.
pub fn database_options(args: &Args) -> Result<DatabaseOptions> {
    let storage_options = args
        .storage_options
        .iter()
        .map(|option| {
            option
                .split_once('=')
                .filter(|(key, _)| !key.trim().is_empty())
                .map(|(key, value)| (key.trim().to_string(), value.to_string()))
                .ok_or_else(|| anyhow!("--storage-option `{option}`: expected KEY=VALUE"))
        })
        .collect::<Result<_>>()?;
    Ok(DatabaseOptions {
        consistency: args.consistency,
        storage_options,
        local_dir: None,
    })
}

/// Opens the database at `location` with the command line's options.
pub async fn open_database(args: &Args, location: DbLocation) -> Result<Database> {
    let shown = location.to_string();
    Database::connect(location, database_options(args)?)
        .await
        .with_context(|| format!("opening the database at {shown}"))
}

/// Opens the query's table.
pub async fn open_table(args: &Args) -> Result<ChunkTable> {
    let db = open_database(args, existing_db(args)?).await?;
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
    QwenEncoder::load_on(&args.model, encoder_options(args, options), &devices)
        .with_context(|| format!("loading model `{}`", args.model))
}

/// `--precision`: one, or `auto` ([`Precision::for_this_machine`] on `--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionArg {
    Auto,
    Chosen(Precision),
}

impl std::str::FromStr for PrecisionArg {
    type Err = lancet::udf::Error;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().eq_ignore_ascii_case("auto") {
            true => Ok(PrecisionArg::Auto),
            false => s.parse().map(PrecisionArg::Chosen).map_err(|_| {
                lancet::udf::Error::Model(format!(
                    "unknown precision `{}`: use auto, f32 or q8",
                    s.trim()
                ))
            }),
        }
    }
}

/// The precision the flags ask for: `auto` is q8 or f32 by what the CPU has, on the CPU.
pub fn precision(args: &Args) -> Precision {
    match args.precision {
        PrecisionArg::Chosen(precision) => precision,
        PrecisionArg::Auto => {
            let on_cpu = matches!(
                DeviceSpec::parse_list(&args.device).as_deref(),
                Ok([DeviceSpec::Cpu])
            );
            Precision::for_this_machine(on_cpu)
        }
    }
}

/// `options` with what the global flags say: `--precision`, and the folder of packed
/// q8 weights (none with `--no-cache`).
pub fn encoder_options(args: &Args, options: EncoderOptions) -> EncoderOptions {
    EncoderOptions {
        precision: precision(args),
        weights_cache: if args.no_cache {
            None
        } else {
            default_weights_dir()
        },
        ..options
    }
}

/// Devices `--device` lists (`cuda:0,1` is two): batches grow with them.
pub fn device_count(args: &Args) -> usize {
    DeviceSpec::parse_list(&args.device).map_or(1, |d| d.len())
}

/// The repository a default database indexes: the folder holding `.lancet`, and the
/// repository name `lancet index` gives it. `None` for a database elsewhere (`--db`),
/// whose tree is not known.
pub fn indexed_root(args: &Args) -> Option<(PathBuf, String)> {
    let db = existing_db(args).ok()?.folder()?.canonicalize().ok()?;
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

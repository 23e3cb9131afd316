//! `lancet index PATH`.

use super::locate::{db_for_root, load_encoder};
use super::progress::ProgressReport;
use super::Args;
use anyhow::{Context, Result};
use clap::Parser;
use lancet::engine::ingest::{
    index_directory, IngestOptions, IngestSummary, LanguageMap, WalkOptions,
};
use lancet::engine::{Database, HotIndexOptions, IndexOptions, TableDims, TableMetadata};
use lancet::udf::{Encoder, EncoderOptions};
use std::path::PathBuf;
use std::sync::Arc;

// Bounds of the size options: a value past them is a mistake (u64::MAX once wrapped to
// a zero file-size limit, which emptied the table), refused before anything runs.
const MAX_FILE_BYTES: u64 = 1 << 32;
const MAX_CHUNK_TOKENS: u64 = 32_768;
const MAX_THREADS: u64 = 4_096;
const MAX_COMMIT_FILES: u64 = 10_000_000;
const MAX_DIMS: u64 = 65_536;

fn bytes(max: u64) -> clap::builder::RangedU64ValueParser<u64> {
    clap::builder::RangedU64ValueParser::new().range(1..=max)
}

fn count(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(min..=max)
}

/// Arguments of `lancet index`.
#[derive(Debug, Parser)]
pub struct IndexArgs {
    /// Root of the repository to index.
    pub path: PathBuf,
    /// Repository name stored with each chunk (default: the folder's name).
    #[arg(long)]
    pub repo: Option<String>,
    /// Skip files larger than this many bytes.
    #[arg(long, default_value_t = 1 << 20, value_parser = bytes(MAX_FILE_BYTES))]
    pub max_file_size: u64,
    /// Skip files with a line longer than this (minified or generated code).
    #[arg(long, default_value_t = 4096, value_parser = count(1, MAX_FILE_BYTES))]
    pub max_line_length: usize,
    /// Index vendored dependency folders (node_modules, vendor, third_party, ...).
    #[arg(long)]
    pub include_vendored: bool,
    /// Index lock files (Cargo.lock, package-lock.json, ...).
    #[arg(long)]
    pub include_lock_files: bool,
    /// Index hidden files and folders (`.git` is always skipped).
    #[arg(long)]
    pub hidden: bool,
    /// Follow symbolic links.
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Extra extension mapping, e.g. `--ext f90=fortran` (repeatable).
    #[arg(long = "ext", value_name = "EXT=LANGUAGE")]
    pub extensions: Vec<String>,
    /// Chunk budget in tokens.
    #[arg(long, default_value_t = 512, value_parser = count(8, MAX_CHUNK_TOKENS))]
    pub chunk_tokens: usize,
    /// Cut files into line windows only (no syntax-aware chunking).
    #[arg(long)]
    pub no_syntax: bool,
    /// Threads reading and chunking files (default: one per core).
    #[arg(long, default_value_t = 0, value_parser = count(0, MAX_THREADS))]
    pub threads: usize,
    /// Files per commit: a killed job loses at most the groups not yet committed.
    #[arg(long, default_value_t = 1000, value_parser = count(1, MAX_COMMIT_FILES))]
    pub commit_files: usize,
    /// Width of the stored full vector (new tables; at most the model's width).
    #[arg(long, default_value_t = 768, value_parser = count(1, MAX_DIMS))]
    pub full_dims: usize,
    /// Width of the stored Matryoshka prefix (new tables).
    #[arg(long, default_value_t = 128, value_parser = count(1, MAX_DIMS))]
    pub prefix_dims: usize,
    /// Remove every indexed file of the repository even when some are still on disk but
    /// skipped by this run's options (without it, such a run stops before removing any).
    #[arg(long)]
    pub allow_remove_all: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &Args, a: &IndexArgs) -> Result<()> {
    let root = a
        .path
        .canonicalize()
        .with_context(|| format!("cannot index {}", a.path.display()))?;
    let mut languages = LanguageMap::default();
    for mapping in &a.extensions {
        languages.add_mapping(mapping).map_err(anyhow::Error::msg)?;
    }
    let encoder = load_encoder(
        args,
        EncoderOptions {
            max_document_tokens: a.chunk_tokens + 64,
            ..EncoderOptions::default()
        },
    )?;
    let encoder: Arc<dyn Encoder> = Arc::new(encoder);
    let db_path = db_for_root(args, &root);
    let db = Database::open_with(&db_path, args.consistency).await?;
    let model_dim = encoder.identity().dim;
    let dims = TableDims {
        full: a.full_dims.min(model_dim),
        prefix: a.prefix_dims.min(a.full_dims.min(model_dim)),
    };
    let metadata = TableMetadata::new(encoder.identity().clone(), dims)?;
    let table = db.open_or_create_table(&args.table, metadata).await?;
    let options = IngestOptions {
        repo: a.repo.clone().unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "default".into())
        }),
        walk: WalkOptions {
            max_file_bytes: a.max_file_size,
            max_line_bytes: a.max_line_length,
            skip_vendored: !a.include_vendored,
            skip_lock_files: !a.include_lock_files,
            include_hidden: a.hidden,
            follow_symlinks: a.follow_symlinks,
            languages,
        },
        chunk_tokens: a.chunk_tokens,
        syntax: !a.no_syntax,
        threads: a.threads,
        commit_files: a.commit_files,
        exclude: db_path.canonicalize().ok(),
        allow_remove_all: a.allow_remove_all,
        ..IngestOptions::default()
    };
    let mut reporter = ProgressReport::new(a.json);
    let mut progress = |s: &IngestSummary| reporter.update(s);
    let summary = index_directory(&table, encoder, &root, &options, &mut progress).await;
    reporter.finish();
    let summary = summary?;
    let report = table.ensure_indexes(&IndexOptions::default()).await?;
    // A saved hot index follows the table: catch it up with this job's commits.
    let hot = if table.has_hot_snapshot() {
        Some(table.open_hot_index(&HotIndexOptions::default()).await?)
    } else {
        None
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        outln!("{summary}")?;
        outln!(
            "table `{}` in {}: ANN index {}",
            table.name(),
            db_path.display(),
            if report.ann_ready {
                "ready"
            } else {
                "not needed yet (flat search)"
            }
        )?;
        if let Some(hot) = hot {
            outln!("{}", super::status::describe_hot(&hot))?;
        }
    }
    Ok(())
}

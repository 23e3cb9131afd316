//! `lancet index PATH`.

use super::locate::{db_for_root, device_count, embedding_cache, load_encoder, open_database};
use super::progress::ProgressReport;
use super::Args;
use anyhow::{Context, Result};
use clap::Parser;
use lancet::engine::ingest::{
    calibrate, index_directory, plan_directory, IngestOptions, IngestSummary, LanguageMap,
    VectorTiming, WalkOptions,
};
use lancet::engine::{
    ChunkTable, DbLocation, Error as EngineError, HotIndexOptions, IndexOptions, TableDims,
    TableMetadata,
};
use lancet::udf::{Encoder, EncoderOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

/// Arguments of `lancet index` (and of `lancet watch`, which indexes the same way).
#[derive(Debug, Parser)]
pub struct IndexArgs {
    /// Root of the repository to index (several only for a sharded job, each its own
    /// repository).
    #[arg(default_value = ".", value_name = "ROOT")]
    pub paths: Vec<PathBuf>,
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
    /// Chunks per commit (a group of files is committed at this many chunks or at
    /// `--commit-files`; rows given their vectors after their text at this many, or
    /// every 10 s).
    #[arg(long, default_value_t = 8192, value_parser = count(1, MAX_COMMIT_FILES))]
    pub commit_chunks: usize,
    /// Width of the stored full vector (new tables; at most the model's width).
    #[arg(long, visible_alias = "dims", default_value_t = 768, value_parser = count(1, MAX_DIMS))]
    pub full_dims: usize,
    /// Width of the stored Matryoshka prefix (new tables).
    #[arg(long, default_value_t = 128, value_parser = count(1, MAX_DIMS))]
    pub prefix_dims: usize,
    /// Remove every indexed file of the repository even when some are still on disk but
    /// skipped by this run's options (without it, such a run stops before removing any).
    #[arg(long)]
    pub allow_remove_all: bool,
    /// When rows get their vectors: `after-text` commits every changed file with its
    /// text first (searchable by text at once), then embeds, most recently changed files
    /// first; `with-text` commits each group with its vectors; `later` commits text only
    /// (the next run embeds it). Every run but `later` first embeds rows a stopped run
    /// left without vectors.
    #[arg(long, value_enum, default_value_t = Vectors::AfterText)]
    pub vectors: Vectors,
    /// Walk and chunk without embedding or writing: report what a run would embed,
    /// the estimated time (from a short calibration here) and the disk size.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Index only shard I of N of the roots' files (a distributed job: N workers, then
    /// `lancet commit --stage`), into the staging location `--stage`; the table is
    /// only read.
    #[arg(long, value_name = "I/N", requires = "stage")]
    pub shard: Option<String>,
    /// Staging location of a sharded job (a folder or an object-store URI).
    #[arg(long, value_name = "PATH|URI", requires = "shard")]
    pub stage: Option<String>,
}

impl IndexArgs {
    /// The root of a job that is not sharded.
    pub fn single_root(&self) -> Result<&Path> {
        match self.paths.as_slice() {
            [one] => Ok(one),
            _ => anyhow::bail!(
                "several roots make a sharded job (--shard I/N --stage PATH|URI); \
                 otherwise index one root at a time"
            ),
        }
    }
}

/// `--vectors`: when rows get their vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Vectors {
    /// With their text, one commit per group.
    WithText,
    /// After every changed file's text is committed.
    AfterText,
    /// Not in this run.
    Later,
}

impl From<Vectors> for VectorTiming {
    fn from(v: Vectors) -> Self {
        match v {
            Vectors::WithText => VectorTiming::WithText,
            Vectors::AfterText => VectorTiming::AfterText,
            Vectors::Later => VectorTiming::Later,
        }
    }
}

/// What an indexing job needs, from the command line.
pub struct Job {
    /// Repository root (canonical).
    pub root: PathBuf,
    /// The database.
    pub db_location: DbLocation,
    /// The model.
    pub encoder: Arc<dyn Encoder>,
    /// The table, created when missing.
    pub table: ChunkTable,
    /// How the tree is walked, chunked and committed.
    pub options: IngestOptions,
}

/// Loads the model and opens (or creates) the table for indexing `a`'s root.
pub async fn prepare(args: &Args, a: &IndexArgs) -> Result<Job> {
    let Setup {
        root,
        db_location,
        encoder,
        mut options,
    } = setup(args, a)?;
    let db = open_database(args, db_location.clone()).await?;
    // The folder exists now: the walk (and a watcher) must know it by its real path.
    options.exclude = local_folder(&db_location);
    let model_dim = encoder.identity().dim;
    let dims = TableDims {
        full: a.full_dims.min(model_dim),
        prefix: a.prefix_dims.min(a.full_dims.min(model_dim)),
    };
    let metadata = TableMetadata::new(encoder.identity().clone(), dims)?;
    let table = db.open_or_create_table(&args.table, metadata).await?;
    Ok(Job {
        root,
        db_location,
        encoder,
        table,
        options,
    })
}

/// A job's settings and model, before any table is touched.
struct Setup {
    root: PathBuf,
    db_location: DbLocation,
    encoder: Arc<dyn Encoder>,
    options: IngestOptions,
}

/// The database's folder, when it is one on this machine (the walk skips it).
pub fn local_folder(location: &DbLocation) -> Option<PathBuf> {
    location.folder()?.canonicalize().ok()
}

fn setup(args: &Args, a: &IndexArgs) -> Result<Setup> {
    let root = canonical_root(a.single_root()?)?;
    let encoder = index_encoder(args, a)?;
    let db_location = db_for_root(args, &root);
    let options = ingest_options(args, a, &root, &db_location)?;
    Ok(Setup {
        root,
        db_location,
        encoder,
        options,
    })
}

/// `path`, canonical, or why it cannot be indexed.
pub fn canonical_root(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("cannot index {}", path.display()))
}

/// The model an indexing job loads.
pub fn index_encoder(args: &Args, a: &IndexArgs) -> Result<Arc<dyn Encoder>> {
    load_encoder(
        args,
        EncoderOptions {
            max_document_tokens: a.chunk_tokens + 64,
            ..EncoderOptions::default()
        },
    )
}

/// How the command line says `root` is indexed into the database at `db_location`.
pub fn ingest_options(
    args: &Args,
    a: &IndexArgs,
    root: &Path,
    db_location: &DbLocation,
) -> Result<IngestOptions> {
    let mut languages = LanguageMap::default();
    for mapping in &a.extensions {
        languages.add_mapping(mapping).map_err(anyhow::Error::msg)?;
    }
    Ok(IngestOptions {
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
            only: Vec::new(),
            shard: None,
        },
        chunk_tokens: a.chunk_tokens,
        syntax: !a.no_syntax,
        threads: a.threads,
        commit_files: a.commit_files,
        commit_chunks: a.commit_chunks,
        // Each device gets a batch of its own per call.
        embed_batch: IngestOptions::default().embed_batch * device_count(args),
        exclude: local_folder(db_location),
        allow_remove_all: a.allow_remove_all,
        cache: embedding_cache(args),
        vectors: a.vectors.into(),
    })
}

/// `index --dry-run`: what a run would embed and write, and how long it would take
/// here, without writing anything (not even an empty database).
async fn dry_run(args: &Args, a: &IndexArgs) -> Result<()> {
    let Setup {
        root,
        db_location,
        encoder,
        options,
    } = setup(args, a)?;
    // An object store is looked at; a folder that does not exist is not created.
    let table = if db_location.folder().is_none_or(|folder| folder.is_dir()) {
        let db = open_database(args, db_location).await?;
        match db.open_table(&args.table).await {
            Ok(table) => Some(table),
            Err(EngineError::TableNotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let plan = plan_directory(table.as_ref(), encoder.clone(), &root, &options).await?;
    let calibration = calibrate(encoder.as_ref(), &plan.sample, CALIBRATION_BUDGET)?;
    let seconds = calibration
        .filter(|c| c.tokens_per_second > 0.0)
        .map(|c| plan.tokens_to_embed as f64 / c.tokens_per_second);
    if a.json {
        let answer = serde_json::json!({
            "plan": plan,
            "calibration": calibration,
            "estimated_seconds": seconds,
            "device": args.device,
        });
        outln!("{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(());
    }
    outln!(
        "dry run of {} (nothing embedded or written)\n\
         files: {} found, {} new or changed, {} unchanged, {} deleted, {} skipped\n\
         chunks: {} in changed files, {} left without vectors by an earlier run, \
         {} reused by content, {} texts from the machine cache, {} texts to embed\n\
         tokens to embed: {}{}\n\
         new rows: about {:.1} MB before compression",
        root.display(),
        plan.files_found,
        plan.files_changed,
        plan.files_unchanged,
        plan.files_deleted,
        plan.files_skipped,
        plan.chunks,
        plan.chunks_pending,
        plan.chunks_reused,
        plan.texts_cached,
        plan.texts_to_embed,
        plan.tokens_to_embed,
        if plan.tokens_counted {
            ""
        } else {
            " (estimated)"
        },
        plan.estimated_bytes as f64 / 1e6,
    )?;
    match (calibration, seconds) {
        (Some(c), Some(seconds)) => outln!(
            "estimated embedding time on {}: {} (calibrated here: {:.0} tokens/s over {} texts, \
             {} tokens)",
            args.device,
            human_duration(seconds),
            c.tokens_per_second,
            c.texts,
            c.tokens
        )?,
        _ => outln!("nothing to embed")?,
    }
    Ok(())
}

/// How long the dry run times the encoder for.
const CALIBRATION_BUDGET: Duration = Duration::from_secs(3);

fn human_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..=59 => format!("{seconds:.1} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

pub async fn run(args: &Args, a: &IndexArgs) -> Result<()> {
    if a.dry_run {
        if a.shard.is_some() {
            anyhow::bail!("--dry-run plans a whole tree; leave out --shard");
        }
        return dry_run(args, a).await;
    }
    if let (Some(shard), Some(stage)) = (&a.shard, &a.stage) {
        return super::shard::index(args, a, shard, stage).await;
    }
    let Job {
        root,
        db_location,
        encoder,
        table,
        options,
    } = prepare(args, a).await?;
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
            db_location,
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

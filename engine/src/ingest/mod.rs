//! Indexing a repository into a chunk table: walk, read and chunk on a thread pool,
//! reuse or embed, write.
//!
//! Files are committed in groups, each group one atomic [`ChunkTable::replace_files`]:
//! a job killed at any point leaves every file either at its old or its new state, and
//! files already written are skipped by their hash when the job runs again. Rows may be
//! committed before their vectors ([`VectorTiming`]); the next job embeds what is left.

mod freshness;
mod known;
mod language;
mod machine_cache;
mod pending;
mod pipeline;
mod plan;
mod priority;
mod scan;
mod shard;
mod stage;
mod summary;
mod walk;
mod watch;

pub use crate::store::{content_hash, is_stale};
pub use freshness::{changed_files, Freshness};
pub use language::LanguageMap;
pub use pending::{chunk_rows, embedded_text, EncoderTokens, PendingChunk};
pub use plan::{calibrate, plan_directory, Calibration, IngestPlan};
pub use scan::{scan, ChunkedFile, FileOutcome, ScanEvent, ScanOptions};
pub use shard::Shard;
pub use stage::{
    commit_stage, index_shard, ShardInput, ShardManifest, Stage, StageCommit, JOB_PROPERTY,
};
pub use summary::{IngestSummary, SkipReason};
pub use walk::{read_source, walk, Candidate, SourceFile, WalkItem, WalkOptions};
pub use watch::{watch_directory, WatchEvent, WatchOptions};

use crate::cache::EmbeddingCache;
use crate::error::Result;
use crate::store::ChunkTable;
use lancet_udf::Encoder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tokens kept free in each chunk's budget for the path/symbol header and the prompt.
pub const HEADER_TOKENS: usize = 32;

/// Settings of an indexing job.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Repository name stored with every chunk.
    pub repo: String,
    /// What the walk skips.
    pub walk: WalkOptions,
    /// Chunk budget in tokens, header and prompt included (the model's training length
    /// by default).
    pub chunk_tokens: usize,
    /// Chunk along the syntax tree where a grammar exists (line windows when false).
    pub syntax: bool,
    /// Threads reading and chunking files (0: one per core).
    pub threads: usize,
    /// Files per commit.
    pub commit_files: usize,
    /// Chunks per commit (a group is committed when either limit is reached).
    pub commit_chunks: usize,
    /// Chunks per encoder call.
    pub embed_batch: usize,
    /// Folder never walked (the database, when it lives inside the root).
    pub exclude: Option<PathBuf>,
    /// Let a run remove every file the table holds for the repository even though some
    /// of them are still on disk, skipped by this run's options. Off, such a run fails
    /// before removing anything: one mistyped option must not empty an index.
    pub allow_remove_all: bool,
    /// The machine-wide embedding cache: texts it holds are not embedded, and texts
    /// embedded go into it (`None`: neither).
    pub cache: Option<Arc<EmbeddingCache>>,
    /// When rows get their vectors: with their text, or after it.
    pub vectors: VectorTiming,
}

/// When an indexing job gives its rows their vectors. Whatever the timing, a job that
/// embeds ends by embedding the rows an earlier job left without vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VectorTiming {
    /// Each group of files is committed with its vectors: a row is never without them,
    /// and each group is one commit.
    #[default]
    WithText,
    /// Every changed file is committed with its text first (found by text search at
    /// once), then the rows are embedded, the most recently changed files first, with a
    /// commit every few seconds; vector search covers more of the table as it goes.
    AfterText,
    /// Rows are committed with their text only; a later job embeds them.
    Later,
}

impl IngestOptions {
    /// Folders a walk never enters: the database and the machine-wide embedding
    /// cache, wherever they are (a folder outside the root is simply never met).
    pub fn excluded_folders(&self) -> Vec<PathBuf> {
        let cache = self.cache.as_ref().map(|cache| {
            let root = cache.root();
            root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
        });
        self.exclude.iter().cloned().chain(cache).collect()
    }
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            repo: "default".into(),
            walk: WalkOptions::default(),
            chunk_tokens: 512,
            syntax: true,
            threads: 0,
            commit_files: 1_000,
            commit_chunks: 8_192,
            embed_batch: 64,
            exclude: None,
            allow_remove_all: false,
            cache: None,
            vectors: VectorTiming::WithText,
        }
    }
}

/// Called with the running summary: after each commit and while files are read.
pub type Progress<'a> = dyn FnMut(&IngestSummary) + Send + 'a;

/// Indexes `root` into `table` with `encoder`, incrementally: unchanged files are
/// skipped by hash, changed files replaced, vanished files removed.
///
/// The job runs as a pipeline with bounded queues (readers -> grouping and reuse
/// lookup -> encoder thread -> writer), so memory stays flat on any tree size and the
/// encoder works while the previous group is written.
pub async fn index_directory(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    options: &IngestOptions,
    progress: &mut Progress<'_>,
) -> Result<IngestSummary> {
    pipeline::run(table, encoder, root, options, progress).await
}

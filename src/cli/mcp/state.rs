//! What the MCP server keeps between calls: where the index is, the model (loaded in the
//! background from the start, so `initialize` never waits for it), the file hashes of the
//! table's current version, and the one `reindex` job it may run.

use super::schema::JobStatus;
use crate::cli::locate::{database_options, db_for_root, embedding_cache, encoder_options};
use crate::cli::Args;
use lancet::engine::cache::EmbeddingCache;
use lancet::engine::ingest::{IngestOptions, IngestSummary};
use lancet::engine::{ChunkTable, Database, DatabaseOptions, DbLocation, Error as EngineError};
use lancet::udf::{DeviceSpec, Encoder, EncoderOptions, QwenEncoder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::OnceCell;

/// The model, or why it could not be loaded.
pub type LoadedEncoder = Result<Arc<dyn Encoder>, String>;

/// Path to content hash of one repository's files, at one table version.
type FileHashes = (u64, Arc<HashMap<String, String>>);

/// The repository served and its database.
pub struct Shared {
    /// Repository root (canonical).
    pub root: PathBuf,
    /// Repository name stored with its chunks.
    pub repo: String,
    /// The database.
    pub db_location: DbLocation,
    table_name: String,
    db_options: DatabaseOptions,
    model: String,
    device: String,
    encoder_options: EncoderOptions,
    encoder: OnceCell<LoadedEncoder>,
    /// File hashes of the served repository at one table version.
    hashes: Mutex<Option<FileHashes>>,
    /// The last or running `reindex` job.
    pub job: Mutex<Job>,
    /// Set while a watcher (`--watch`) keeps the index current and holds its writer lock.
    pub watching: std::sync::atomic::AtomicBool,
    /// The machine-wide embedding cache indexing jobs use (`None`: `--no-cache`).
    pub cache: Option<Arc<EmbeddingCache>>,
}

/// A `reindex` job's progress.
#[derive(Default)]
pub struct Job {
    /// Progress as reported.
    pub status: JobStatus,
    /// When it started.
    pub started: Option<Instant>,
}

impl Job {
    /// The status with the elapsed time filled in.
    pub fn snapshot(&self) -> JobStatus {
        let mut status = self.status.clone();
        if status.state.is_empty() {
            status.state = "idle".into();
        }
        if let Some(started) = self.started.filter(|_| status.state == "running") {
            status.seconds = started.elapsed().as_secs_f64();
        }
        status
    }

    /// Records `summary` of the running job.
    pub fn update(&mut self, summary: &IngestSummary) {
        let status = &mut self.status;
        status.files_found = summary.files_found as u64;
        status.files_scanned = summary.files_scanned as u64;
        status.files_indexed = summary.files_indexed as u64;
        status.files_deleted = summary.files_deleted as u64;
        status.chunks_embedded = summary.chunks_embedded as u64;
        status.seconds = summary.elapsed.as_secs_f64();
    }
}

impl Shared {
    /// State for serving `root` with the global options of `args`.
    pub fn new(args: &Args, root: PathBuf) -> anyhow::Result<Self> {
        let repo = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "default".into());
        Ok(Shared {
            db_location: db_for_root(args, &root),
            root,
            repo,
            table_name: args.table.clone(),
            db_options: database_options(args)?,
            model: args.model.clone(),
            device: args.device.clone(),
            // Documents as long as `lancet index` embeds them: its chunk budget plus the
            // header.
            encoder_options: encoder_options(
                args,
                EncoderOptions {
                    max_document_tokens: IngestOptions::default().chunk_tokens + 64,
                    ..EncoderOptions::default()
                },
            ),
            encoder: OnceCell::new(),
            hashes: Mutex::new(None),
            job: Mutex::new(Job::default()),
            watching: std::sync::atomic::AtomicBool::new(false),
            cache: embedding_cache(args),
        })
    }

    /// The model, loading it on first use (on a blocking thread: it reads gigabytes).
    pub async fn encoder(&self) -> LoadedEncoder {
        self.encoder
            .get_or_init(|| async {
                let (model, device) = (self.model.clone(), self.device.clone());
                let options = self.encoder_options.clone();
                let loaded =
                    tokio::task::spawn_blocking(move || load(&model, &device, options)).await;
                loaded.unwrap_or_else(|e| Err(format!("loading the model failed: {e}")))
            })
            .await
            .clone()
    }

    /// Whether the model has finished loading (successfully).
    pub fn model_loaded(&self) -> bool {
        matches!(self.encoder.get(), Some(Ok(_)))
    }

    /// The database, or a message saying how to create one.
    pub async fn database(&self) -> Result<Database, String> {
        if !self.db_location.folder().is_none_or(Path::is_dir) {
            return Err(self.no_index());
        }
        Database::connect(self.db_location.clone(), self.db_options.clone())
            .await
            .map_err(|e| e.to_string())
    }

    /// The served table, or a message saying how to create it.
    pub async fn table(&self) -> Result<ChunkTable, String> {
        match self.database().await?.open_table(&self.table_name).await {
            Ok(table) => Ok(table),
            Err(EngineError::TableNotFound { .. }) => Err(self.no_index()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// How the database is opened (`--consistency`, `--storage-option`).
    pub fn db_options(&self) -> &DatabaseOptions {
        &self.db_options
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    fn no_index(&self) -> String {
        format!(
            "no index of {} yet (looked for table `{}` in {}): call the `reindex` tool, \
             or run `lancet index {}`",
            self.root.display(),
            self.table_name,
            self.db_location,
            self.root.display()
        )
    }

    /// Path to content hash of the served repository's files at `table`'s version.
    pub async fn file_hashes(
        &self,
        table: &ChunkTable,
    ) -> Result<Arc<HashMap<String, String>>, String> {
        let version = table.version().await.map_err(|e| e.to_string())?;
        if let Ok(cached) = self.hashes.lock() {
            if let Some((_, hashes)) = cached.as_ref().filter(|(at, _)| *at == version) {
                return Ok(hashes.clone());
            }
        }
        let hashes = Arc::new(
            table
                .file_hashes(&self.repo)
                .await
                .map_err(|e| e.to_string())?,
        );
        if let Ok(mut cached) = self.hashes.lock() {
            *cached = Some((version, hashes.clone()));
        }
        Ok(hashes)
    }
}

fn load(model: &str, device: &str, options: EncoderOptions) -> LoadedEncoder {
    let devices = DeviceSpec::parse_list(device).map_err(|e| format!("{e}"))?;
    match QwenEncoder::load_on(model, options, &devices) {
        Ok(encoder) => Ok(encoder),
        Err(e) => Err(format!(
            "the model `{model}` could not be loaded ({e}); start the server with \
             `lancet --model DIR mcp` (or LANCET_MODEL=DIR) pointing at a local copy"
        )),
    }
}

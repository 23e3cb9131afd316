//! `index_status` and `reindex`: what the index holds, how fresh it is, and an
//! incremental re-index in the background.

use super::freshness::changed_files;
use super::schema::{JobStatus, ReindexAnswer, StatusAnswer};
use super::state::Shared;
use lancet::engine::ingest::{index_directory, IngestOptions};
use lancet::engine::{ChunkTable, Database, IndexOptions, TableDims, TableMetadata};
use lancet::udf::Encoder;
use std::sync::Arc;
use std::time::Instant;

/// Answers `index_status`.
pub async fn status(shared: &Shared) -> Result<StatusAnswer, String> {
    let job = shared.job.lock().map(|j| j.snapshot()).unwrap_or_default();
    let mut answer = StatusAnswer {
        root: shared.root.display().to_string(),
        database: shared.db_path.display().to_string(),
        indexed: false,
        rows: 0,
        files: 0,
        model: String::new(),
        model_loaded: shared.model_loaded(),
        version: 0,
        files_changed: 0,
        changed_examples: Vec::new(),
        job,
    };
    let table = match shared.table().await {
        Ok(table) => table,
        // No index yet is a state to report, not a failure.
        Err(_) => return Ok(answer),
    };
    let stats = table.stats().await.map_err(|e| e.to_string())?;
    answer.indexed = true;
    answer.rows = stats.rows as u64;
    answer.files = stats.files as u64;
    answer.model = stats.model;
    answer.version = stats.version;
    let known = shared.file_hashes(&table).await?;
    let root = shared.root.clone();
    let exclude = shared.db_path.canonicalize().ok();
    let (changed, examples) =
        tokio::task::spawn_blocking(move || changed_files(&root, exclude, &known))
            .await
            .map_err(|e| e.to_string())?;
    answer.files_changed = changed;
    answer.changed_examples = examples;
    Ok(answer)
}

/// Answers `reindex`: starts an incremental index of the root in the background, unless
/// one runs already here or another process holds the table.
pub async fn reindex(shared: Arc<Shared>) -> Result<ReindexAnswer, String> {
    {
        let job = shared.job.lock().map_err(|e| e.to_string())?;
        if job.status.state == "running" {
            return Err(
                "a reindex job is running already; call index_status for its progress".into(),
            );
        }
    }
    let encoder = shared.encoder().await?;
    let table = open_or_create(&shared, encoder.as_ref()).await?;
    // Another writer (a `lancet index`, a watcher) holds the table: say so now, not later.
    drop(table.lock_for_writing().await.map_err(|e| e.to_string())?);
    let started = {
        let mut job = shared.job.lock().map_err(|e| e.to_string())?;
        job.status = JobStatus {
            state: "running".into(),
            ..JobStatus::default()
        };
        job.started = Some(Instant::now());
        job.snapshot()
    };
    tokio::spawn(async move {
        let outcome = run(&shared, &table, encoder).await;
        if let Ok(mut job) = shared.job.lock() {
            match outcome {
                Ok(()) => job.status.state = "done".into(),
                Err(e) => {
                    job.status.state = "failed".into();
                    job.status.error = e;
                }
            }
        }
    });
    Ok(ReindexAnswer {
        message: "re-indexing in the background (unchanged files are skipped); call \
                  index_status for progress"
            .into(),
        job: started,
    })
}

async fn open_or_create(shared: &Shared, encoder: &dyn Encoder) -> Result<ChunkTable, String> {
    let db = Database::open_with(&shared.db_path, shared.consistency())
        .await
        .map_err(|e| e.to_string())?;
    let model_dim = encoder.identity().dim;
    let wanted = TableDims::default();
    let dims = TableDims {
        full: wanted.full.min(model_dim),
        prefix: wanted.prefix.min(wanted.full.min(model_dim)),
    };
    let metadata =
        TableMetadata::new(encoder.identity().clone(), dims).map_err(|e| e.to_string())?;
    db.open_or_create_table(shared.table_name(), metadata)
        .await
        .map_err(|e| e.to_string())
}

async fn run(shared: &Shared, table: &ChunkTable, encoder: Arc<dyn Encoder>) -> Result<(), String> {
    let options = IngestOptions {
        repo: shared.repo.clone(),
        exclude: shared.db_path.canonicalize().ok(),
        ..IngestOptions::default()
    };
    let mut progress = |summary: &lancet::engine::ingest::IngestSummary| {
        if let Ok(mut job) = shared.job.lock() {
            job.update(summary);
        }
    };
    let summary = index_directory(table, encoder, &shared.root, &options, &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    if let Ok(mut job) = shared.job.lock() {
        job.update(&summary);
    }
    table
        .ensure_indexes(&IndexOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

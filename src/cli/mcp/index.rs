//! `index_status` and `reindex`: what the index holds, how fresh it is, and an
//! incremental re-index in the background.

use super::schema::{JobStatus, ReindexAnswer, ReindexArgs, StatusAnswer};
use super::state::Shared;
use lancet::engine::ingest::{
    changed_files, index_directory, watch_directory, IngestOptions, WalkOptions, WatchEvent,
    WatchOptions,
};
use lancet::engine::{ChunkTable, Database, IndexOptions, TableDims, TableMetadata};
use lancet::udf::Encoder;
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use std::path::{Component, Path};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Where a client that asked for progress of a `reindex` hears it.
pub struct ProgressSink {
    /// The client.
    pub peer: Peer<RoleServer>,
    /// The token of its request.
    pub token: ProgressToken,
}

/// Answers `index_status`.
pub async fn status(shared: &Shared) -> Result<StatusAnswer, String> {
    let job = shared.job.lock().map(|j| j.snapshot()).unwrap_or_default();
    let mut answer = StatusAnswer {
        root: shared.root.display().to_string(),
        database: shared.db_location.to_string(),
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
    let exclude = IngestOptions {
        exclude: crate::cli::index::local_folder(&shared.db_location),
        cache: shared.cache.clone(),
        ..IngestOptions::default()
    }
    .excluded_folders();
    let fresh = tokio::task::spawn_blocking(move || {
        changed_files(&root, &WalkOptions::default(), exclude, &known)
    })
    .await
    .map_err(|e| e.to_string())?;
    answer.files_changed = fresh.changed as u64;
    answer.changed_examples = fresh.examples;
    Ok(answer)
}

/// Answers `reindex`: starts an incremental index of the root (or of `args.paths`) in
/// the background, unless one runs already here or another process holds the table.
/// Progress goes to `sink` as the job advances, when the client asked for it.
pub async fn reindex(
    shared: Arc<Shared>,
    args: ReindexArgs,
    sink: Option<ProgressSink>,
) -> Result<ReindexAnswer, String> {
    let paths = scope_of(&shared.root, &args.paths)?;
    if shared.watching.load(Ordering::SeqCst) {
        let job = shared.job.lock().map(|j| j.snapshot()).unwrap_or_default();
        return Ok(ReindexAnswer {
            message: "this server watches the repository (--watch): saved files are \
                      re-indexed as they change, so there is nothing to start"
                .into(),
            job,
        });
    }
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
            paths: paths.clone(),
            ..JobStatus::default()
        };
        job.started = Some(Instant::now());
        job.snapshot()
    };
    let (tell, heard) = watch::channel(started.clone());
    if let Some(sink) = sink {
        tokio::spawn(report_progress(sink, heard));
    }
    tokio::spawn(async move {
        let outcome = run(&shared, &table, encoder, paths, &tell).await;
        let finished = match shared.job.lock() {
            Ok(mut job) => {
                match outcome {
                    Ok(()) => job.status.state = "done".into(),
                    Err(e) => {
                        job.status.state = "failed".into();
                        job.status.error = e;
                    }
                }
                job.snapshot()
            }
            Err(_) => return,
        };
        // The last notification goes out before the state reads `done` anywhere else.
        let _ = tell.send(finished);
    });
    Ok(ReindexAnswer {
        message: "re-indexing in the background (unchanged files are skipped); call \
                  index_status for progress"
            .into(),
        job: started,
    })
}

/// Sends the job's progress to the client as it changes, until the job ends.
async fn report_progress(sink: ProgressSink, mut heard: watch::Receiver<JobStatus>) {
    while heard.changed().await.is_ok() {
        let status = heard.borrow_and_update().clone();
        let total = (status.files_found > 0).then_some(status.files_found as f64);
        let message = match status.state.as_str() {
            "running" => format!(
                "{} of {} files read, {} chunks embedded",
                status.files_scanned, status.files_found, status.chunks_embedded
            ),
            "failed" => format!("failed: {}", status.error),
            state => format!(
                "{state}: {} files indexed, {} removed, {} chunks embedded",
                status.files_indexed, status.files_deleted, status.chunks_embedded
            ),
        };
        let mut note =
            ProgressNotificationParam::new(sink.token.clone(), status.files_scanned as f64)
                .with_message(message);
        if let Some(total) = total {
            note = note.with_total(total);
        }
        let ended = status.state != "running";
        if sink.peer.notify_progress(note).await.is_err() || ended {
            return;
        }
    }
}

/// The paths of a `reindex` call as the walk takes them: relative to `root`,
/// `/`-separated. A path outside the root is refused.
fn scope_of(root: &Path, paths: &[String]) -> Result<Vec<String>, String> {
    let mut scope = Vec::new();
    for given in paths {
        let path = Path::new(given);
        let inside = if path.is_absolute() {
            // A symlinked spelling of the root still names a path inside it.
            let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            canonical
                .strip_prefix(root)
                .or_else(|_| path.strip_prefix(root))
                .map(Path::to_path_buf)
                .map_err(|_| outside(given, root))?
        } else {
            path.to_path_buf()
        };
        let mut parts = Vec::new();
        for component in inside.components() {
            match component {
                Component::Normal(part) => parts.push(
                    part.to_str()
                        .ok_or_else(|| format!("`{given}` is not valid UTF-8"))?
                        .to_string(),
                ),
                Component::CurDir => {}
                _ => return Err(outside(given, root)),
            }
        }
        if parts.is_empty() {
            return Ok(Vec::new()); // the root itself: the whole repository
        }
        scope.push(parts.join("/"));
    }
    Ok(scope)
}

fn outside(given: &str, root: &Path) -> String {
    format!(
        "`{given}` is outside the repository {}: give paths relative to its root",
        root.display()
    )
}

pub async fn open_or_create(shared: &Shared, encoder: &dyn Encoder) -> Result<ChunkTable, String> {
    let db = Database::connect(shared.db_location.clone(), shared.db_options().clone())
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

async fn run(
    shared: &Shared,
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    paths: Vec<String>,
    tell: &watch::Sender<JobStatus>,
) -> Result<(), String> {
    let options = IngestOptions {
        repo: shared.repo.clone(),
        exclude: crate::cli::index::local_folder(&shared.db_location),
        walk: WalkOptions {
            only: paths,
            ..WalkOptions::default()
        },
        cache: shared.cache.clone(),
        ..IngestOptions::default()
    };
    let mut progress = |summary: &lancet::engine::ingest::IngestSummary| {
        if let Ok(mut job) = shared.job.lock() {
            job.update(summary);
            let _ = tell.send(job.snapshot());
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

/// `--watch`: indexes the repository, then keeps the index current as files change,
/// until the server ends. Each burst shows in `index_status` as the job.
pub async fn watch(shared: Arc<Shared>) -> Result<(), String> {
    let encoder = shared.encoder().await?;
    let table = open_or_create(&shared, encoder.as_ref()).await?;
    let options = IngestOptions {
        repo: shared.repo.clone(),
        exclude: crate::cli::index::local_folder(&shared.db_location),
        cache: shared.cache.clone(),
        ..IngestOptions::default()
    };
    shared.watching.store(true, Ordering::SeqCst);
    let mut on_event = |event: WatchEvent<'_>| {
        let Ok(mut job) = shared.job.lock() else {
            return;
        };
        match event {
            WatchEvent::CaughtUp(summary) | WatchEvent::Indexed { summary, .. } => {
                job.update(summary);
                job.status.state = "watching".into();
                job.status.error.clear();
            }
            WatchEvent::Optimized(_) => {}
            WatchEvent::Failed(e) => job.status.error = e.to_string(),
        }
    };
    let root = shared.root.clone();
    let watched = watch_directory(
        &table,
        encoder,
        &root,
        &options,
        &WatchOptions::default(),
        std::future::pending::<()>(),
        &mut on_event,
    )
    .await;
    shared.watching.store(false, Ordering::SeqCst);
    watched.map_err(|e| e.to_string())
}

//! The indexing job as a pipeline of stages joined by bounded queues:
//! scan (readers) -> grouping and reuse lookup -> encoder thread -> writer.
//!
//! With [`VectorTiming::AfterText`] the job runs the pipeline twice: first every
//! changed file is committed with its text (vectors only where the table or the machine
//! cache has them), then the rows without vectors are read back in priority order
//! ([`super::priority`]) and given their vectors, one commit per batch.

use super::machine_cache::MachineCache;
use super::pending::{embedded_text, EncoderTokens, PendingChunk};
use super::scan::{scan, ChunkedFile, FileOutcome, ScanEvent, ScanOptions};
use super::stage::ShardWriter;
use super::summary::{IngestSummary, SkipReason};
use super::walk::is_at_or_under;
use super::{IngestOptions, Progress, VectorTiming, HEADER_TOKENS};
use crate::error::{Error, Result};
use crate::store::{lock, ChunkEmbedding, ChunkTable, EmbeddedChunk, IndexOptions, WriterLock};
use lancet_chunk::{ChunkOptions, Chunker};
use lancet_udf::{Encoder, Task};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc as queue;

/// How often progress is reported while files are read (commits always report).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How often rows given their vectors after their text are committed, at most: often
/// enough that coverage rises while a long job runs and a killed job loses little, rarely
/// enough that a fast encoder does not make a version per batch.
const FILL_COMMIT_EVERY: Duration = Duration::from_secs(10);

/// Rows without vectors read from the table at a time by the embedding phase.
const FILL_READ_ROWS: usize = 2_048;

/// Counts of one group, added to the summary when the group is committed.
#[derive(Debug, Default, Clone)]
struct GroupStats {
    files: usize,
    bytes: u64,
    lossy: usize,
    syntax_errors: usize,
    reused: usize,
    cached: usize,
    embedded: usize,
    tokens: usize,
    truncated: usize,
}

impl GroupStats {
    fn add(&mut self, other: &GroupStats) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.lossy += other.lossy;
        self.syntax_errors += other.syntax_errors;
        self.reused += other.reused;
        self.cached += other.cached;
        self.embedded += other.embedded;
        self.tokens += other.tokens;
        self.truncated += other.truncated;
    }
}

/// How a group's rows are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitKind {
    /// They become the complete rows of their files (inserted, replaced, removed).
    Files,
    /// They are rows committed earlier without vectors, now given theirs.
    Vectors,
}

/// A group of files on its way to the encoder.
struct EmbedJob {
    scope: Vec<String>,
    /// Files gone from the tree, removed in the same commit (the last group's).
    removed: Vec<String>,
    ready: Vec<EmbeddedChunk>,
    to_embed: Vec<PendingChunk>,
    stats: GroupStats,
    kind: CommitKind,
}

/// A group of files ready to commit.
struct WriteJob {
    scope: Vec<String>,
    removed: Vec<String>,
    rows: Vec<EmbeddedChunk>,
    stats: GroupStats,
    kind: CommitKind,
}

pub(super) async fn run(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    options: &IngestOptions,
    progress: &mut Progress<'_>,
) -> Result<IngestSummary> {
    table.check_encoder(encoder.identity())?;
    table.check_writable()?;
    let writer = table.lock_for_writing().await?;
    run_locked(table, encoder, root, options, progress, &writer).await
}

/// [`run`] for a caller that holds the table's writer lock already (a watcher holds it
/// for its whole life).
pub(super) async fn run_locked(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    options: &IngestOptions,
    progress: &mut Progress<'_>,
    _writer: &WriterLock,
) -> Result<IngestSummary> {
    run_into(table, encoder, root, options, progress, None).await
}

/// [`run`] for one shard of a distributed job: what it would commit to `table` goes to
/// `staged` instead, with its vectors, and `table` is only read.
pub(super) async fn run_staged(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    options: &IngestOptions,
    progress: &mut Progress<'_>,
    staged: &ShardWriter,
) -> Result<IngestSummary> {
    let options = IngestOptions {
        vectors: VectorTiming::WithText,
        ..options.clone()
    };
    run_into(table, encoder, root, &options, progress, Some(staged)).await
}

async fn run_into(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    options: &IngestOptions,
    progress: &mut Progress<'_>,
    staged: Option<&ShardWriter>,
) -> Result<IngestSummary> {
    table.check_encoder(encoder.identity())?;
    if !root.is_dir() {
        return Err(Error::Io {
            path: root.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let timing = effective_timing(table, options.vectors)?;
    let started = Instant::now();
    let summary = Mutex::new(IngestSummary::default());
    let progress = Mutex::new(progress);
    let report = || {
        let mut snapshot = lock(&summary).clone();
        snapshot.elapsed = started.elapsed();
        if let Ok(mut progress) = progress.lock() {
            (*progress)(&snapshot);
        }
    };
    let writer = Writer {
        table,
        repo: &options.repo,
        encoder: encoder.as_ref(),
        known: Arc::new(table.file_hashes(&options.repo).await?),
        summary: &summary,
        report: &report,
        commit_chunks: options.commit_chunks.max(1),
        // A shard does not write the table: the commit of the staged rows does.
        numerics_recorded: staged.is_some(),
        committed: false,
        staged,
    };
    let stage = EncodeStage {
        encoder: encoder.clone(),
        batch: options.embed_batch.max(1),
        recent: RecentVectors::new(options.commit_chunks.max(1024) * 2),
        machine_cache: options
            .cache
            .clone()
            .map(|cache| MachineCache::new(cache, encoder.as_ref())),
        defer: timing != VectorTiming::WithText,
    };
    let (mut stage, mut writer) = scan_phase(root, options, stage, writer).await?;
    if timing != VectorTiming::WithText && writer.committed {
        // Rows without vectors are found by text: the full-text index (and the chunk id
        // index the embedding phase's updates join on) must exist before the long phase.
        if let Err(e) = table.ensure_indexes(&IndexOptions::default()).await {
            tracing::warn!("could not create the table's indexes before embedding: {e}");
        }
        lock(&summary).text_pass_seconds = started.elapsed().as_secs_f64();
        report();
    }
    // Rows left without vectors, by this job or by an earlier one that was stopped, are
    // embedded now, unless the job leaves them for later. A run limited to some paths
    // (a watcher's burst) that embeds inline leaves the rest of the table alone.
    let whole_tree = !options.walk.is_partial();
    // A shard leaves them to a whole-tree run: it stages files, not vector updates.
    let fills = staged.is_none()
        && (timing == VectorTiming::AfterText
            || (timing == VectorTiming::WithText && whole_tree && table.accepts_pending_rows()));
    if fills {
        stage.defer = false;
        (stage, writer) = fill_phase(root, options, stage, writer).await?;
    }
    if let Some(cache) = &stage.machine_cache {
        cache.finish();
    }
    drop(writer);
    // Counting reads a column of the repository's rows: a watcher's small burst, which
    // embeds inline and fills nothing, leaves it out.
    if fills || timing == VectorTiming::Later {
        let pending = table.vector_coverage(Some(&options.repo)).await?.pending();
        lock(&summary).chunks_pending = pending as usize;
    }
    report();
    let mut summary = lock(&summary).clone();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The timing a job on `table` can use: a table made before rows could wait for their
/// vectors embeds inline, and cannot leave its rows for later.
fn effective_timing(table: &ChunkTable, asked: VectorTiming) -> Result<VectorTiming> {
    if table.accepts_pending_rows() {
        return Ok(asked);
    }
    match asked {
        VectorTiming::Later => Err(Error::InvalidArgument(format!(
            "table `{}` was created before rows could wait for their vectors (layout \
             version {}); index it with its vectors, or re-create it to commit text first",
            table.name(),
            table.metadata().schema_version
        ))),
        _ => Ok(VectorTiming::WithText),
    }
}

/// Phase one: scans the tree and commits every new or changed file, group by group
/// (with its vectors, or with its text first when the stage defers the encoder).
async fn scan_phase<'a>(
    root: &Path,
    options: &IngestOptions,
    stage: EncodeStage,
    writer: Writer<'a>,
) -> Result<(EncodeStage, Writer<'a>)> {
    let table = writer.table;
    let summary = writer.summary;
    let report = writer.report;
    let known = writer.known.clone();
    let events = start_scan(root, options, stage.encoder.clone(), known.clone());
    through_encoder(stage, writer, |embed_tx| async move {
        let mut seen = Seen::default();
        let mut group = Vec::new();
        let mut group_chunks = 0;
        let mut events = events;
        let mut last_report = Instant::now();
        while let Some(event) = events.recv().await {
            if matches!(event, ScanEvent::File(_)) && lock(summary).files_found > 0 {
                lock(summary).files_scanned += 1;
            }
            if let ScanEvent::File(outcome) = &event {
                seen.note(outcome);
            }
            match event {
                ScanEvent::Found(n) => lock(summary).files_found = n,
                ScanEvent::File(FileOutcome::Skipped(reason, _)) => lock(summary).skip(reason),
                ScanEvent::File(FileOutcome::Unreadable(_)) => {
                    lock(summary).skip(SkipReason::Unreadable)
                }
                ScanEvent::File(FileOutcome::Unchanged(_)) => lock(summary).files_unchanged += 1,
                ScanEvent::File(FileOutcome::Chunked(file)) => {
                    group_chunks += file.chunks.len();
                    group.push(file);
                    if group.len() >= options.commit_files || group_chunks >= options.commit_chunks
                    {
                        let job = prepare(table, std::mem::take(&mut group)).await?;
                        group_chunks = 0;
                        if embed_tx.send(job).await.is_err() {
                            break; // the encoder or writer failed; its error is returned
                        }
                    }
                }
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                report();
                last_report = Instant::now();
            }
        }
        // Files gone from the tree leave in the last commit, beside the last group.
        let removed = vanished(&known, &seen, options)?;
        if !group.is_empty() || !removed.is_empty() {
            let mut job = prepare(table, group).await?;
            job.removed = removed;
            let _ = embed_tx.send(job).await;
        }
        Ok(())
    })
    .await
}

/// Phase two: reads the rows of the repository that have no vectors yet, most recently
/// changed files first, and gives them their vectors, a commit at most every
/// [`FILL_COMMIT_EVERY`] (and every `commit_chunks` rows).
async fn fill_phase<'a>(
    root: &Path,
    options: &IngestOptions,
    stage: EncodeStage,
    writer: Writer<'a>,
) -> Result<(EncodeStage, Writer<'a>)> {
    let table = writer.table;
    let waiting = table.pending_rows(&options.repo).await?;
    if waiting.is_empty() {
        return Ok((stage, writer));
    }
    let ordered = super::priority::most_recent_first(root, waiting);
    let batch = stage.batch;
    through_encoder(stage, writer, |embed_tx| async move {
        for part in ordered.chunks(FILL_READ_ROWS) {
            let ids: Vec<&str> = part.iter().map(|row| row.chunk_id.as_str()).collect();
            let position: HashMap<&str, usize> =
                ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            let mut chunks = table.chunks_by_id(&ids).await?;
            chunks.sort_by_key(|chunk| position.get(chunk.chunk_id.as_str()).copied());
            let mut to_embed: Vec<PendingChunk> = chunks
                .into_iter()
                .map(|chunk| PendingChunk {
                    embedded: embedded_text(&chunk.path, chunk.symbol.as_deref(), &chunk.text),
                    chunk,
                })
                .collect();
            // One encoder batch per job: the writer gathers them into commits by time.
            while !to_embed.is_empty() {
                let rest = to_embed.split_off(batch.min(to_embed.len()));
                let job = EmbedJob {
                    scope: Vec::new(),
                    removed: Vec::new(),
                    ready: Vec::new(),
                    to_embed: std::mem::replace(&mut to_embed, rest),
                    stats: GroupStats::default(),
                    kind: CommitKind::Vectors,
                };
                if embed_tx.send(job).await.is_err() {
                    return Ok(()); // the encoder or writer failed; its error is returned
                }
            }
        }
        Ok(())
    })
    .await
}

/// Runs `produce` (which sends groups to the encoder) beside the encoder thread and the
/// writer, until all three are done; returns the stage and the writer for the next phase.
async fn through_encoder<'a, P, F>(
    stage: EncodeStage,
    mut writer: Writer<'a>,
    produce: P,
) -> Result<(EncodeStage, Writer<'a>)>
where
    P: FnOnce(queue::Sender<EmbedJob>) -> F,
    F: Future<Output = Result<()>>,
{
    let (embed_tx, embed_rx) = queue::channel::<EmbedJob>(1);
    let (write_tx, mut write_rx) = queue::channel::<Result<WriteJob>>(1);
    let encoder_thread = std::thread::Builder::new()
        .name("lancet-encode".into())
        .spawn(move || stage.run(embed_rx, write_tx))
        .map_err(|e| Error::Io {
            path: "encoder thread".into(),
            source: e,
        })?;
    let write = async {
        let mut vectors = FillBuffer::default();
        while let Some(job) = write_rx.recv().await {
            let job = job?;
            match job.kind {
                CommitKind::Files => writer.commit(job).await?,
                CommitKind::Vectors => {
                    vectors.add(job);
                    if vectors.due(writer.commit_chunks) {
                        writer.commit(vectors.take()).await?;
                    }
                }
            }
        }
        if !vectors.is_empty() {
            writer.commit(vectors.take()).await?;
        }
        Ok::<_, Error>(())
    };
    let joined = tokio::try_join!(produce(embed_tx), write);
    // The encoder thread ends once its queues close. The job queue closed with the
    // producing stage; the result queue is closed here, for when the join ended early
    // on an error: an encoder blocked handing a group to a writer that is gone would
    // otherwise wait forever.
    drop(write_rx);
    let stage = encoder_thread.join();
    joined?;
    let stage = stage.map_err(|_| Error::Ingest("the encoder thread panicked".into()))?;
    Ok((stage, writer))
}

/// Rows given their vectors, gathered into one commit.
struct FillBuffer {
    rows: Vec<EmbeddedChunk>,
    stats: GroupStats,
    since: Instant,
}

impl Default for FillBuffer {
    fn default() -> Self {
        FillBuffer {
            rows: Vec::new(),
            stats: GroupStats::default(),
            since: Instant::now(),
        }
    }
}

impl FillBuffer {
    fn add(&mut self, job: WriteJob) {
        if self.rows.is_empty() {
            self.since = Instant::now();
        }
        self.rows.extend(job.rows);
        self.stats.add(&job.stats);
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn due(&self, max_rows: usize) -> bool {
        self.rows.len() >= max_rows || self.since.elapsed() >= FILL_COMMIT_EVERY
    }

    fn take(&mut self) -> WriteJob {
        let taken = std::mem::take(self);
        WriteJob {
            scope: Vec::new(),
            removed: Vec::new(),
            rows: taken.rows,
            stats: taken.stats,
            kind: CommitKind::Vectors,
        }
    }
}

/// Starts the scan of `root` as `options` say, chunks sized with `encoder`'s tokenizer.
pub(super) fn start_scan(
    root: &Path,
    options: &IngestOptions,
    encoder: Arc<dyn Encoder>,
    known: Arc<HashMap<String, String>>,
) -> queue::Receiver<ScanEvent> {
    let mut chunk_options =
        ChunkOptions::for_tokens(options.chunk_tokens.saturating_sub(HEADER_TOKENS).max(32));
    chunk_options.syntax = options.syntax;
    chunk_options.counter = EncoderTokens::for_encoder(encoder);
    scan(
        root.to_path_buf(),
        ScanOptions {
            repo: options.repo.clone(),
            walk: options.walk.clone(),
            exclude: options.excluded_folders(),
            threads: options.threads,
            chunker: Chunker::new(chunk_options),
            queue: 256,
        },
        known,
    )
}

/// The files the table holds that are gone from the tree. A run limited to some paths
/// says nothing about files outside them.
pub(super) fn vanished(
    known: &HashMap<String, String>,
    seen: &Seen,
    options: &IngestOptions,
) -> Result<Vec<String>> {
    let mut gone: Vec<String> = known
        .keys()
        .filter(|path| options.walk.covers(path) && seen.is_gone(path))
        .cloned()
        .collect();
    gone.sort();
    let whole_tree = !options.walk.is_partial();
    if whole_tree && !options.allow_remove_all && !gone.is_empty() && gone.len() == known.len() {
        refuse_to_remove_all(&gone, seen, &options.repo)?;
    }
    Ok(gone)
}

/// Fails when a run would remove every file of `repo` although some are still on
/// disk, skipped for this run's options (a size limit wrapped to zero, a wrong
/// `.ignore`): the whole index would go for one mistake, so the user must say so.
fn refuse_to_remove_all(vanished: &[String], seen: &Seen, repo: &str) -> Result<()> {
    let mut on_disk: BTreeMap<SkipReason, usize> = BTreeMap::new();
    for path in vanished {
        if let Some(reason) = seen.skipped_reason(path) {
            *on_disk.entry(reason).or_default() += 1;
        }
    }
    if on_disk.is_empty() {
        return Ok(());
    }
    let reasons: Vec<String> = on_disk
        .iter()
        .map(|(reason, n)| format!("{n} {}", reason.as_str()))
        .collect();
    Err(Error::Ingest(format!(
        "refusing to remove all {} indexed files of repository `{repo}`: {} of them are \
         still on disk but this run skipped them ({}); check the size, language and \
         ignore options, or pass --allow-remove-all to remove them anyway",
        vanished.len(),
        on_disk.values().sum::<usize>(),
        reasons.join(", ")
    )))
}

/// What the scan saw of the tree: the files it read, the files and folders it skipped,
/// and the unreadable paths whose rows must stay because nothing says they changed.
#[derive(Default)]
pub(super) struct Seen {
    files: HashSet<String>,
    /// Skipped files and folders still on disk, with the reason.
    skipped: HashMap<String, SkipReason>,
    /// Unreadable files and folders (a folder keeps every file below it).
    kept: Vec<String>,
    /// An unreadable path the walk could not name, or the root itself.
    keep_all: bool,
}

impl Seen {
    /// Records what one file's outcome says about the tree.
    pub(super) fn note(&mut self, outcome: &FileOutcome) {
        match outcome {
            FileOutcome::Skipped(reason, Some(path)) if *reason != SkipReason::Vanished => {
                self.skipped.insert(path.clone(), *reason);
            }
            FileOutcome::Skipped(..) => {}
            FileOutcome::Unreadable(path) => self.keep_under(path.clone()),
            FileOutcome::Unchanged(path) => {
                self.files.insert(path.clone());
            }
            FileOutcome::Chunked(file) => {
                self.files.insert(file.rel_path.clone());
            }
        }
    }

    fn keep_under(&mut self, path: Option<String>) {
        match path {
            Some(path) => self.kept.push(path),
            None => self.keep_all = true,
        }
    }

    /// Whether a file the table holds is gone from the tree: not read, and not under
    /// an unreadable path.
    fn is_gone(&self, path: &str) -> bool {
        !self.keep_all
            && !self.files.contains(path)
            && !self.kept.iter().any(|kept| is_at_or_under(path, kept))
    }

    /// Why a file the table holds was skipped, when it (or a folder above it) was.
    fn skipped_reason(&self, path: &str) -> Option<SkipReason> {
        let folders = path.rmatch_indices('/').map(|(slash, _)| &path[..slash]);
        std::iter::once(path)
            .chain(folders)
            .find_map(|at| self.skipped.get(at).copied())
    }
}

/// Looks up vectors the table already has for the group's chunk texts.
async fn prepare(table: &ChunkTable, files: Vec<ChunkedFile>) -> Result<EmbedJob> {
    let hashes: Vec<&str> = files
        .iter()
        .flat_map(|f| f.chunks.iter().map(|c| c.chunk.content_hash.as_str()))
        .collect();
    let stored = table.vectors_by_content(&hashes).await?;
    let mut stats = GroupStats {
        files: files.len(),
        ..GroupStats::default()
    };
    let mut scope = Vec::with_capacity(files.len());
    let mut ready = Vec::new();
    let mut to_embed = Vec::new();
    for file in files {
        stats.bytes += file.bytes;
        stats.lossy += usize::from(file.lossy);
        stats.syntax_errors += usize::from(file.syntax_errors);
        scope.push(file.rel_path);
        for pending in file.chunks {
            match stored.get(&pending.chunk.content_hash) {
                Some((full, prefix)) => {
                    stats.reused += 1;
                    ready.push(EmbeddedChunk {
                        chunk: pending.chunk,
                        embedding: ChunkEmbedding::Stored {
                            full: full.clone(),
                            prefix: prefix.clone(),
                        },
                    });
                }
                None => to_embed.push(pending),
            }
        }
    }
    Ok(EmbedJob {
        scope,
        removed: Vec::new(),
        ready,
        to_embed,
        stats,
        kind: CommitKind::Files,
    })
}

/// Vectors embedded recently in this job, by content hash: groups still in flight are
/// not in the table yet, and their texts must not be embedded twice.
struct RecentVectors {
    vectors: HashMap<String, Arc<Vec<f32>>>,
    order: VecDeque<String>,
    capacity: usize,
}

impl RecentVectors {
    fn new(capacity: usize) -> Self {
        RecentVectors {
            vectors: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, hash: &str) -> Option<Arc<Vec<f32>>> {
        self.vectors.get(hash).cloned()
    }

    fn insert(&mut self, hash: String, vector: Arc<Vec<f32>>) {
        if self.vectors.insert(hash.clone(), vector).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.vectors.remove(&old);
            }
        }
    }
}

/// The encoder thread's state: the model, the vectors of this job, the machine cache.
struct EncodeStage {
    encoder: Arc<dyn Encoder>,
    batch: usize,
    recent: RecentVectors,
    machine_cache: Option<MachineCache>,
    /// Leave texts that neither the job nor the machine cache has a vector for without
    /// vectors, rather than embed them (the text-first phase).
    defer: bool,
}

impl EncodeStage {
    /// Embeds groups until the job queue closes or a group fails; returns itself for the
    /// next phase.
    fn run(
        mut self,
        mut jobs: queue::Receiver<EmbedJob>,
        written: queue::Sender<Result<WriteJob>>,
    ) -> Self {
        while let Some(job) = jobs.blocking_recv() {
            let result = self.embed_group(job);
            let failed = result.is_err();
            if written.blocking_send(result).is_err() || failed {
                break;
            }
        }
        self
    }

    /// Embeds the group's new texts, each distinct text once, those the machine cache
    /// holds not at all (and, deferring, none: their rows wait for their vectors).
    fn embed_group(&mut self, job: EmbedJob) -> Result<WriteJob> {
        let EmbedJob {
            scope,
            removed,
            mut ready,
            to_embed,
            mut stats,
            kind,
        } = job;
        let mut unique: Vec<&PendingChunk> = Vec::new();
        let mut queued = HashSet::new();
        for pending in &to_embed {
            let hash = pending.chunk.content_hash.as_str();
            if self.recent.get(hash).is_none() && queued.insert(hash) {
                unique.push(pending);
            }
        }
        // Texts this group finds a vector for itself (cache or encoder), counted once
        // each; every other row with a vector reuses one.
        let mut found: HashSet<&str> = HashSet::new();
        let mut misses: Vec<&PendingChunk> = Vec::with_capacity(unique.len());
        for pending in unique {
            match self
                .machine_cache
                .as_ref()
                .and_then(|c| c.get(&pending.embedded))
            {
                Some(vector) => {
                    stats.cached += 1;
                    found.insert(&pending.chunk.content_hash);
                    self.recent
                        .insert(pending.chunk.content_hash.clone(), Arc::new(vector));
                }
                None => misses.push(pending),
            }
        }
        if !self.defer {
            for part in misses.chunks(self.batch) {
                let texts: Vec<&str> = part.iter().map(|p| p.embedded.as_str()).collect();
                let embeddings = self.encoder.encode(&texts, Task::Nl2Code.document())?;
                stats.embedded += texts.len();
                stats.tokens += embeddings.tokens;
                stats.truncated += embeddings.truncated;
                for (pending, vector) in part.iter().zip(embeddings.rows()) {
                    if let Some(cache) = &mut self.machine_cache {
                        cache.put(&pending.embedded, vector);
                    }
                    found.insert(&pending.chunk.content_hash);
                    self.recent.insert(
                        pending.chunk.content_hash.clone(),
                        Arc::new(vector.to_vec()),
                    );
                }
            }
        }
        let mut counted: HashSet<String> = HashSet::new();
        for pending in &to_embed {
            let hash = pending.chunk.content_hash.as_str();
            let embedding = match self.recent.get(hash) {
                Some(vector) => {
                    if !found.contains(hash) || !counted.insert(hash.to_string()) {
                        stats.reused += 1;
                    }
                    ChunkEmbedding::Pooled(vector.as_ref().clone())
                }
                None if self.defer => ChunkEmbedding::Pending,
                None => {
                    return Err(Error::Ingest(
                        "the encoder returned fewer vectors than texts".into(),
                    ))
                }
            };
            ready.push(EmbeddedChunk {
                chunk: pending.chunk.clone(),
                embedding,
            });
        }
        Ok(WriteJob {
            scope,
            removed,
            rows: ready,
            stats,
            kind,
        })
    }
}

/// The committing stage: writes groups and keeps the job's summary.
struct Writer<'a> {
    table: &'a ChunkTable,
    repo: &'a str,
    encoder: &'a dyn Encoder,
    /// File hashes the table held when the job started.
    known: Arc<HashMap<String, String>>,
    summary: &'a Mutex<IngestSummary>,
    report: &'a (dyn Fn() + Sync),
    /// Most rows given their vectors in one commit.
    commit_chunks: usize,
    numerics_recorded: bool,
    /// Whether anything was committed.
    committed: bool,
    /// Where a shard's groups go instead of the table.
    staged: Option<&'a ShardWriter>,
}

impl Writer<'_> {
    /// Commits one group (and the files removed with it). Files the table did not hold
    /// when the job started are appended: the writer lock guarantees no other job added
    /// them since, and an append skips the merge's scan of the table for rows to replace
    /// (the cost that grows with the table).
    async fn commit(&mut self, job: WriteJob) -> Result<()> {
        let table = self.table;
        // Before the first vectors it made land: `status` says what embedded them.
        if job.stats.embedded > 0 && !self.numerics_recorded {
            self.numerics_recorded = true;
            if let Err(e) = table.record_numerics(&self.encoder.numerics()).await {
                tracing::warn!("could not record the encoder's numerics: {e}");
            }
        }
        let removed = job.removed.len();
        let report = match (job.kind, self.staged) {
            (CommitKind::Files, Some(staged)) => {
                staged
                    .add(self.repo, job.scope, job.removed, &job.rows)
                    .await?
            }
            (CommitKind::Vectors, _) => table.fill_vectors(&job.rows).await?,
            (CommitKind::Files, None) => {
                let all_new = job.removed.is_empty()
                    && job.scope.iter().all(|path| !self.known.contains_key(path));
                if all_new {
                    table.append(&job.rows).await?
                } else {
                    let scope: Vec<(String, String)> = job
                        .scope
                        .into_iter()
                        .chain(job.removed)
                        .map(|path| (self.repo.to_string(), path))
                        .collect();
                    table.replace_files(&scope, &job.rows).await?
                }
            }
        };
        let stats = job.stats;
        {
            let mut s = lock(self.summary);
            s.files_deleted += removed;
            s.files_indexed += stats.files;
            s.bytes_indexed += stats.bytes;
            s.lossy_utf8 += stats.lossy;
            s.syntax_errors += stats.syntax_errors;
            s.chunks_reused += stats.reused;
            s.chunks_cached += stats.cached;
            s.chunks_embedded += stats.embedded;
            s.tokens_embedded += stats.tokens;
            s.truncated += stats.truncated;
            match job.kind {
                CommitKind::Files => {
                    s.chunks_added += report.inserted;
                    s.chunks_updated += report.updated;
                }
                CommitKind::Vectors => s.chunks_vectors_added += report.updated,
            }
            s.chunks_removed += report.deleted;
            s.commits += 1;
        }
        self.committed = true;
        (self.report)();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn unreadable_paths_keep_their_files_and_only_theirs() {
        let mut seen = Seen::default();
        seen.files.insert("src/read.rs".into());
        seen.keep_under(Some("src/locked.rs".into()));
        seen.keep_under(Some("private".into()));
        assert!(!seen.is_gone("src/read.rs"));
        assert!(!seen.is_gone("src/locked.rs"));
        assert!(!seen.is_gone("private/a.rs"));
        assert!(!seen.is_gone("private/deep/b.rs"));
        assert!(seen.is_gone("private_not_below.rs"));
        assert!(seen.is_gone("src/locked.rs.bak"));
        assert!(seen.is_gone("src/deleted.rs"));
        seen.keep_under(None);
        assert!(!seen.is_gone("src/deleted.rs"));
    }
}

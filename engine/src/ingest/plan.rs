//! `index --dry-run`: what a run would do, found by walking and chunking the tree
//! without embedding or writing anything, and what it would cost.

use super::machine_cache::MachineCache;
use super::pending::embedded_text;
use super::pipeline::{start_scan, vanished, Seen};
use super::scan::{FileOutcome, ScanEvent};
use super::{IngestOptions, VectorTiming};
use crate::error::{Error, Result};
use crate::store::ChunkTable;
use lancet_udf::{Encoder, Task};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Columns of a row besides its text and vectors (ids, hashes, path, symbol, lines),
/// in bytes: an allowance for the size estimate, not a measurement.
const ROW_OVERHEAD_BYTES: u64 = 200;

/// Texts kept to time the encoder on.
const SAMPLE_TEXTS: usize = 32;

/// What an indexing run would do.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestPlan {
    /// Files the walk found with a known language.
    pub files_found: usize,
    /// New or changed files: chunked and written.
    pub files_changed: usize,
    /// Files whose hash matches the table.
    pub files_unchanged: usize,
    /// Files the table holds that are gone from the tree.
    pub files_deleted: usize,
    /// Files skipped (too large, binary, generated, ...).
    pub files_skipped: usize,
    /// Chunks of the changed files.
    pub chunks: usize,
    /// Rows the table holds without vectors (left by a stopped or text-only job) in
    /// files this run does not replace: embedded by this run too.
    pub chunks_pending: usize,
    /// Chunks whose text the table (or this run) embeds already.
    pub chunks_reused: usize,
    /// Distinct texts the machine-wide embedding cache holds (not embedded again).
    pub texts_cached: usize,
    /// Distinct texts the encoder would embed.
    pub texts_to_embed: usize,
    /// Tokens the encoder would process (prompts included).
    pub tokens_to_embed: usize,
    /// Whether `tokens_to_embed` was counted with the model's tokenizer (else estimated).
    pub tokens_counted: bool,
    /// Bytes the new rows take, approximately (text, vectors and an allowance for the
    /// other columns; before Lance's compression).
    pub estimated_bytes: u64,
    /// Texts the encoder would embed, a few, for [`calibrate`].
    #[serde(skip)]
    pub sample: Vec<String>,
}

/// Walks and chunks `root` as [`super::index_directory`] would, against `table` when it
/// exists, and counts what the run would embed and write. Nothing is embedded or written.
pub async fn plan_directory(
    table: Option<&ChunkTable>,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    options: &IngestOptions,
) -> Result<IngestPlan> {
    if !root.is_dir() {
        return Err(Error::Io {
            path: root.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let known = match table {
        Some(table) => {
            table.check_encoder(encoder.identity())?;
            table.file_hashes(&options.repo).await?
        }
        None => HashMap::new(),
    };
    let known = Arc::new(known);
    let mut events = start_scan(root, options, encoder.clone(), known.clone());
    let mut plan = IngestPlan::default();
    let mut seen = Seen::default();
    // Content hash -> embedded text, for each distinct text of the changed files.
    let mut texts: HashMap<String, String> = HashMap::new();
    let mut text_bytes = 0u64;
    let mut changed: Vec<String> = Vec::new();
    while let Some(event) = events.recv().await {
        let outcome = match event {
            ScanEvent::Found(n) => {
                plan.files_found = n;
                continue;
            }
            ScanEvent::File(outcome) => outcome,
        };
        seen.note(&outcome);
        match outcome {
            FileOutcome::Skipped(..) | FileOutcome::Unreadable(_) => plan.files_skipped += 1,
            FileOutcome::Unchanged(_) => plan.files_unchanged += 1,
            FileOutcome::Chunked(file) => {
                plan.files_changed += 1;
                changed.push(file.rel_path.clone());
                plan.chunks += file.chunks.len();
                for pending in file.chunks {
                    text_bytes += pending.chunk.text.len() as u64;
                    texts
                        .entry(pending.chunk.content_hash)
                        .or_insert(pending.embedded);
                }
            }
        }
    }
    let deleted = vanished(&known, &seen, options)?;
    plan.files_deleted = deleted.len();
    // Rows an earlier job left without vectors, in files this run leaves as they are:
    // the run embeds them too.
    if let Some(table) = table.filter(|_| options.vectors != VectorTiming::Later) {
        let replaced: HashSet<&str> = changed.iter().chain(&deleted).map(String::as_str).collect();
        let waiting: Vec<String> = table
            .pending_rows(&options.repo)
            .await?
            .into_iter()
            .filter(|row| !replaced.contains(row.path.as_str()))
            .map(|row| row.chunk_id)
            .collect();
        let ids: Vec<&str> = waiting.iter().map(String::as_str).collect();
        for chunk in table.chunks_by_id(&ids).await? {
            plan.chunks_pending += 1;
            let embedded = embedded_text(&chunk.path, chunk.symbol.as_deref(), &chunk.text);
            texts.entry(chunk.content_hash).or_insert(embedded);
        }
    }

    let stored: HashSet<String> = match table {
        Some(table) => {
            let hashes: Vec<&str> = texts.keys().map(String::as_str).collect();
            table.stored_contents(&hashes).await?
        }
        None => HashSet::new(),
    };
    let machine_cache = options
        .cache
        .clone()
        .map(|cache| MachineCache::new(cache, encoder.as_ref()));
    let (cached, mut to_embed): (Vec<String>, Vec<String>) = texts
        .into_iter()
        .filter(|(hash, _)| !stored.contains(hash))
        .map(|(_, text)| text)
        .partition(|text| machine_cache.as_ref().is_some_and(|c| c.contains(text)));
    to_embed.sort(); // a stable sample, whatever order the readers finished in
    plan.texts_to_embed = to_embed.len();
    plan.texts_cached = cached.len();
    plan.chunks_reused =
        (plan.chunks + plan.chunks_pending).saturating_sub(plan.texts_to_embed + plan.texts_cached);
    let refs: Vec<&str> = to_embed.iter().map(String::as_str).collect();
    let task = Task::Nl2Code.document();
    match encoder.input_tokens(&refs, task) {
        Some(counts) => {
            plan.tokens_to_embed = counts.iter().sum();
            plan.tokens_counted = true;
        }
        None => {
            plan.tokens_to_embed = refs
                .iter()
                .map(|t| encoder.count_tokens(t).unwrap_or(t.len() / 3))
                .sum();
        }
    }
    let (full, prefix) = match table {
        Some(table) => {
            let dims = table.metadata().dims;
            (dims.full, dims.prefix)
        }
        None => (encoder.dim().min(768), 128),
    };
    let vector_bytes = 2 * (full + prefix) as u64 + ROW_OVERHEAD_BYTES;
    plan.estimated_bytes = text_bytes + plan.chunks as u64 * vector_bytes;
    let step = (to_embed.len() / SAMPLE_TEXTS).max(1);
    plan.sample = to_embed
        .into_iter()
        .step_by(step)
        .take(SAMPLE_TEXTS)
        .collect();
    Ok(plan)
}

/// The encoder's measured speed on texts like a run's own.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Calibration {
    /// Texts embedded to measure.
    pub texts: usize,
    /// Tokens they took.
    pub tokens: usize,
    /// Tokens per second.
    pub tokens_per_second: f64,
}

/// Embeds `sample` (after one text to warm up) for at most about `budget`, and returns
/// the speed measured; `None` when there is nothing to measure.
pub fn calibrate(
    encoder: &dyn Encoder,
    sample: &[String],
    budget: Duration,
) -> Result<Option<Calibration>> {
    let task = Task::Nl2Code.document();
    let Some((first, rest)) = sample.split_first() else {
        return Ok(None);
    };
    encoder.encode(&[first.as_str()], task)?;
    let rest = if rest.is_empty() { sample } else { rest };
    let started = Instant::now();
    let (mut texts, mut tokens) = (0, 0);
    for batch in rest.chunks(4) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        tokens += encoder.encode(&refs, task)?.tokens;
        texts += refs.len();
        if started.elapsed() >= budget {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok(Some(Calibration {
        texts,
        tokens,
        tokens_per_second: tokens as f64 / seconds,
    }))
}

//! Indexing a repository into a chunk table: walk, chunk, reuse or embed, write.
//!
//! Files are committed in groups, each group one atomic [`ChunkTable::replace_files`]:
//! a job killed at any point leaves every file either at its old or its new state, and
//! files already written are skipped by their hash when the job runs again.

mod chunker;
mod language;
mod summary;
mod walk;

pub use chunker::{line_windows, Span, WindowLimits};
pub use language::LanguageMap;
pub use summary::{IngestSummary, SkipReason};
pub use walk::{walk, SourceFile, WalkItem, WalkOptions};

use crate::batch::strings;
use crate::{Chunk, ChunkEmbedding, ChunkTable, EmbeddedChunk, Error, Result};
use arrow_array::RecordBatch;
use futures::TryStreamExt;
use half::f16;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet_schemas::{columns as col, fp16_vectors};
use lancet_udf::{Encoder, Task};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Settings of an indexing job.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Repository name stored with every chunk.
    pub repo: String,
    /// What the walk skips.
    pub walk: WalkOptions,
    /// Chunk budget in tokens (the model's training length by default).
    pub chunk_tokens: usize,
    /// Files per commit.
    pub commit_files: usize,
    /// Chunks per commit (a group is committed when either limit is reached).
    pub commit_chunks: usize,
    /// Chunks per encoder call.
    pub embed_batch: usize,
    /// Folder never walked (the database, when it lives inside the root).
    pub exclude: Option<PathBuf>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            repo: "default".into(),
            walk: WalkOptions::default(),
            chunk_tokens: 512,
            commit_files: 1_000,
            commit_chunks: 8_192,
            embed_batch: 64,
            exclude: None,
        }
    }
}

/// Called after each commit with the running summary.
pub type Progress<'a> = dyn FnMut(&IngestSummary) + Send + 'a;

/// Indexes `root` into `table` with `encoder`, incrementally: unchanged files are
/// skipped by hash, changed files replaced, vanished files removed.
pub async fn index_directory(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    options: &IngestOptions,
    progress: &mut Progress<'_>,
) -> Result<IngestSummary> {
    table.check_encoder(encoder.identity())?;
    if !root.is_dir() {
        return Err(Error::Io {
            path: root.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let started = Instant::now();
    let mut summary = IngestSummary::default();
    let known = table.file_hashes(&options.repo).await?;
    let mut seen = HashSet::new();
    let mut group: Vec<SourceFile> = Vec::new();
    let mut group_chunks = 0;
    let windows = WindowLimits::for_tokens(options.chunk_tokens);
    let writer = GroupWriter {
        table,
        encoder: encoder.as_ref(),
        options,
        windows,
    };
    for item in walk(root, &options.walk, options.exclude.clone()) {
        let file = match item {
            WalkItem::Skipped(reason, _) => {
                summary.skip(reason);
                continue;
            }
            WalkItem::File(file) => file,
        };
        seen.insert(file.rel_path.clone());
        if known.get(&file.rel_path) == Some(&file.hash) {
            summary.files_unchanged += 1;
            continue;
        }
        summary.lossy_utf8 += usize::from(file.lossy);
        group_chunks += file.text.len() / windows.max_bytes + 1;
        group.push(file);
        if group.len() >= options.commit_files || group_chunks >= options.commit_chunks {
            writer.write(&group, &mut summary).await?;
            summary.elapsed = started.elapsed();
            progress(&summary);
            group.clear();
            group_chunks = 0;
        }
    }
    if !group.is_empty() {
        writer.write(&group, &mut summary).await?;
    }
    let vanished: Vec<(String, String)> = known
        .keys()
        .filter(|path| !seen.contains(*path))
        .map(|path| (options.repo.clone(), path.clone()))
        .collect();
    if !vanished.is_empty() {
        let report = table.replace_files(&vanished, &[]).await?;
        summary.files_deleted = vanished.len();
        summary.chunks_removed += report.deleted;
        summary.commits += 1;
    }
    summary.elapsed = started.elapsed();
    progress(&summary);
    Ok(summary)
}

/// The header embedded before a chunk's text: where it comes from.
fn embedded_text(path: &str, symbol: Option<&str>, text: &str) -> String {
    match symbol {
        Some(symbol) => format!("// {path} :: {symbol}\n{text}"),
        None => format!("// {path}\n{text}"),
    }
}

fn chunks_of(repo: &str, file: &SourceFile, windows: WindowLimits) -> Vec<(Chunk, String)> {
    line_windows(&file.text, windows)
        .into_iter()
        .map(|span| {
            let text = file.text[span.start_byte..span.end_byte].to_string();
            let embedded = embedded_text(&file.rel_path, None, &text);
            let content_hash = blake3::hash(embedded.as_bytes()).to_hex()[..32].to_string();
            let id_source = format!(
                "{repo}\0{}\0{}\0{content_hash}",
                file.rel_path, span.start_byte
            );
            let chunk = Chunk {
                chunk_id: blake3::hash(id_source.as_bytes()).to_hex()[..32].to_string(),
                repo: repo.to_string(),
                path: file.rel_path.clone(),
                language: file.language.clone(),
                start_line: span.start_line,
                end_line: span.end_line,
                start_byte: span.start_byte as u64,
                end_byte: span.end_byte as u64,
                symbol: None,
                kind: "block".into(),
                text,
                content_hash,
                file_hash: file.hash.clone(),
            };
            (chunk, embedded)
        })
        .collect()
}

/// Chunks, embeds (or reuses) and commits one group of files.
struct GroupWriter<'a> {
    table: &'a ChunkTable,
    encoder: &'a dyn Encoder,
    options: &'a IngestOptions,
    windows: WindowLimits,
}

impl GroupWriter<'_> {
    async fn write(&self, files: &[SourceFile], summary: &mut IngestSummary) -> Result<()> {
        let GroupWriter {
            table,
            encoder,
            options,
            windows,
        } = *self;
        let chunks: Vec<(Chunk, String)> = files
            .iter()
            .flat_map(|f| chunks_of(&options.repo, f, windows))
            .collect();
        let hashes: Vec<&str> = chunks
            .iter()
            .map(|(c, _)| c.content_hash.as_str())
            .collect();
        let stored = table.vectors_by_content(&hashes).await?;
        let mut rows = Vec::with_capacity(chunks.len());
        let mut to_embed: Vec<(Chunk, String)> = Vec::new();
        for (chunk, embedded) in chunks {
            match stored.get(&chunk.content_hash) {
                Some((full, prefix)) => {
                    summary.chunks_reused += 1;
                    rows.push(EmbeddedChunk {
                        chunk,
                        embedding: ChunkEmbedding::Stored {
                            full: full.clone(),
                            prefix: prefix.clone(),
                        },
                    });
                }
                None => to_embed.push((chunk, embedded)),
            }
        }
        for batch in to_embed.chunks(options.embed_batch.max(1)) {
            let texts: Vec<&str> = batch.iter().map(|(_, e)| e.as_str()).collect();
            let embeddings = encoder.encode(&texts, Task::Nl2Code.document())?;
            summary.chunks_embedded += texts.len();
            summary.tokens_embedded += embeddings.tokens;
            summary.truncated += embeddings.truncated;
            for ((chunk, _), vector) in batch.iter().zip(embeddings.rows()) {
                rows.push(EmbeddedChunk {
                    chunk: chunk.clone(),
                    embedding: ChunkEmbedding::Pooled(vector.to_vec()),
                });
            }
        }
        let scope: Vec<(String, String)> = files
            .iter()
            .map(|f| (options.repo.clone(), f.rel_path.clone()))
            .collect();
        let report = table.replace_files(&scope, &rows).await?;
        summary.files_indexed += files.len();
        summary.bytes_indexed += files.iter().map(|f| f.bytes).sum::<u64>();
        summary.chunks_added += report.inserted;
        summary.chunks_updated += report.updated;
        summary.chunks_removed += report.deleted;
        summary.commits += 1;
        Ok(())
    }
}

impl ChunkTable {
    /// Path -> file hash of every file of `repo` in the table.
    pub async fn file_hashes(&self, repo: &str) -> Result<HashMap<String, String>> {
        let batches: Vec<RecordBatch> = self
            .table
            .query()
            .only_if(format!(
                "{} = {}",
                col::REPO,
                crate::filter::sql_string(repo)
            ))
            .select(Select::columns(&[col::PATH, col::FILE_HASH]))
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut out = HashMap::new();
        for batch in &batches {
            let path = strings(batch, col::PATH)?;
            let hash = strings(batch, col::FILE_HASH)?;
            for i in 0..batch.num_rows() {
                out.insert(path.value(i).to_string(), hash.value(i).to_string());
            }
        }
        Ok(out)
    }

    /// Stored vectors of rows whose content hash is among `hashes`.
    pub async fn vectors_by_content(
        &self,
        hashes: &[&str],
    ) -> Result<HashMap<String, (Vec<f16>, Vec<f16>)>> {
        let mut out = HashMap::new();
        let unique: HashSet<&str> = hashes.iter().copied().collect();
        let unique: Vec<&str> = unique.into_iter().collect();
        for part in unique.chunks(2_048) {
            let list = part
                .iter()
                .map(|h| crate::filter::sql_string(h))
                .collect::<Vec<_>>()
                .join(", ");
            let batches: Vec<RecordBatch> = self
                .table
                .query()
                .only_if(format!("{} IN ({list})", col::CONTENT_HASH))
                .select(Select::columns(&[
                    col::CONTENT_HASH,
                    col::EMBEDDING,
                    self.prefix_column.as_str(),
                ]))
                .execute()
                .await?
                .try_collect()
                .await?;
            for batch in &batches {
                let hash = strings(batch, col::CONTENT_HASH)?;
                let full = fp16_vectors(batch.column(1).as_ref())?;
                let prefix = fp16_vectors(batch.column(2).as_ref())?;
                for i in 0..batch.num_rows() {
                    out.entry(hash.value(i).to_string())
                        .or_insert_with(|| (full.row(i).to_vec(), prefix.row(i).to_vec()));
                }
            }
        }
        Ok(out)
    }
}

//! The two-stage vector search: a coarse shortlist over the Matryoshka prefix column,
//! filtered before the vector search, re-ranked exactly at full width.

use crate::error::{Error, Result};
use crate::search::rerank::{cosine, top_k};
use crate::search::Filter;
use crate::store::columns::{column, column_ref};
use crate::store::rows::chunk_from_row;
use crate::store::ChunkTable;
use arrow_array::{Array, Float32Array, RecordBatch, UInt64Array};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select, VectorQuery};
use lancedb::DistanceType;
use lancet_schemas::{columns as col, fp16_optional_vectors};
use lancet_udf::matryoshka::truncate_normalize;

/// A filter matching at most this many rows is searched flat over the prefix column:
/// an IVF index probes partitions chosen for the whole table, which may hold few of the
/// matching rows, while a flat scan of the matching prefix vectors misses nothing.
const FLAT_FILTERED_ROWS: usize = 50_000;

/// The column of the vector distance in Lance's results.
const DISTANCE: &str = "_distance";

/// Partitions Lance probes by default; a selective filter probes proportionally more.
const DEFAULT_NPROBES: usize = 20;

/// Breadth of the hot index's graph walk unless the request sets one (never below the
/// shortlist).
pub const DEFAULT_EF: usize = 64;

/// Most results one search may ask for.
pub const MAX_K: usize = 100_000;

/// Most candidates one search may re-rank at full width (`k × refine`) and most breadth
/// of its graph walk: what a search allocates stays bounded, whatever it is asked.
pub const MAX_SHORTLIST: usize = 1_000_000;

/// How the search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMode {
    /// ANN over the prefix column for `k * refine` candidates, then exact cosine at full
    /// width over them.
    TwoStage {
        /// Shortlist size as a multiple of `k`.
        refine: usize,
    },
    /// Exact cosine over the full-width column (ground truth; scans the table).
    Exact,
}

impl Default for SearchMode {
    fn default() -> Self {
        SearchMode::TwoStage { refine: 10 }
    }
}

/// A search: a query vector, how many results, and what rows may be returned.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Pooled query vector, at least as wide as the table's full width (the encoder's
    /// raw output is fine: it is truncated and normalised here).
    pub vector: Vec<f32>,
    /// Number of results.
    pub k: usize,
    /// Rows allowed in the results; applied before the vector search.
    pub filter: Filter,
    /// Two-stage or exact.
    pub mode: SearchMode,
    /// IVF partitions probed by the coarse search (`None`: Lance's default).
    pub nprobes: Option<usize>,
    /// Breadth of the graph walk when the table has a hot index (`None`: [`DEFAULT_EF`]).
    pub ef: Option<usize>,
}

impl SearchRequest {
    /// A two-stage search for the `k` nearest rows to `vector`.
    pub fn new(vector: Vec<f32>, k: usize) -> Self {
        SearchRequest {
            vector,
            k,
            filter: Filter::default(),
            mode: SearchMode::default(),
            nprobes: None,
            ef: None,
        }
    }

    /// Sets the filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the IVF partitions probed.
    pub fn nprobes(mut self, nprobes: usize) -> Self {
        self.nprobes = Some(nprobes);
        self
    }

    /// Sets the breadth of the hot index's graph walk.
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = Some(ef);
        self
    }

    /// Fails when the request asks for more than a search may hold in memory: `k` above
    /// [`MAX_K`], or a shortlist (`k × refine`) or walk breadth above [`MAX_SHORTLIST`].
    pub fn check_bounds(&self) -> Result<()> {
        check_k(self.k)?;
        if let SearchMode::TwoStage { refine } = self.mode {
            let shortlist = self.k.saturating_mul(refine.max(1));
            if shortlist > MAX_SHORTLIST {
                return Err(Error::InvalidArgument(format!(
                    "k × refine = {} × {refine} is a longer shortlist than one search \
                     re-ranks (at most {MAX_SHORTLIST})",
                    self.k
                )));
            }
        }
        if let Some(ef) = self.ef.filter(|&ef| ef > MAX_SHORTLIST) {
            return Err(Error::InvalidArgument(format!(
                "ef = {ef} is a broader graph walk than one search takes (at most {MAX_SHORTLIST})"
            )));
        }
        Ok(())
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    /// Chunk id.
    pub chunk_id: String,
    /// Repository.
    pub repo: String,
    /// Path in the repository.
    pub path: String,
    /// Language.
    pub language: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, inclusive.
    pub end_line: u32,
    /// Byte offset of the start in the file.
    pub start_byte: u64,
    /// Byte offset one past the end.
    pub end_byte: u64,
    /// Enclosing symbol.
    pub symbol: Option<String>,
    /// Syntactic kind.
    pub kind: String,
    /// Chunk text.
    pub text: String,
    /// Cosine similarity to the query at full width (1 is identical).
    pub score: f32,
}

/// Fails when `k` is above [`MAX_K`]: the bound every search (vector, text, hybrid)
/// shares.
pub(crate) fn check_k(k: usize) -> Result<()> {
    if k > MAX_K {
        return Err(Error::InvalidArgument(format!(
            "k = {k} is more results than one search returns (at most {MAX_K})"
        )));
    }
    Ok(())
}

impl ChunkTable {
    /// Runs a search and returns at most `k` hits, best first.
    ///
    /// A two-stage search runs on the hot index when this handle has one (see
    /// [`ChunkTable::open_hot_index`]) and as Lance queries otherwise.
    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>> {
        request.check_bounds()?;
        if request.k == 0 {
            return Ok(Vec::new());
        }
        let full = self.full_query(&request.vector)?;
        if let Some(best) = self.hot_row_ids(request, &full).await? {
            return self.hits_of_rows(&best).await;
        }
        let query = self.vector_query(request, &full).await?;
        let batches: Vec<RecordBatch> = query.execute().await?.try_collect().await?;
        match request.mode {
            SearchMode::Exact => {
                let mut hits = Vec::new();
                for batch in &batches {
                    let distances = column::<Float32Array>(batch, DISTANCE)?;
                    // A row without vectors yet has no distance.
                    for row in (0..batch.num_rows()).filter(|&row| distances.is_valid(row)) {
                        hits.push(hit_from_row(batch, row, 1.0 - distances.value(row))?);
                    }
                }
                hits.truncate(request.k);
                Ok(hits)
            }
            SearchMode::TwoStage { .. } => {
                let mut scored = Vec::new();
                for (b, batch) in batches.iter().enumerate() {
                    let vectors = fp16_optional_vectors(column_ref(batch, col::EMBEDDING)?)?;
                    for row in 0..batch.num_rows() {
                        if let Some(vector) = vectors.row(row) {
                            scored.push((b, row, cosine(&full, vector)));
                        }
                    }
                }
                let scores: Vec<f32> = scored.iter().map(|s| s.2).collect();
                top_k(&scores, request.k)
                    .into_iter()
                    .map(|i| {
                        let (b, row, score) = scored[i];
                        hit_from_row(&batches[b], row, score)
                    })
                    .collect()
            }
        }
    }

    /// The two-stage search of `request` on the hot index, as `(row id, score)` best
    /// first: `None` when this handle has no hot index or the request is exact.
    pub async fn search_row_ids(&self, request: &SearchRequest) -> Result<Option<Vec<(u64, f32)>>> {
        request.check_bounds()?;
        if request.k == 0 {
            return Ok(Some(Vec::new()));
        }
        let full = self.full_query(&request.vector)?;
        self.hot_row_ids(request, &full).await
    }

    async fn hot_row_ids(
        &self,
        request: &SearchRequest,
        full: &[f32],
    ) -> Result<Option<Vec<(u64, f32)>>> {
        let SearchMode::TwoStage { refine } = request.mode else {
            return Ok(None);
        };
        let shortlist = request.k.saturating_mul(refine.max(1));
        let ef = request.ef.unwrap_or(DEFAULT_EF).max(shortlist);
        self.hot_search(full, request.k, shortlist, ef, &request.filter)
            .await
    }

    /// The hits of the given rows, in the given order, with the given scores; rows that
    /// left the table since are skipped.
    async fn hits_of_rows(&self, best: &[(u64, f32)]) -> Result<Vec<SearchHit>> {
        if best.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<u64> = best.iter().map(|b| b.0).collect();
        let batches = self.rows_by_id(ids, &col::RESULT_COLUMNS).await?;
        let mut at = std::collections::HashMap::new();
        for (b, batch) in batches.iter().enumerate() {
            let ids = column::<UInt64Array>(batch, lance_core::ROW_ID)?;
            for row in 0..batch.num_rows() {
                at.insert(ids.value(row), (b, row));
            }
        }
        best.iter()
            .filter_map(|&(id, score)| {
                at.get(&id)
                    .map(|&(b, row)| hit_from_row(&batches[b], row, score))
            })
            .collect()
    }

    /// The physical plan Lance would run for the coarse (or exact) stage of `request`:
    /// shows whether the ANN index is used and where the filter sits.
    pub async fn explain_search(&self, request: &SearchRequest) -> Result<String> {
        request.check_bounds()?;
        let full = self.full_query(&request.vector)?;
        Ok(self
            .vector_query(request, &full)
            .await?
            .explain_plan(true)
            .await?)
    }

    fn full_query(&self, vector: &[f32]) -> Result<Vec<f32>> {
        let dims = self.metadata().dims;
        if vector.len() < dims.full {
            return Err(Error::InvalidArgument(format!(
                "query vector has {} dimensions, the table needs at least {}",
                vector.len(),
                dims.full
            )));
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(
                "query vector holds NaN or infinite values".into(),
            ));
        }
        Ok(truncate_normalize(vector, dims.full)?)
    }

    /// The Lance query of the coarse (or exact) stage; `full` is the validated,
    /// normalised full-width query vector.
    async fn vector_query(&self, request: &SearchRequest, full: &[f32]) -> Result<VectorQuery> {
        let (query_vector, column_name, limit) = match request.mode {
            SearchMode::Exact => (full.to_vec(), col::EMBEDDING.to_string(), request.k),
            SearchMode::TwoStage { refine } => {
                let prefix = truncate_normalize(full, self.metadata().dims.prefix)?;
                let shortlist = request.k.saturating_mul(refine.max(1));
                (prefix, self.prefix_column().to_string(), shortlist)
            }
        };
        // A limit beyond the table only costs memory: cap it at the row count.
        let rows = self.count(None).await?;
        let limit = limit.min(rows).max(1);
        let filter = request.filter.to_sql();
        // Selectivity only steers the coarse stage; the exact mode scans anyway.
        let matching = match (&filter, request.mode) {
            (Some(f), SearchMode::TwoStage { .. }) => self.count(Some(f.clone())).await?,
            _ => rows,
        };
        // `_distance` named explicitly: Lance adds it anyway, and warns on every query
        // whose projection leaves it out.
        let mut columns: Vec<&str> = col::RESULT_COLUMNS.to_vec();
        columns.push(DISTANCE);
        if matches!(request.mode, SearchMode::TwoStage { .. }) {
            columns.push(col::EMBEDDING);
        }
        let mut query = self
            .lance()
            .query()
            .nearest_to(query_vector)?
            .column(&column_name)
            .distance_type(DistanceType::Cosine)
            .limit(limit)
            .select(Select::columns(&columns));
        if let Some(filter) = filter {
            query = query.only_if(filter);
        }
        let selective = matching < rows && matching <= FLAT_FILTERED_ROWS;
        if request.mode == SearchMode::Exact || selective {
            query = query.bypass_vector_index();
        } else if let Some(nprobes) = request.nprobes {
            query = query.nprobes(nprobes.max(1))?;
        } else if matching < rows {
            // Probe more partitions as the filter keeps fewer rows, so that about as many
            // matching rows are scanned as an unfiltered query scans.
            let scaled = DEFAULT_NPROBES as f64 * rows as f64 / matching.max(1) as f64;
            query = query.nprobes(scaled.ceil() as usize)?;
        }
        Ok(query)
    }
}

/// The hit in row `row` of `batch` (which holds the columns of
/// [`col::RESULT_COLUMNS`]), with `score`.
pub(crate) fn hit_from_row(batch: &RecordBatch, row: usize, score: f32) -> Result<SearchHit> {
    let chunk = chunk_from_row(batch, row)?;
    Ok(SearchHit {
        chunk_id: chunk.chunk_id,
        repo: chunk.repo,
        path: chunk.path,
        language: chunk.language,
        start_line: chunk.start_line,
        end_line: chunk.end_line,
        start_byte: chunk.start_byte,
        end_byte: chunk.end_byte,
        symbol: chunk.symbol,
        kind: chunk.kind,
        text: chunk.text,
        score,
    })
}

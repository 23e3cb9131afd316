//! Full-text (BM25) search over chunk text, and hybrid search: reciprocal rank fusion
//! of the vector and the text rankings.

use crate::error::{Error, Result};
use crate::search::vector::{check_k, hit_from_row};
use crate::search::{Filter, SearchHit, SearchRequest, MAX_K};
use crate::store::columns::column;
use crate::store::ChunkTable;
use arrow_array::{Float32Array, RecordBatch};
use futures::TryStreamExt;
use lancedb::index::scalar::FullTextSearchQuery;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet_schemas::columns as col;
use std::collections::HashMap;

/// The RRF constant: rank r contributes 1 / (RRF_K + r), r from 1.
pub const RRF_K: f32 = 60.0;

impl ChunkTable {
    /// The `k` chunks whose text best matches `query` (BM25 with the code tokenizer;
    /// `score` is the BM25 score). Needs the full-text index of
    /// [`ChunkTable::ensure_indexes`].
    pub async fn text_search(
        &self,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<SearchHit>> {
        check_k(k)?;
        if k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let fts = FullTextSearchQuery::new(query.to_string())
            .with_column(col::TEXT.into())
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut lance_query = self
            .lance()
            .query()
            .full_text_search(fts)
            .limit(k)
            .select(Select::columns(&col::RESULT_COLUMNS));
        if let Some(filter) = filter.to_sql() {
            lance_query = lance_query.only_if(filter);
        }
        let batches: Vec<RecordBatch> = lance_query.execute().await?.try_collect().await?;
        let mut hits = Vec::new();
        for batch in &batches {
            let scores = column::<Float32Array>(batch, "_score")?;
            for row in 0..batch.num_rows() {
                hits.push(hit_from_row(batch, row, scores.value(row))?);
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        Ok(hits)
    }

    /// Hybrid search: the vector ranking of `request` and the BM25 ranking of `text`,
    /// each `2k` deep, fused by reciprocal rank (`score` is the fused score). A chunk
    /// found by both ranks above one found by either alone at the same ranks.
    pub async fn hybrid_search(
        &self,
        text: &str,
        request: &SearchRequest,
    ) -> Result<Vec<SearchHit>> {
        Ok(self.hybrid_search_stages(text, request).await?.fused)
    }

    /// [`hybrid_search`](Self::hybrid_search) with the two rankings it fused, for
    /// callers that report each stage's score.
    pub async fn hybrid_search_stages(
        &self,
        text: &str,
        request: &SearchRequest,
    ) -> Result<HybridHits> {
        request.check_bounds()?;
        let k = request.k;
        let mut deeper = request.clone();
        deeper.k = k.saturating_mul(2).min(MAX_K);
        let vector = self.search(&deeper).await?;
        let keyword = self.text_search(text, deeper.k, &request.filter).await?;
        let fused = reciprocal_rank_fusion(&[vector.clone(), keyword.clone()], k);
        Ok(HybridHits {
            fused,
            vector,
            keyword,
        })
    }
}

/// A hybrid search's answer and the rankings it came from.
#[derive(Debug, Clone)]
pub struct HybridHits {
    /// The fused ranking (`score`: the fused score).
    pub fused: Vec<SearchHit>,
    /// The vector ranking, `2k` deep (`score`: cosine).
    pub vector: Vec<SearchHit>,
    /// The BM25 ranking, `2k` deep (`score`: BM25).
    pub keyword: Vec<SearchHit>,
}

/// Fuses rankings by reciprocal rank: each list adds 1 / (RRF_K + rank) to its hits.
pub fn reciprocal_rank_fusion(rankings: &[Vec<SearchHit>], k: usize) -> Vec<SearchHit> {
    let mut fused: HashMap<&str, (f32, &SearchHit)> = HashMap::new();
    for ranking in rankings {
        for (rank, hit) in ranking.iter().enumerate() {
            let entry = fused.entry(hit.chunk_id.as_str()).or_insert((0.0, hit));
            entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<SearchHit> = fused
        .into_values()
        .map(|(score, hit)| SearchHit {
            score,
            ..hit.clone()
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str) -> SearchHit {
        SearchHit {
            chunk_id: id.into(),
            repo: "r".into(),
            path: format!("{id}.rs"),
            language: "rust".into(),
            start_line: 1,
            end_line: 1,
            start_byte: 0,
            end_byte: 1,
            symbol: None,
            kind: "function".into(),
            text: id.into(),
            score: 0.5,
        }
    }

    #[test]
    fn fusion_adds_one_over_sixty_plus_rank_and_breaks_ties_by_id() {
        let by_vector = vec![hit("x"), hit("y"), hit("z")];
        let by_text = vec![hit("y"), hit("w"), hit("v")];
        let fused = reciprocal_rank_fusion(&[by_vector, by_text], 4);
        let ids: Vec<&str> = fused.iter().map(|h| h.chunk_id.as_str()).collect();
        // y: 1/62 + 1/61; x: 1/61; w: 1/62; then v and z tie at 1/63: v first, by id.
        assert_eq!(ids, ["y", "x", "w", "v"]);
        let expected = [1.0 / 62.0 + 1.0 / 61.0, 1.0 / 61.0, 1.0 / 62.0, 1.0 / 63.0];
        for (hit, want) in fused.iter().zip(expected) {
            assert!(
                (hit.score - want).abs() < 1e-7,
                "{}: {}",
                hit.chunk_id,
                hit.score
            );
        }
        assert_eq!(fused[0].path, "y.rs", "the hit's columns come with it");
        assert!(reciprocal_rank_fusion(&[], 3).is_empty());
    }
}

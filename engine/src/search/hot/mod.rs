//! The hot index: the coarse stage of the search kept in memory, beside the durable
//! Lance table.
//!
//! A Lance query costs one to two milliseconds of planning and I/O whatever it computes,
//! while the arithmetic of a 128-d graph probe and a 100-row re-rank takes tens of
//! microseconds. The hot index removes the query path from the hot path: an HNSW graph
//! over the fp16 prefix vectors in memory, the fp16 full-width vectors memory-mapped for
//! the re-rank, and the filter columns dictionary-coded, so a filtered two-stage search
//! touches Lance only to read the `k` winning rows.
//!
//! Lance stays the source of truth. The index is saved beside the table as a snapshot of
//! one table version (written to a new folder, then named current by an atomic rename,
//! so a killed job leaves the previous snapshot), and brought up to date on load and
//! whenever the table's version moves: rows that left the table are masked, rows that
//! arrived are read from Lance and linked into the graph.

mod attributes;
mod hnsw;
mod kernels;
mod lifecycle;
mod matrix;
mod snapshot;

pub use hnsw::HnswParams;
pub use lifecycle::{HotIndexOptions, HotIndexReport};

use attributes::Attributes;
use half::f16;
use hnsw::{Hnsw, Scored};
use matrix::Matrix;
use roaring::RoaringBitmap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Prefix vectors a graph walk reads per unit of breadth (`ef`) when every node is
/// allowed; a filter keeping a share `s` of the rows makes it read about `1/s` times more.
/// When the kept rows are fewer than a walk would read, they are scored exhaustively.
const GRAPH_WALK_COST_PER_EF: f64 = 32.0;

/// Whether a search keeping `kept` of `total` nodes scores them all rather than walking
/// the graph with breadth `ef`: when they are fewer than the walk would read.
fn scores_exhaustively(kept: u64, total: u64, ef: usize) -> bool {
    let selectivity = kept as f64 / total.max(1) as f64;
    let walk_cost = ef as f64 * GRAPH_WALK_COST_PER_EF / selectivity.max(1e-9);
    kept as f64 <= walk_cost
}

/// One search of the hot index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HotQuery<'a> {
    /// Unit query vector at the table's full width.
    pub full: &'a [f32],
    /// Results wanted.
    pub k: usize,
    /// Candidates from the coarse stage, re-ranked at full width.
    pub shortlist: usize,
    /// Breadth of the graph walk (at least `shortlist`).
    pub ef: usize,
    /// Nodes allowed by the filter (`None`: all).
    pub allowed: Option<&'a RoaringBitmap>,
}

/// The in-memory coarse index of one table version.
pub(crate) struct HotIndex {
    /// Table version the index reflects.
    version: u64,
    row_ids: Vec<u64>,
    node_of: HashMap<u64, u32>,
    /// Nodes whose rows left the table.
    deleted: RoaringBitmap,
    /// Rows of the table without vectors yet (committed before them), as of `version`:
    /// not in the graph, and not read again until a write touches them. Kept in memory
    /// only; after a load they are read once more.
    pending: roaring::RoaringTreemap,
    prefix: Matrix,
    full: Matrix,
    graph: Hnsw,
    attributes: Attributes,
}

impl HotIndex {
    fn new(prefix_dim: usize, full_dim: usize, params: HnswParams) -> Self {
        HotIndex {
            version: 0,
            row_ids: Vec::new(),
            node_of: HashMap::new(),
            deleted: RoaringBitmap::new(),
            pending: roaring::RoaringTreemap::new(),
            prefix: Matrix::new(prefix_dim),
            full: Matrix::new(full_dim),
            graph: Hnsw::new(params),
            attributes: Attributes::default(),
        }
    }

    /// Adds a row (not yet linked into the graph: see [`Self::link_new_rows`]).
    fn push(
        &mut self,
        row_id: u64,
        prefix: &[f16],
        full: &[f16],
        language: &str,
        repo: &str,
        path: &str,
    ) {
        let node = self.row_ids.len() as u32;
        if let Some(old) = self.node_of.insert(row_id, node) {
            // A row id seen again replaces the older node (never happens with stable ids).
            self.deleted.insert(old);
        }
        self.row_ids.push(row_id);
        self.prefix.push(prefix);
        self.full.push(full);
        self.attributes.push(language, repo, path);
    }

    fn link_new_rows(&mut self, threads: usize) {
        self.graph.insert_rows(&self.prefix, threads);
    }

    /// Widths of the prefix and full vectors it holds.
    pub(crate) fn widths(&self) -> (usize, usize) {
        (self.prefix.dim(), self.full.dim())
    }

    /// Rows the index answers for.
    pub(crate) fn live_rows(&self) -> u64 {
        self.row_ids.len() as u64 - self.deleted.len()
    }

    /// The nodes of the given table rows (rows the index does not know are ignored).
    pub(crate) fn nodes_of(&self, row_ids: impl IntoIterator<Item = u64>) -> RoaringBitmap {
        row_ids
            .into_iter()
            .filter_map(|id| self.node_of.get(&id).copied())
            .collect()
    }

    /// The `k` best rows as `(row id, cosine at full width)`, best first.
    pub(crate) fn search(&self, query: &HotQuery<'_>) -> Vec<(u64, f32)> {
        if query.k == 0 || self.row_ids.is_empty() {
            return Vec::new();
        }
        let mut prefix_query = query.full[..self.prefix.dim()].to_vec();
        lancet_udf::matryoshka::normalize_in_place(&mut prefix_query);
        let shortlist = query.shortlist.max(query.k);
        let ef = query.ef.max(shortlist);
        let kept = query.allowed.map(|allowed| allowed - &self.deleted);
        let kept_rows = kept.as_ref().map_or_else(|| self.live_rows(), |k| k.len());
        let candidates = if scores_exhaustively(kept_rows, self.row_ids.len() as u64, ef) {
            // Fewer rows than a walk would read (a selective filter, a small table, or a
            // shortlist near the table's size): score them all, exactly.
            match &kept {
                Some(kept) => self.exhaustive(&prefix_query, kept.iter(), shortlist),
                None => {
                    let live =
                        (0..self.row_ids.len() as u32).filter(|n| !self.deleted.contains(*n));
                    self.exhaustive(&prefix_query, live, shortlist)
                }
            }
        } else {
            match &kept {
                Some(kept) => self
                    .graph
                    .search(&self.prefix, &prefix_query, ef, |n| kept.contains(n)),
                None if self.deleted.is_empty() => {
                    self.graph.search(&self.prefix, &prefix_query, ef, |_| true)
                }
                None => self.graph.search(&self.prefix, &prefix_query, ef, |n| {
                    !self.deleted.contains(n)
                }),
            }
        };
        let candidates = &candidates[..candidates.len().min(shortlist)];
        for &(_, node) in candidates {
            kernels::prefetch(self.full.row(node as usize));
        }
        let mut reranked: Vec<Scored> = candidates
            .iter()
            .map(|&(_, node)| Scored(kernels::dot(query.full, self.full.row(node as usize)), node))
            .collect();
        reranked.sort_by(|a, b| b.cmp(a));
        reranked
            .into_iter()
            .take(query.k)
            .map(|Scored(score, node)| (self.row_ids[node as usize], score))
            .collect()
    }

    /// The `n` nodes of `nodes` with the best prefix similarity, best first.
    fn exhaustive(
        &self,
        query: &[f32],
        nodes: impl Iterator<Item = u32>,
        n: usize,
    ) -> Vec<(f32, u32)> {
        let mut best: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(n + 1);
        for node in nodes {
            let scored = Scored(kernels::dot(query, self.prefix.row(node as usize)), node);
            if best.len() < n {
                best.push(Reverse(scored));
            } else if best.peek().is_some_and(|worst| scored.0 > worst.0 .0) {
                best.pop();
                best.push(Reverse(scored));
            }
        }
        best.into_sorted_vec()
            .into_iter()
            .map(|r| (r.0 .0, r.0 .1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{MatryoshkaGenerator, MatryoshkaSpec};

    const PREFIX: usize = 16;
    const FULL: usize = 32;

    #[test]
    fn a_filter_keeping_half_of_a_large_index_walks_the_graph_and_finds_the_filtered_best() {
        let rows = 8_000;
        // Variance concentrated in the leading dimensions, as in a trained Matryoshka
        // model, so that the 16-d prefix is a fair coarse representation of 32 dims.
        let generator = MatryoshkaGenerator::new(MatryoshkaSpec {
            dim: FULL,
            clusters: 24,
            decay: 8.0,
            ..MatryoshkaSpec::default()
        });
        let vectors = generator.sample(rows, 0);
        let mut index = HotIndex::new(PREFIX, FULL, HnswParams::default());
        for (i, v) in vectors.iter().enumerate() {
            let full: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            let language = if i % 2 == 0 { "rust" } else { "go" };
            index.push(i as u64 * 7, &full[..PREFIX], &full, language, "r", "src/x");
        }
        index.link_new_rows(2);
        let allowed: RoaringBitmap = (0..rows as u32).filter(|n| n % 2 == 0).collect();
        let (k, shortlist, ef) = (10, 50, 50);
        // The point of this test: the filtered search takes the graph walk, not the scan
        // (4,000 kept rows, more than the ~3,200 a walk of breadth 50 reads at half
        // selectivity).
        assert!(!scores_exhaustively(
            allowed.len(),
            rows as u64,
            ef.max(shortlist)
        ));

        let queries = generator.sample(40, 1);
        let (mut walked, mut scanned) = (0.0, 0.0);
        for query in &queries {
            let search = |ef| {
                index.search(&HotQuery {
                    full: query,
                    k,
                    shortlist,
                    ef,
                    allowed: Some(&allowed),
                })
            };
            // The walk, and (a breadth no walk affords) the exhaustive scan of the same rows.
            let (walk, scan) = (search(ef), search(1_000_000));
            assert_eq!(walk.len(), k);
            assert!(
                walk.iter().all(|(id, _)| (id / 7) % 2 == 0),
                "a filtered-out row"
            );
            // Ground truth: exact cosine at full width over the allowed rows.
            let mut exact: Vec<(f32, u64)> = allowed
                .iter()
                .map(|n| {
                    let dot: f32 = vectors[n as usize]
                        .iter()
                        .zip(query)
                        .map(|(a, b)| a * b)
                        .sum();
                    (dot, n as u64 * 7)
                })
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let truth: Vec<u64> = exact.iter().take(k).map(|e| e.1).collect();
            let recall = |found: &[(u64, f32)]| {
                found.iter().filter(|(id, _)| truth.contains(id)).count() as f64 / k as f64
            };
            walked += recall(&walk) / queries.len() as f64;
            scanned += recall(&scan) / queries.len() as f64;
        }
        println!("filtered recall@10: walk {walked:.3}, exhaustive scan {scanned:.3}");
        assert!(
            scanned >= 0.95,
            "the exhaustive two-stage search: {scanned}"
        );
        assert!(walked >= 0.9, "the filtered graph walk: {walked}");
    }

    #[test]
    fn selective_filters_and_small_indexes_are_scored_exhaustively() {
        assert!(scores_exhaustively(100, 1_000_000, 64));
        assert!(scores_exhaustively(2_000, 2_000, 64));
        assert!(!scores_exhaustively(1_000_000, 1_000_000, 64));
        assert!(scores_exhaustively(0, 0, 64));
    }
}

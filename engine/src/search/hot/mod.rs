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
        let selectivity = kept_rows as f64 / self.row_ids.len() as f64;
        let walk_cost = ef as f64 * GRAPH_WALK_COST_PER_EF / selectivity.max(1e-9);
        let candidates = if kept_rows as f64 <= walk_cost {
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

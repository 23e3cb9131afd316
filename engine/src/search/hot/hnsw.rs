//! A hierarchical navigable small world graph (Malkov & Yashunin, 2016) over the prefix
//! vectors: the coarse stage of the hot index.
//!
//! Links live in flat arrays of fixed-size blocks `[count, link, link, ...]`, one block a
//! node on layer 0 (`2m` links) and one a node and upper layer (`m` links), so a search
//! touches no allocation but its visited set. Links are atomics: several threads insert at
//! once, each node's writes serialised by a striped lock, while readers never lock.
//! Similarity is the dot product of unit vectors (cosine).

use super::kernels::{dot, prefetch};
use super::matrix::Matrix;
use half::f16;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

/// Build parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HnswParams {
    /// Links a node keeps on upper layers (twice as many on layer 0).
    pub m: usize,
    /// Candidates examined when linking a new node.
    pub ef_construction: usize,
    /// Seed of the level draw.
    pub seed: u64,
}

impl Default for HnswParams {
    /// m 24 and ef_construction 200: on 1M clustered 128-d prefixes (the search benchmark's
    /// data), m 16 / ef_construction 100 needed a walk of ef 200 for recall@10 0.96 after
    /// the re-rank, where these reach 0.97 at ef 100, for about twice the build time.
    fn default() -> Self {
        HnswParams {
            m: 24,
            ef_construction: 200,
            seed: 0x5eed,
        }
    }
}

const NO_ENTRY: u64 = u64::MAX;
const LOCK_STRIPES: usize = 4096;
const MAX_LEVEL: u8 = 15;

/// Most links per node and layer a saved graph may declare (the default is 24).
const MAX_M: usize = 1_024;

/// The graph. Node `i` is row `i` of the prefix matrix.
pub(crate) struct Hnsw {
    params: HnswParams,
    levels: Vec<u8>,
    upper_start: Vec<u32>,
    layer0: Vec<AtomicU32>,
    upper: Vec<AtomicU32>,
    /// `(level << 32) | node` of the entry point, or `NO_ENTRY`.
    entry: AtomicU64,
    entry_lock: Mutex<()>,
    locks: Vec<Mutex<()>>,
}

/// A node and its similarity, ordered by similarity (then by the lower node), for heaps
/// and rankings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored(pub(crate) f32, pub(crate) u32);

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::new(Visited::default());
}

/// A visited set that is cleared in O(1) by bumping an epoch.
#[derive(Default)]
struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
    }

    /// Marks `node`; true when it was not marked yet.
    #[inline]
    fn insert(&mut self, node: u32) -> bool {
        let mark = &mut self.marks[node as usize];
        let fresh = *mark != self.epoch;
        *mark = self.epoch;
        fresh
    }
}

fn draw_level(seed: u64, node: u64, m: usize) -> u8 {
    // splitmix64: levels depend only on the seed and the node, whatever the threads do.
    let mut z = seed ^ node.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let uniform = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let ml = 1.0 / (m.max(2) as f64).ln();
    ((-uniform.ln() * ml).floor() as u64).min(u64::from(MAX_LEVEL)) as u8
}

impl Hnsw {
    /// An empty graph.
    pub(crate) fn new(params: HnswParams) -> Self {
        Hnsw {
            params,
            levels: Vec::new(),
            upper_start: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            entry: AtomicU64::new(NO_ENTRY),
            entry_lock: Mutex::new(()),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The graph over every row of `vectors`, built with `threads` threads.
    #[cfg(test)]
    pub(crate) fn build(vectors: &Matrix, params: HnswParams, threads: usize) -> Self {
        let mut graph = Hnsw::new(params);
        graph.insert_rows(vectors, threads);
        graph
    }

    pub(crate) fn params(&self) -> HnswParams {
        self.params
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    fn m0(&self) -> usize {
        self.params.m * 2
    }

    /// Links every row of `vectors` not yet in the graph.
    pub(crate) fn insert_rows(&mut self, vectors: &Matrix, threads: usize) {
        let first = self.len();
        let n = vectors.rows();
        if n <= first {
            return;
        }
        self.allocate(n);
        let graph = &*self;
        let next = AtomicUsize::new(first);
        let work = || loop {
            let node = next.fetch_add(1, Relaxed);
            if node >= n {
                break;
            }
            graph.insert(vectors, node as u32);
        };
        if graph.entry.load(Acquire) == NO_ENTRY {
            // The first node becomes the entry point before other threads start.
            let node = next.fetch_add(1, Relaxed);
            graph.insert(vectors, node as u32);
        }
        std::thread::scope(|scope| {
            for _ in 1..threads.max(1) {
                scope.spawn(work);
            }
            work();
        });
    }

    fn allocate(&mut self, n: usize) {
        let m = self.params.m;
        let mut blocks = self.upper.len() / (m + 1);
        for node in self.len()..n {
            let level = draw_level(self.params.seed, node as u64, m);
            self.levels.push(level);
            self.upper_start.push(blocks as u32);
            blocks += usize::from(level);
        }
        self.layer0
            .resize_with(n * (self.m0() + 1), || AtomicU32::new(0));
        self.upper
            .resize_with(blocks * (m + 1), || AtomicU32::new(0));
    }

    fn block(&self, node: u32, level: u8) -> &[AtomicU32] {
        if level == 0 {
            let width = self.m0() + 1;
            &self.layer0[node as usize * width..(node as usize + 1) * width]
        } else {
            let width = self.params.m + 1;
            let block = self.upper_start[node as usize] as usize + usize::from(level) - 1;
            &self.upper[block * width..(block + 1) * width]
        }
    }

    /// The links of `node` on `level`, copied out.
    fn links(&self, node: u32, level: u8, out: &mut Vec<u32>) {
        let block = self.block(node, level);
        let count = (block[0].load(Acquire) as usize).min(block.len() - 1);
        out.clear();
        out.extend(block[1..=count].iter().map(|l| l.load(Relaxed)));
    }

    fn set_links(&self, node: u32, level: u8, links: &[u32]) {
        let block = self.block(node, level);
        let count = links.len().min(block.len() - 1);
        for (slot, &link) in block[1..].iter().zip(&links[..count]) {
            slot.store(link, Relaxed);
        }
        block[0].store(count as u32, Release);
    }

    fn lock(&self, node: u32) -> parking_lot::MutexGuard<'_, ()> {
        self.locks[node as usize % LOCK_STRIPES].lock()
    }

    fn insert(&self, vectors: &Matrix, node: u32) {
        let query: Vec<f32> = vectors
            .row(node as usize)
            .iter()
            .map(|v| v.to_f32())
            .collect();
        let level = self.levels[node as usize];
        let entry = self.entry.load(Acquire);
        if entry == NO_ENTRY {
            let _guard = self.entry_lock.lock();
            if self.entry.load(Acquire) == NO_ENTRY {
                self.entry
                    .store((u64::from(level) << 32) | u64::from(node), Release);
                return;
            }
        }
        let entry = self.entry.load(Acquire);
        let (mut current, top) = (entry as u32, (entry >> 32) as u8);
        let mut current_sim = dot(&query, vectors.row(current as usize));
        let mut links = Vec::new();
        for l in (level.saturating_add(1)..=top).rev() {
            (current, current_sim) =
                self.greedy(vectors, &query, current, current_sim, l, &mut links);
        }
        for l in (0..=level.min(top)).rev() {
            let found = self.search_layer(
                vectors,
                &query,
                &[Scored(current_sim, current)],
                self.params.ef_construction,
                l,
                |_| true,
            );
            let width = if l == 0 { self.m0() } else { self.params.m };
            let chosen = select_diverse(vectors, &found, width);
            {
                let _guard = self.lock(node);
                self.set_links(node, l, &chosen);
            }
            for &neighbour in &chosen {
                self.link_back(vectors, neighbour, node, l, width, &mut links);
            }
            if let Some(best) = found.first() {
                (current_sim, current) = (best.0, best.1);
            }
        }
        if level > top {
            let _guard = self.entry_lock.lock();
            if level > (self.entry.load(Acquire) >> 32) as u8 {
                self.entry
                    .store((u64::from(level) << 32) | u64::from(node), Release);
            }
        }
    }

    /// Adds `node` to the links of `neighbour`, pruning them to `width` by diversity.
    fn link_back(
        &self,
        vectors: &Matrix,
        neighbour: u32,
        node: u32,
        level: u8,
        width: usize,
        links: &mut Vec<u32>,
    ) {
        let _guard = self.lock(neighbour);
        self.links(neighbour, level, links);
        if links.contains(&node) {
            return;
        }
        if links.len() < width {
            links.push(node);
            self.set_links(neighbour, level, links);
            return;
        }
        let base: Vec<f32> = vectors
            .row(neighbour as usize)
            .iter()
            .map(|v| v.to_f32())
            .collect();
        let mut candidates: Vec<Scored> = links
            .iter()
            .chain(std::iter::once(&node))
            .map(|&c| Scored(dot(&base, vectors.row(c as usize)), c))
            .collect();
        candidates.sort_by(|a, b| b.cmp(a));
        let chosen = select_diverse(vectors, &candidates, width);
        self.set_links(neighbour, level, &chosen);
    }

    fn greedy(
        &self,
        vectors: &Matrix,
        query: &[f32],
        mut current: u32,
        mut current_sim: f32,
        level: u8,
        links: &mut Vec<u32>,
    ) -> (u32, f32) {
        loop {
            let mut moved = false;
            self.links(current, level, links);
            for &link in links.iter() {
                let sim = dot(query, vectors.row(link as usize));
                if sim > current_sim {
                    (current, current_sim, moved) = (link, sim, true);
                }
            }
            if !moved {
                return (current, current_sim);
            }
        }
    }

    /// Best-first search of one layer from `starts`: up to `ef` nodes accepted by `keep`,
    /// best first. Rejected nodes are still walked through.
    fn search_layer(
        &self,
        vectors: &Matrix,
        query: &[f32],
        starts: &[Scored],
        ef: usize,
        level: u8,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<Scored> {
        VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.reset(self.len());
            let mut candidates: BinaryHeap<Scored> = BinaryHeap::new();
            let mut found: BinaryHeap<Reverse<Scored>> = BinaryHeap::new();
            for &start in starts {
                visited.insert(start.1);
                candidates.push(start);
                if keep(start.1) {
                    found.push(Reverse(start));
                }
            }
            let mut links = Vec::with_capacity(self.m0());
            while let Some(candidate) = candidates.pop() {
                if found.len() >= ef {
                    if let Some(Reverse(worst)) = found.peek() {
                        if candidate.0 < worst.0 {
                            break;
                        }
                    }
                }
                self.links(candidate.1, level, &mut links);
                for &link in &links {
                    prefetch(vectors.row(link as usize));
                }
                for &link in &links {
                    if !visited.insert(link) {
                        continue;
                    }
                    let sim = dot(query, vectors.row(link as usize));
                    let worst = found.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
                    if found.len() < ef || sim > worst {
                        candidates.push(Scored(sim, link));
                        if keep(link) {
                            found.push(Reverse(Scored(sim, link)));
                            if found.len() > ef {
                                found.pop();
                            }
                        }
                    }
                }
            }
            let mut out: Vec<Scored> = found.into_iter().map(|r| r.0).collect();
            out.sort_by(|a, b| b.cmp(a));
            out
        })
    }

    /// Up to `ef` nodes accepted by `keep` nearest to `query` (a unit vector of the prefix
    /// width), best first, as `(similarity, node)`.
    pub(crate) fn search(
        &self,
        vectors: &Matrix,
        query: &[f32],
        ef: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<(f32, u32)> {
        let entry = self.entry.load(Acquire);
        if entry == NO_ENTRY {
            return Vec::new();
        }
        let (mut current, top) = (entry as u32, (entry >> 32) as u8);
        let mut current_sim = dot(query, vectors.row(current as usize));
        let mut links = Vec::new();
        for level in (1..=top).rev() {
            (current, current_sim) =
                self.greedy(vectors, query, current, current_sim, level, &mut links);
        }
        self.search_layer(vectors, query, &[Scored(current_sim, current)], ef, 0, keep)
            .into_iter()
            .map(|s| (s.0, s.1))
            .collect()
    }

    /// Writes the graph (levels, links and entry point).
    pub(crate) fn save(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&(self.len() as u64).to_le_bytes())?;
        out.write_all(&self.entry.load(Acquire).to_le_bytes())?;
        out.write_all(&self.levels)?;
        for link in self.layer0.iter().chain(&self.upper) {
            out.write_all(&link.load(Relaxed).to_le_bytes())?;
        }
        Ok(())
    }

    /// Reads a graph written by [`Self::save`] with the same parameters.
    /// Reads a graph of `rows` nodes saved by [`Hnsw::save`]. Every number read is checked
    /// before it sizes an allocation or a slice: a damaged file is an error, never a panic
    /// or an abort.
    pub(crate) fn load(
        params: HnswParams,
        rows: usize,
        input: &mut impl Read,
    ) -> std::io::Result<Self> {
        let invalid =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        if !(1..=MAX_M).contains(&params.m) {
            return Err(invalid("graph parameter m out of range"));
        }
        let mut word = [0u8; 8];
        input.read_exact(&mut word)?;
        let n = usize::try_from(u64::from_le_bytes(word)).map_err(|_| invalid("node count"))?;
        if n != rows {
            return Err(invalid("graph node count is not the snapshot's row count"));
        }
        input.read_exact(&mut word)?;
        let entry = u64::from_le_bytes(word);
        let mut levels = vec![0u8; n];
        input.read_exact(&mut levels)?;
        if levels.iter().any(|&l| l > MAX_LEVEL) {
            return Err(invalid("graph level out of range"));
        }
        let mut graph = Hnsw::new(params);
        graph.levels = levels;
        let mut blocks = 0u32;
        for &level in &graph.levels {
            graph.upper_start.push(blocks);
            blocks = blocks
                .checked_add(u32::from(level))
                .ok_or_else(|| invalid("too many graph layers"))?;
        }
        let expected_bytes = n
            .checked_mul(graph.m0() + 1)
            .zip((blocks as usize).checked_mul(params.m + 1))
            .and_then(|(layer0, upper)| layer0.checked_add(upper))
            .and_then(|words| words.checked_mul(4))
            .ok_or_else(|| invalid("graph too large"))?;
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        if bytes.len() != expected_bytes {
            return Err(invalid("graph file has the wrong size"));
        }
        let mut links = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        graph.layer0 = links
            .by_ref()
            .take(n * (graph.m0() + 1))
            .map(AtomicU32::new)
            .collect();
        graph.upper = links.map(AtomicU32::new).collect();
        let valid_entry = entry == NO_ENTRY
            || ((entry as u32 as usize) < n
                && (entry >> 32) as u8 == graph.levels[entry as u32 as usize]);
        let valid_links = (0..n as u32).all(|node| {
            (0..=graph.levels[node as usize]).all(|level| {
                let block = graph.block(node, level);
                let count = block[0].load(Relaxed) as usize;
                count < block.len()
                    && block[1..=count]
                        .iter()
                        .all(|l| (l.load(Relaxed) as usize) < n)
            })
        });
        if !valid_entry || !valid_links {
            return Err(invalid("graph links out of range"));
        }
        graph.entry.store(entry, Release);
        Ok(graph)
    }
}

/// The diversity heuristic of the HNSW paper: walking `candidates` best first, keep one
/// only if it is closer to the base than to every one kept before, up to `width`.
fn select_diverse(vectors: &Matrix, candidates: &[Scored], width: usize) -> Vec<u32> {
    let mut chosen: Vec<u32> = Vec::with_capacity(width);
    let mut widened: Vec<f32> = Vec::with_capacity(vectors.dim());
    for candidate in candidates {
        if chosen.len() >= width {
            break;
        }
        widen(vectors.row(candidate.1 as usize), &mut widened);
        let diverse = chosen
            .iter()
            .all(|&kept| dot(&widened, vectors.row(kept as usize)) < candidate.0);
        if diverse {
            chosen.push(candidate.1);
        }
    }
    chosen
}

fn widen(row: &[f16], out: &mut Vec<f32>) {
    out.clear();
    out.extend(row.iter().map(|v| v.to_f32()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{MatryoshkaGenerator, MatryoshkaSpec};

    fn matrix(rows: &[Vec<f32>]) -> Matrix {
        let mut m = Matrix::new(rows[0].len());
        for r in rows {
            m.push(&lancet_udf::matryoshka::to_f16(r));
        }
        m
    }

    fn exact(vectors: &Matrix, query: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut all: Vec<Scored> = (0..vectors.rows() as u32)
            .filter(|&i| keep(i))
            .map(|i| Scored(dot(query, vectors.row(i as usize)), i))
            .collect();
        all.sort_by(|a, b| b.cmp(a));
        all.into_iter().take(k).map(|s| s.1).collect()
    }

    fn recall(
        graph: &Hnsw,
        vectors: &Matrix,
        queries: &[Vec<f32>],
        keep: impl Fn(u32) -> bool + Copy,
    ) -> f64 {
        let mut hits = 0;
        for q in queries {
            let truth = exact(vectors, q, 10, keep);
            let found: Vec<u32> = graph
                .search(vectors, q, 64, keep)
                .into_iter()
                .take(10)
                .map(|s| s.1)
                .collect();
            assert!(
                found.iter().all(|&n| keep(n)),
                "a rejected node was returned"
            );
            hits += truth.iter().filter(|t| found.contains(t)).count();
        }
        hits as f64 / (10 * queries.len()) as f64
    }

    fn data(n: usize) -> (Matrix, Vec<Vec<f32>>) {
        let g = MatryoshkaGenerator::new(MatryoshkaSpec {
            dim: 32,
            clusters: 32,
            ..MatryoshkaSpec::default()
        });
        (matrix(&g.sample(n, 0)), g.sample(50, 1))
    }

    #[test]
    fn finds_the_exact_neighbours_of_most_queries() {
        let (vectors, queries) = data(3_000);
        let graph = Hnsw::build(&vectors, HnswParams::default(), 2);
        assert_eq!(graph.len(), 3_000);
        let r = recall(&graph, &vectors, &queries, |_| true);
        assert!(r >= 0.95, "recall@10 {r}");
    }

    #[test]
    fn a_filter_only_admits_kept_nodes_and_keeps_recall() {
        let (vectors, queries) = data(3_000);
        let graph = Hnsw::build(&vectors, HnswParams::default(), 2);
        let r = recall(&graph, &vectors, &queries, |n| n % 5 == 0);
        assert!(r >= 0.9, "filtered recall@10 {r}");
    }

    #[test]
    fn rows_inserted_later_are_found() {
        let (vectors, _) = data(2_000);
        let mut graph = Hnsw::new(HnswParams::default());
        let mut growing = Matrix::new(vectors.dim());
        for i in 0..1_500 {
            growing.push(vectors.row(i));
        }
        graph.insert_rows(&growing, 2);
        for i in 1_500..2_000 {
            growing.push(vectors.row(i));
        }
        graph.insert_rows(&growing, 1);
        for node in [1_500u32, 1_777, 1_999] {
            let q: Vec<f32> = vectors
                .row(node as usize)
                .iter()
                .map(|v| v.to_f32())
                .collect();
            assert_eq!(graph.search(&growing, &q, 32, |_| true)[0].1, node);
        }
    }

    #[test]
    fn saved_graph_loads_identical_and_corruption_is_refused() {
        let (vectors, queries) = data(1_000);
        let graph = Hnsw::build(&vectors, HnswParams::default(), 2);
        let mut bytes = Vec::new();
        graph.save(&mut bytes).unwrap();
        let loaded = Hnsw::load(graph.params(), graph.len(), &mut bytes.as_slice()).unwrap();
        for q in &queries {
            assert_eq!(
                graph.search(&vectors, q, 32, |_| true),
                loaded.search(&vectors, q, 32, |_| true)
            );
        }
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() - 4);
        assert!(Hnsw::load(graph.params(), graph.len(), &mut truncated.as_slice()).is_err());
        let mut scrambled = bytes;
        let at = 16 + 1_000; // the link count of node 0 on layer 0
        scrambled[at..at + 4].copy_from_slice(&1_000u32.to_le_bytes());
        assert!(Hnsw::load(graph.params(), graph.len(), &mut scrambled.as_slice()).is_err());
    }
}

//! Search at scale: Lancet's two-stage search (hot index and Lance-only) against LanceDB's
//! own indexes on the full-width column, on the same table and queries.
//!
//! Data: `--rows` Matryoshka-like 768-d vectors ([`MatryoshkaGenerator`]: 256 clusters,
//! variance decaying over coordinates, the first 128 holding ~72%) stored as fp16 with
//! their 128-d prefixes, languages 1% `go`, 10% `python`, 89% `rust`. Queries are drawn
//! from the same distribution (never copies of stored rows). Ground truth: exact cosine
//! top-10 at 768-d over the stored fp16 vectors (for filtered runs, over the kept rows).
//! For each method and setting: recall@10, p50/p99 latency of one query at a time, QPS
//! with 2 concurrent searches (passes over the queries repeated for at least 2 s), index
//! build time and size. Writes `report.json` and
//! `report.md` to `--out`:
//!
//!     cargo bench --bench search_at_scale -- --rows 100000 --queries 200 --out target/bench-search-100k
//!
//! `--db DIR` keeps the table between runs (rebuilt only if its row count differs);
//! `--methods hot,lance-two-stage,hnsw-sq,ivf-pq,flat` picks methods; `--dump DIR` writes
//! the vectors, queries and ground truth for `scripts/bench_faiss.py`.

use futures::TryStreamExt;
use half::f16;
use lancedb::index::vector::{IvfHnswSqIndexBuilder, IvfPqIndexBuilder};
use lancedb::index::Index;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancedb::DistanceType;
use lancet::engine::synthetic::{MatryoshkaGenerator, MatryoshkaSpec};
use lancet::engine::Chunk;
use lancet::engine::{
    ChunkEmbedding, ChunkTable, Database, EmbeddedChunk, Filter, HotIndexOptions, IndexOptions,
    SearchMode, SearchRequest, TableDims, TableMetadata,
};
use lancet::udf::{ModelIdentity, Pooling};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const K: usize = 10;

/// Least time the QPS measurement of one setting runs.
const QPS_SECONDS: f64 = 2.0;

/// Which rows a filter keeps, by row index (for the ground truth).
type KeepRow = Box<dyn Fn(usize) -> bool + Sync>;

struct Args {
    rows: usize,
    queries: usize,
    out: PathBuf,
    db: Option<PathBuf>,
    /// Where to write the stored vectors, queries and unfiltered ground truth as raw
    /// little-endian arrays, for `scripts/bench_faiss.py`.
    dump: Option<PathBuf>,
    methods: Vec<String>,
}

fn args() -> Args {
    let raw: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        raw.iter()
            .position(|a| a == name)
            .and_then(|i| raw.get(i + 1))
            .cloned()
    };
    Args {
        rows: value("--rows")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000),
        queries: value("--queries")
            .and_then(|v| v.parse().ok())
            .unwrap_or(200),
        out: value("--out").map_or_else(|| PathBuf::from("target/bench-search"), PathBuf::from),
        db: value("--db").map(PathBuf::from),
        dump: value("--dump").map(PathBuf::from),
        methods: value("--methods")
            .unwrap_or_else(|| "hot,lance-two-stage,hnsw-sq,ivf-pq,flat".into())
            .split(',')
            .map(str::to_string)
            .collect(),
    }
}

fn language_of(i: usize) -> &'static str {
    match i % 100 {
        0 => "go",
        1..=10 => "python",
        _ => "rust",
    }
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown".to_string(), |s| s.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memory_gib": (mem_kb as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
    })
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// One measured setting of one method.
#[derive(Debug, Clone, serde::Serialize)]
struct Measurement {
    method: String,
    setting: String,
    filter: String,
    recall_at_10: f64,
    p50_ms: f64,
    p99_ms: f64,
    qps_2_threads: f64,
    build_seconds: Option<f64>,
    index_bytes: Option<u64>,
}

/// How one query is answered.
#[derive(Clone)]
enum Method {
    /// Lancet's search (hot index when the table handle has one, Lance queries otherwise);
    /// `hits`: read the winning rows' columns too.
    Lancet {
        refine: usize,
        ef: usize,
        hits: bool,
    },
    /// One LanceDB vector query on the full-width column.
    Lance {
        nprobes: Option<usize>,
        ef: Option<usize>,
        refine_factor: Option<u32>,
        exact: bool,
    },
}

struct Bench {
    table: ChunkTable,
    queries: Vec<Vec<f32>>,
    index_of: Arc<HashMap<u64, usize>>,
}

impl Bench {
    async fn answer(&self, method: &Method, q: usize, filter: &Filter) -> Vec<usize> {
        match method {
            Method::Lancet { refine, ef, hits } => {
                let request = SearchRequest::new(self.queries[q].clone(), K)
                    .mode(SearchMode::TwoStage { refine: *refine })
                    .ef(*ef)
                    .filter(filter.clone());
                if !*hits {
                    if let Some(rows) = self.table.search_row_ids(&request).await.expect("search") {
                        return rows.iter().map(|(id, _)| self.index_of[id]).collect();
                    }
                }
                let found = self.table.search(&request).await.expect("search");
                found
                    .iter()
                    .map(|h| h.chunk_id.parse().expect("id"))
                    .collect()
            }
            Method::Lance {
                nprobes,
                ef,
                refine_factor,
                exact,
            } => {
                let mut query = self
                    .table
                    .lance()
                    .query()
                    .nearest_to(self.queries[q].clone())
                    .expect("query")
                    .column("embedding")
                    .distance_type(DistanceType::Cosine)
                    .limit(K)
                    .select(Select::columns(&["chunk_id"]));
                if let Some(sql) = filter.to_sql() {
                    query = query.only_if(sql);
                }
                if *exact {
                    query = query.bypass_vector_index();
                }
                if let Some(n) = nprobes {
                    query = query.nprobes(*n).expect("nprobes");
                }
                if let Some(ef) = ef {
                    query = query.ef(*ef);
                }
                if let Some(r) = refine_factor {
                    query = query.refine_factor(*r);
                }
                let batches: Vec<arrow_array::RecordBatch> = query
                    .execute()
                    .await
                    .expect("run")
                    .try_collect()
                    .await
                    .expect("collect");
                batches
                    .iter()
                    .flat_map(|b| {
                        let ids = b
                            .column(0)
                            .as_any()
                            .downcast_ref::<arrow_array::StringArray>()
                            .expect("ids");
                        (0..b.num_rows())
                            .map(|i| ids.value(i).parse::<usize>().expect("id"))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Measures methods on one table and collects the measurements.
struct Runner<'a> {
    rt: &'a tokio::runtime::Runtime,
    /// Filters by name, the first keeping every row.
    filters: &'a [(&'static str, Filter)],
    /// Exact top-10 of every query under each filter.
    truths: &'a [Vec<Vec<usize>>],
    queries: usize,
    results: Vec<Measurement>,
}

impl Runner<'_> {
    /// Recall, latency of one query at a time, and QPS of two concurrent searchers, of
    /// `method` under filter `filter`; `build` is the index build time and size.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        bench: &Arc<Bench>,
        name: &str,
        setting: String,
        method: Method,
        filter: usize,
        queries: usize,
        build: Option<(f64, u64)>,
    ) {
        let (filter_name, truth) = (self.filters[filter].0, &self.truths[filter]);
        let filter = &self.filters[filter].1;
        let queries = queries.min(self.queries).min(bench.queries.len());
        let rt = self.rt;
        // Warm-up: caches, lazily opened index files.
        rt.block_on(async {
            for q in 0..queries.min(20) {
                bench.answer(&method, q, filter).await;
            }
        });
        let mut latencies = Vec::with_capacity(queries);
        let mut hits = 0usize;
        for (q, truth) in truth.iter().enumerate().take(queries) {
            let start = Instant::now();
            let found = rt.block_on(bench.answer(&method, q, filter));
            latencies.push(start.elapsed().as_secs_f64() * 1e3);
            hits += truth.iter().filter(|t| found.contains(t)).count();
        }
        latencies.sort_by(f64::total_cmp);
        // Passes over the queries until QPS_SECONDS have gone by: one pass of a fast
        // method lasts milliseconds, too short to give a stable rate.
        let start = Instant::now();
        let mut answered = 0;
        while answered == 0 || start.elapsed().as_secs_f64() < QPS_SECONDS {
            rt.block_on(async {
                let mut tasks = Vec::new();
                for worker in 0..2 {
                    let (bench, method, filter) = (bench.clone(), method.clone(), filter.clone());
                    tasks.push(tokio::spawn(async move {
                        for q in (worker..queries).step_by(2) {
                            bench.answer(&method, q, &filter).await;
                        }
                    }));
                }
                for task in tasks {
                    task.await.expect("worker");
                }
            });
            answered += queries;
        }
        let qps = answered as f64 / start.elapsed().as_secs_f64();
        let m = Measurement {
            method: name.to_string(),
            setting,
            filter: filter_name.to_string(),
            recall_at_10: hits as f64 / (K * queries) as f64,
            p50_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
            qps_2_threads: qps,
            build_seconds: build.map(|b| b.0),
            index_bytes: build.map(|b| b.1),
        };
        println!(
            "{:<18} {:<40} {:<5} recall {:.3}  p50 {:>8.3} ms  p99 {:>8.3} ms  {:>7.0} qps",
            m.method, m.setting, m.filter, m.recall_at_10, m.p50_ms, m.p99_ms, m.qps_2_threads
        );
        self.results.push(m);
    }
}

/// Runs `build` and returns its seconds and how much it grew `dir` on disk.
fn timed_build<T>(
    dir: &Path,
    build: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(f64, u64)> {
    let before = dir_bytes(dir);
    let started = Instant::now();
    build()?;
    Ok((
        started.elapsed().as_secs_f64(),
        dir_bytes(dir).saturating_sub(before),
    ))
}

fn exact_truth(
    data: &[f16],
    dim: usize,
    queries: &[Vec<f32>],
    keep: impl Fn(usize) -> bool + Sync,
) -> Vec<Vec<usize>> {
    let rows = data.len() / dim;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = queries.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per.max(1))
            .map(|part| {
                let keep = &keep;
                s.spawn(move || {
                    part.iter()
                        .map(|q| {
                            let mut best: Vec<(f32, usize)> = Vec::with_capacity(K + 1);
                            for i in (0..rows).filter(|&i| keep(i)) {
                                let v = &data[i * dim..(i + 1) * dim];
                                let s: f32 = q.iter().zip(v).map(|(a, b)| a * b.to_f32()).sum();
                                if best.len() < K || s > best[K - 1].0 {
                                    best.push((s, i));
                                    best.sort_by(|a, b| b.0.total_cmp(&a.0));
                                    best.truncate(K);
                                }
                            }
                            best.into_iter().map(|(_, i)| i).collect()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("truth"))
            .collect()
    })
}

fn model() -> ModelIdentity {
    ModelIdentity {
        id: "bench/synthetic-matryoshka".into(),
        revision: "1".into(),
        pooling: Pooling::LastToken,
        prompt_set: lancet::udf::PROMPT_SET.into(),
        dim: 768,
    }
}

async fn table_of(db: &Database, vectors: &[Vec<f32>]) -> anyhow::Result<ChunkTable> {
    if let Ok(table) = db.open_table("chunks").await {
        if table.count(None).await? == vectors.len() {
            println!("reusing the table of {} rows", vectors.len());
            return Ok(table);
        }
        db.drop_table("chunks").await?;
    }
    let table = db
        .create_table("chunks", TableMetadata::new(model(), TableDims::default())?)
        .await?;
    let started = Instant::now();
    for (part, batch) in vectors.chunks(50_000).enumerate() {
        let rows: Vec<EmbeddedChunk> = batch
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = part * 50_000 + j;
                let language = language_of(i);
                EmbeddedChunk {
                    chunk: Chunk {
                        chunk_id: i.to_string(),
                        repo: "bench".into(),
                        path: format!("src/{language}/m{}/f{i}.x", i % 97),
                        language: language.into(),
                        // Varied like real chunks: a column whose values are all
                        // equal is stored as one constant, which reads differently.
                        start_line: 1 + (i % 400) as u32,
                        end_line: 21 + (i % 400 + i % 13) as u32,
                        start_byte: (i % 400 * 40) as u64,
                        end_byte: (i % 400 * 40 + 600 + i % 13) as u64,
                        symbol: Some(format!("item_{i}")),
                        kind: ["function", "method", "class", "lines"][i % 4].into(),
                        text: format!("fn item_{i}() {{ /* chunk {i} */ }}"),
                        content_hash: format!("c{i}"),
                        file_hash: format!("f{i}"),
                    },
                    embedding: ChunkEmbedding::Pooled(v.clone()),
                }
            })
            .collect();
        table.append(&rows).await?;
    }
    println!(
        "wrote {} rows in {:.1} s",
        vectors.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(table)
}

/// Writes `vectors.f32` (the stored fp16 vectors widened, row-major), `queries.f32` and
/// `truth.u32` (the exact top-10 row indexes of each query), little-endian.
fn dump(
    dir: &std::path::Path,
    stored: &[f16],
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = |values: &mut dyn Iterator<Item = [u8; 4]>| values.flatten().collect::<Vec<u8>>();
    std::fs::write(
        dir.join("vectors.f32"),
        bytes(&mut stored.iter().map(|x| x.to_f32().to_le_bytes())),
    )?;
    std::fs::write(
        dir.join("queries.f32"),
        bytes(&mut queries.iter().flatten().map(|x| x.to_le_bytes())),
    )?;
    std::fs::write(
        dir.join("truth.u32"),
        bytes(
            &mut truth
                .iter()
                .flat_map(|t| t.iter().map(|&i| (i as u32).to_le_bytes())),
        ),
    )?;
    println!(
        "vectors, queries and ground truth written to {}",
        dir.display()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let machine = machine();
    println!("machine: {machine}");
    println!(
        "rows {}, queries {}, methods {:?}",
        args.rows, args.queries, args.methods
    );
    let generator = MatryoshkaGenerator::new(MatryoshkaSpec::default());
    let started = Instant::now();
    let vectors = generator.sample(args.rows, 0);
    let queries = generator.sample(args.queries, 1);
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());
    let tmp;
    let db_dir = match &args.db {
        Some(dir) => dir.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let db = rt.block_on(Database::open(&db_dir))?;
    let table = rt.block_on(table_of(&db, &vectors))?;
    let stored: Vec<f16> = vectors
        .iter()
        .flat_map(|v| v.iter().map(|&x| f16::from_f32(x)))
        .collect();
    drop(vectors);
    let started = Instant::now();
    let filters: Vec<(&'static str, Filter, KeepRow)> = vec![
        ("none", Filter::default(), Box::new(|_| true)),
        (
            "10%",
            Filter {
                languages: vec!["python".into()],
                ..Filter::default()
            },
            Box::new(|i| language_of(i) == "python"),
        ),
        (
            "1%",
            Filter {
                languages: vec!["go".into()],
                ..Filter::default()
            },
            Box::new(|i| language_of(i) == "go"),
        ),
    ];
    let truths: Vec<Vec<Vec<usize>>> = filters
        .iter()
        .map(|(_, _, keep)| exact_truth(&stored, 768, &queries, keep))
        .collect();
    println!("ground truth in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(dir) = &args.dump {
        dump(dir, &stored, &queries, &truths[0])?;
    }
    drop(stored);
    let index_of: HashMap<u64, usize> = rt.block_on(async {
        let batches: Vec<arrow_array::RecordBatch> = table
            .lance()
            .query()
            .select(Select::columns(&["chunk_id"]))
            .with_row_id()
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut map = HashMap::new();
        for b in &batches {
            let ids = b
                .column_by_name("chunk_id")
                .and_then(|c| {
                    c.as_any()
                        .downcast_ref::<arrow_array::StringArray>()
                        .cloned()
                })
                .expect("ids");
            let rows = b
                .column_by_name("_rowid")
                .and_then(|c| {
                    c.as_any()
                        .downcast_ref::<arrow_array::UInt64Array>()
                        .cloned()
                })
                .expect("rowid");
            for i in 0..b.num_rows() {
                map.insert(rows.value(i), ids.value(i).parse::<usize>()?);
            }
        }
        anyhow::Ok(map)
    })?;
    let bench = Arc::new(Bench {
        table: table.clone(),
        queries,
        index_of: Arc::new(index_of),
    });
    let table_dir = db_dir.join("chunks.lance");
    let filters: Vec<(&'static str, Filter)> = filters
        .into_iter()
        .map(|(name, filter, _)| (name, filter))
        .collect();
    let mut runner = Runner {
        rt: &rt,
        filters: &filters,
        truths: &truths,
        queries: args.queries,
        results: Vec::new(),
    };
    let wants = |m: &str| args.methods.iter().any(|x| x == m);
    let all = usize::MAX;
    let lancet = |refine: usize, ef: usize, hits: bool| Method::Lancet { refine, ef, hits };
    let lance =
        |nprobes: Option<usize>, ef: Option<usize>, refine_factor: Option<u32>| Method::Lance {
            nprobes,
            ef,
            refine_factor,
            exact: false,
        };

    // LanceDB's own index on the 768-d column, replacing the previous one.
    let full_width_index = |index: Index| {
        timed_build(&table_dir, || {
            let create = table.lance().create_index(&["embedding"], index);
            rt.block_on(create.replace(true).execute())?;
            Ok(())
        })
    };

    if wants("hot") {
        let hot_dir = db_dir.join("chunks.hot");
        let mut build = Some(timed_build(&hot_dir, || {
            let report = rt.block_on(table.build_hot_index(&HotIndexOptions::default()))?;
            println!("hot index: {report:?}");
            Ok(())
        })?);
        for (refine, ef) in [(5, 32), (5, 64), (10, 64), (10, 100), (10, 160), (20, 200)] {
            let setting = format!("HNSW 128-d, shortlist {}, ef {ef}", refine * K);
            runner.run(
                &bench,
                "lancet-hot",
                setting,
                lancet(refine, ef, false),
                0,
                all,
                build.take(),
            );
        }
        let setting = "shortlist 100, ef 100, rows read from Lance".to_string();
        runner.run(
            &bench,
            "lancet-hot+rows",
            setting,
            lancet(10, 100, true),
            0,
            all,
            None,
        );
        for f in 1..filters.len() {
            let setting = "HNSW 128-d, shortlist 100, ef 100".to_string();
            runner.run(
                &bench,
                "lancet-hot",
                setting,
                lancet(10, 100, false),
                f,
                all,
                None,
            );
        }
        rt.block_on(table.drop_hot_index())?;
    }
    if wants("lance-two-stage") {
        // A handle without the hot index: the two-stage search as Lance queries.
        let handle = rt.block_on(db.open_table("chunks"))?;
        let mut build = Some(timed_build(&table_dir, || {
            rt.block_on(handle.ensure_indexes(&IndexOptions::default()))?;
            Ok(())
        })?);
        let lance_bench = Arc::new(Bench {
            table: handle,
            queries: bench.queries.clone(),
            index_of: bench.index_of.clone(),
        });
        for refine in [5, 10] {
            let setting = format!(
                "IVF_FLAT 128-d + scalar/FTS indexes, shortlist {}",
                refine * K
            );
            runner.run(
                &lance_bench,
                "lancet-lance",
                setting,
                lancet(refine, 0, true),
                0,
                all,
                build.take(),
            );
        }
        for f in 1..filters.len() {
            let setting = "IVF_FLAT 128-d, shortlist 100".to_string();
            runner.run(
                &lance_bench,
                "lancet-lance",
                setting,
                lancet(10, 0, true),
                f,
                all,
                None,
            );
        }
    }
    if wants("hnsw-sq") {
        let index =
            Index::IvfHnswSq(IvfHnswSqIndexBuilder::default().distance_type(DistanceType::Cosine));
        let mut build = Some(full_width_index(index)?);
        for (ef, refine) in [(64, None), (110, None), (200, None), (110, Some(5))] {
            let setting = format!(
                "768-d, ef {ef}{}",
                refine.map_or(String::new(), |r| format!(", refine {r}"))
            );
            runner.run(
                &bench,
                "lancedb-hnsw-sq",
                setting,
                lance(None, Some(ef), refine),
                0,
                all,
                build.take(),
            );
        }
        for f in 1..filters.len() {
            runner.run(
                &bench,
                "lancedb-hnsw-sq",
                "768-d, ef 110".into(),
                lance(None, Some(110), None),
                f,
                all,
                None,
            );
        }
    }
    if wants("ivf-pq") {
        let partitions = ((args.rows as f64).sqrt() as u32).max(1);
        let index = Index::IvfPq(
            IvfPqIndexBuilder::default()
                .distance_type(DistanceType::Cosine)
                .num_partitions(partitions)
                .num_sub_vectors(96),
        );
        let mut build = Some(full_width_index(index)?);
        for (nprobes, refine) in [(20, None), (20, Some(5)), (50, Some(10))] {
            let setting = format!(
                "768-d, {partitions} partitions, 96 sub-vectors, nprobes {nprobes}{}",
                refine.map_or(String::new(), |r| format!(", refine {r}"))
            );
            runner.run(
                &bench,
                "lancedb-ivf-pq",
                setting,
                lance(Some(nprobes), None, refine),
                0,
                all,
                build.take(),
            );
        }
    }
    if wants("flat") {
        let exact = Method::Lance {
            nprobes: None,
            ef: None,
            refine_factor: None,
            exact: true,
        };
        runner.run(
            &bench,
            "lance-flat",
            "768-d exact".into(),
            exact,
            0,
            20,
            None,
        );
    }
    let results = runner.results;

    std::fs::create_dir_all(&args.out)?;
    let report = json!({
        "machine": machine,
        "rows": args.rows,
        "queries": args.queries,
        "k": K,
        "data": "MatryoshkaGenerator::default(): 768-d, 256 clusters, noise 0.6, decay 200, seed 42; fp16 storage",
        "measurements": results,
    });
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(
        args.out.join("report.md"),
        markdown(&args, &machine, &results),
    )?;
    println!("report written to {}", args.out.display());
    Ok(())
}

fn markdown(args: &Args, machine: &serde_json::Value, results: &[Measurement]) -> String {
    let mut md = format!(
        "# Search at {} rows\n\nMachine: {} ({} cores, {} GiB). {} queries, k = {K}; recall@10 against exact 768-d cosine.\n\n\
         | method | setting | filter | recall@10 | p50 ms | p99 ms | QPS (2 threads) | build s | index MiB |\n|---|---|---|---|---|---|---|---|---|\n",
        args.rows, machine["cpu"], machine["cores"], machine["memory_gib"], args.queries
    );
    for m in results {
        md += &format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.0} | {} | {} |\n",
            m.method,
            m.setting,
            m.filter,
            m.recall_at_10,
            m.p50_ms,
            m.p99_ms,
            m.qps_2_threads,
            m.build_seconds.map_or(String::new(), |s| format!("{s:.1}")),
            m.index_bytes
                .map_or(String::new(), |b| format!("{:.1}", b as f64 / 1048576.0)),
        );
    }
    let best = |prefix: &str| {
        results
            .iter()
            .filter(|m| {
                m.method.starts_with(prefix) && m.filter == "none" && m.recall_at_10 >= 0.95
            })
            .max_by(|a, b| a.qps_2_threads.total_cmp(&b.qps_2_threads))
    };
    let ours = best("lancet-hot");
    let theirs = ["lancedb-hnsw-sq", "lancedb-ivf-pq", "lance-flat"]
        .iter()
        .filter_map(|p| best(p))
        .max_by(|a, b| a.qps_2_threads.total_cmp(&b.qps_2_threads));
    md += "\nBest QPS at recall@10 >= 0.95 (no filter):\n\n";
    for m in [ours, theirs].into_iter().flatten() {
        md += &format!(
            "- {} ({}): {:.0} QPS, p50 {:.3} ms, recall {:.3}\n",
            m.method, m.setting, m.qps_2_threads, m.p50_ms, m.recall_at_10
        );
    }
    if let (Some(a), Some(b)) = (ours, theirs) {
        md += &format!(
            "- ratio Lancet / best alternative: {:.1}x QPS, {:.1}x lower p50\n",
            a.qps_2_threads / b.qps_2_threads,
            b.p50_ms / a.p50_ms
        );
    }
    md
}

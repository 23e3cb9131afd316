//! Scale-out: a job split into N shards and landed by one commit, against one run.
//!
//! On a source tree (PATH, default: this repository), with the tests' tiny random Qwen2,
//! for each store (a local folder; and a local S3 server, moto, when `moto_server` is
//! installed) into fresh tables:
//! - one ordinary run (`index_directory`), the baseline;
//! - for N = 1, 2 and 4: each shard staged (one after another here: its time is what
//!   one worker of N spends), then `commit_stage`; reports each shard's time and rows,
//!   the commit's time and rows/s, and the wall time N workers would take (the slowest
//!   shard plus the commit);
//! - how long a reader opened before the commit takes to see it, at the default read
//!   consistency (5 s) and at `strong`.
//!
//! Writes `target/bench-scale-out.json`:
//!
//!     cargo bench --bench scale_out -- [PATH] [--threads N] [--no-s3]

#[path = "support/args.rs"]
mod args;
#[path = "../tests/end_to_end/support/s3.rs"]
#[allow(dead_code)] // the tests' fault injection
mod s3;
#[path = "../tests/end_to_end/support/tiny_model.rs"]
mod tiny_model;

use args::arg;
use lancet::engine::ingest::{
    commit_stage, index_directory, index_shard, IngestOptions, ShardInput, Stage,
};
use lancet::engine::{
    ChunkTable, Consistency, Database, DatabaseOptions, DbLocation, TableDims, TableMetadata,
};
use lancet::udf::{Encoder, EncoderOptions, QwenEncoder};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the bench's tables live.
struct Store {
    name: &'static str,
    base: String,
    storage_options: Vec<(String, String)>,
    local: PathBuf,
}

impl Store {
    async fn database(&self, path: &str, consistency: Consistency) -> anyhow::Result<Database> {
        let location = DbLocation::parse(&format!("{}/{path}", self.base));
        Ok(Database::connect(
            location,
            DatabaseOptions {
                consistency,
                storage_options: self.storage_options.clone(),
                local_dir: Some(self.local.join(path)),
            },
        )
        .await?)
    }

    async fn table(
        &self,
        path: &str,
        encoder: &Arc<dyn Encoder>,
        consistency: Consistency,
    ) -> anyhow::Result<ChunkTable> {
        let dims = TableDims::for_model(encoder.identity().dim);
        let metadata = TableMetadata::new(encoder.identity().clone(), dims)?;
        let db = self.database(path, consistency).await?;
        Ok(db.open_or_create_table("chunks", metadata).await?)
    }
}

fn options(threads: usize) -> IngestOptions {
    IngestOptions {
        repo: "bench".into(),
        threads,
        ..IngestOptions::default()
    }
}

/// How long `reader` takes to count `rows` rows.
async fn time_to_see(reader: &ChunkTable, rows: usize, since: Instant) -> anyhow::Result<f64> {
    while reader.stats().await?.rows < rows {
        if since.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the reader did not see the commit within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(since.elapsed().as_secs_f64())
}

async fn bench_store(
    store: &Store,
    encoder: &Arc<dyn Encoder>,
    root: &Path,
    threads: usize,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let single = store
        .table("single", encoder, Consistency::default())
        .await?;
    let summary = index_directory(
        &single,
        encoder.clone(),
        root,
        &options(threads),
        &mut |_| {},
    )
    .await?;
    let single_seconds = started.elapsed().as_secs_f64();
    let rows = single.stats().await?.rows;
    println!(
        "[{}] one run: {} files, {rows} rows in {single_seconds:.2} s",
        store.name, summary.files_indexed
    );
    let mut runs = Vec::new();
    for count in [1u32, 2, 4] {
        let table = store
            .table(&format!("sharded-{count}"), encoder, Consistency::Strong)
            .await?;
        let eventual = store
            .table(&format!("sharded-{count}"), encoder, Consistency::default())
            .await?;
        let strong = store
            .table(&format!("sharded-{count}"), encoder, Consistency::Strong)
            .await?;
        let stage = Stage::new(
            store
                .database(&format!("stage-{count}"), Consistency::default())
                .await?,
        );
        let inputs = [ShardInput {
            root: root.to_path_buf(),
            options: options(threads),
        }];
        let mut shards = Vec::new();
        for index in 0..count {
            let at = Instant::now();
            let manifest = index_shard(
                &table,
                encoder.clone(),
                &inputs,
                &stage,
                (index, count),
                &mut |_| {},
            )
            .await?;
            shards.push((
                at.elapsed().as_secs_f64(),
                manifest.rows,
                manifest.files.len(),
            ));
        }
        // The readers' last look is just before the commit: the eventual one's wait for
        // its next check is then the whole interval, the worst case.
        eventual.stats().await?;
        strong.stats().await?;
        let at = Instant::now();
        let commit = commit_stage(&table, &stage, false).await?;
        let commit_seconds = at.elapsed().as_secs_f64();
        let committed = Instant::now();
        let strong_seen = time_to_see(&strong, rows, committed).await?;
        let eventual_seen = time_to_see(&eventual, rows, committed).await?;
        let again = Instant::now();
        let second = commit_stage(&table, &stage, false).await?;
        let second_seconds = again.elapsed().as_secs_f64();
        let now = table.stats().await?.rows;
        if !second.already_committed || now != rows {
            anyhow::bail!(
                "a second commit changed the table (or the tree changed during the bench): \
                 {second:?}, {now} rows, not {rows}"
            );
        }
        let slowest = shards.iter().map(|s| s.0).fold(0.0, f64::max);
        println!(
            "[{}] {count} shards: {} s each (rows {:?}); commit {:.2} s ({:.0} rows/s); \
             wall time on {count} workers {:.2} s ({:.2}x one run); readers saw it after \
             {strong_seen:.2} s (strong) and {eventual_seen:.2} s (eventual, 5 s); a second \
             commit found it in {second_seconds:.2} s",
            store.name,
            shards
                .iter()
                .map(|s| format!("{:.2}", s.0))
                .collect::<Vec<_>>()
                .join("/"),
            shards.iter().map(|s| s.1).collect::<Vec<_>>(),
            commit_seconds,
            commit.inserted as f64 / commit_seconds.max(1e-9),
            slowest + commit_seconds,
            single_seconds / (slowest + commit_seconds).max(1e-9),
        );
        runs.push(json!({
            "shards": count,
            "shard_seconds": shards.iter().map(|s| s.0).collect::<Vec<_>>(),
            "shard_rows": shards.iter().map(|s| s.1).collect::<Vec<_>>(),
            "shard_files": shards.iter().map(|s| s.2).collect::<Vec<_>>(),
            "commit_seconds": commit_seconds,
            "commit_rows_per_second": commit.inserted as f64 / commit_seconds.max(1e-9),
            "rows": commit.inserted,
            "wall_seconds_on_n_workers": slowest + commit_seconds,
            "reader_sees_commit_seconds": { "strong": strong_seen, "eventual_5s": eventual_seen },
            "second_commit_seconds": second_seconds,
        }));
    }
    Ok(json!({
        "store": store.name,
        "single_run": { "seconds": single_seconds, "rows": rows, "files": summary.files_indexed },
        "sharded": runs,
    }))
}

fn main() -> anyhow::Result<()> {
    let root = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--") && Path::new(a).is_dir())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let threads: usize = arg("--threads", 0);
    let with_s3 = !std::env::args().any(|a| a == "--no-s3");
    let tiny = tempfile::tempdir()?;
    tiny_model::write_tiny_model(tiny.path(), 7);
    let encoder: Arc<dyn Encoder> = Arc::new(QwenEncoder::load(
        &tiny.path().display().to_string(),
        EncoderOptions {
            max_document_tokens: IngestOptions::default().chunk_tokens + 64,
            ..EncoderOptions::default()
        },
    )?);
    let runtime = tokio::runtime::Runtime::new()?;
    let work = tempfile::tempdir()?;
    let mut stores = vec![Store {
        name: "local folder",
        base: work.path().join("folder").display().to_string(),
        storage_options: Vec::new(),
        local: work.path().join("folder-local"),
    }];
    let server = if with_s3 { s3::S3::start() } else { None };
    if let Some(server) = &server {
        stores.push(Store {
            name: "S3 (moto, loopback)",
            base: server.uri("bench"),
            storage_options: server.storage_options(),
            local: work.path().join("s3-local"),
        });
    }
    println!("{} with the tiny random Qwen2", root.display());
    let mut results = Vec::new();
    for store in &stores {
        results.push(runtime.block_on(bench_store(store, &encoder, &root, threads))?);
    }
    let report = json!({ "root": root.display().to_string(), "stores": results });
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale-out.json");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

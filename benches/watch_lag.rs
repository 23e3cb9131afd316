//! The live index under edits: the save-to-searchable lag of `watch`, and what 1,000
//! single-file edits do to the table (disk size against a fresh index of the same tree,
//! versions kept), right after the last edit and once the watcher has settled (edits
//! paused for the retention: compaction and pruning, then after the retention again the
//! pruning of the compaction's own versions).
//!
//!     cargo bench --bench watch_lag -- [--files 200] [--lag-edits 30] [--edits 1000]
//!         [--retention-secs 30]
//!
//! The encoder is the tests' tiny random Qwen2 (the model's cost is not what is measured
//! here; add the embedding time of one file for a real model). Lag: from the write of a
//! file to the moment a separate reader's handle sees its new content hash. Prints the
//! numbers and writes `target/bench-watch.json`.

use lancet::engine::ingest::{
    content_hash, index_directory, watch_directory, IngestOptions, WatchEvent, WatchOptions,
};
use lancet::engine::{ChunkTable, Consistency, Database, TableDims, TableMetadata};
use lancet::udf::{Encoder, EncoderOptions, QwenEncoder};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/end_to_end/support/tiny_model.rs"]
mod tiny_model;

#[path = "support/args.rs"]
mod args;

use args::arg;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn source(i: usize, edit: usize) -> String {
    format!(
        "/// Function {i}, edit {edit}.\npub fn function_{i}(x: u64) -> u64 {{\n    \
         let y = x * {edit} + {i};\n    y.rotate_left(3) ^ 0x5a\n}}\n"
    )
}

fn folder_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Bytes under each folder of the table (data, indexes, versions, ...).
fn table_breakdown(db: &Path) -> serde_json::Value {
    let table = db.join("chunks.lance");
    let mut out = serde_json::Map::new();
    for entry in std::fs::read_dir(&table).into_iter().flatten().flatten() {
        let bytes = if entry.path().is_dir() {
            folder_bytes(&entry.path())
        } else {
            entry.metadata().map_or(0, |m| m.len())
        };
        out.insert(
            entry.file_name().to_string_lossy().into_owned(),
            bytes.into(),
        );
    }
    out.into()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn new_table(db: &Path, encoder: &dyn Encoder) -> Result<ChunkTable> {
    let db = Database::open(db).await?;
    let dims = TableDims::for_model(encoder.identity().dim);
    let metadata = TableMetadata::new(encoder.identity().clone(), dims)?;
    Ok(db.create_table("chunks", metadata).await?)
}

fn main() -> Result<()> {
    let files: usize = arg("--files", 200);
    let lag_edits: usize = arg("--lag-edits", 30);
    let edits: usize = arg("--edits", 1000);
    let retention = Duration::from_secs(arg("--retention-secs", 30u64));
    let work = tempfile::tempdir()?;
    // `--keep 1`: the folders stay for inspection.
    let keep = (arg("--keep", 0u32) == 1).then(|| work.path().to_path_buf());
    let (model, repo) = (work.path().join("model"), work.path().join("repo"));
    tiny_model::write_tiny_model(&model, 7);
    std::fs::create_dir_all(repo.join("src"))?;
    for i in 0..files {
        std::fs::write(repo.join(format!("src/f{i}.rs")), source(i, 0))?;
    }
    let encoder: Arc<dyn Encoder> = Arc::new(QwenEncoder::load(
        model.to_str().ok_or("model path")?,
        EncoderOptions::default(),
    )?);
    let runtime = tokio::runtime::Runtime::new()?;
    let watched_db = work.path().join("watched");
    let table = runtime.block_on(new_table(&watched_db, encoder.as_ref()))?;
    let reader = runtime.block_on(async {
        Database::open_with(&watched_db, Consistency::Strong)
            .await?
            .open_table("chunks")
            .await
    })?;

    // Indexed bursts as (files, commits); optimizations as (0, 0) with versions removed.
    let (tell, events) = mpsc::channel::<(usize, usize, u64)>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = IngestOptions {
        repo: "r".into(),
        ..IngestOptions::default()
    };
    let watch = WatchOptions {
        retention,
        ..WatchOptions::default()
    };
    let quiet_ms = watch.quiet.as_millis();
    let watcher = {
        let (encoder, repo, options) = (encoder.clone(), repo.clone(), options.clone());
        runtime.spawn(async move {
            let mut report = |event: WatchEvent<'_>| match event {
                WatchEvent::Indexed { summary, .. } => {
                    let _ = tell.send((summary.files_indexed, summary.commits, 0));
                }
                WatchEvent::Optimized(report) => {
                    let _ = tell.send((0, 0, report.versions_removed));
                }
                _ => {}
            };
            let stop = async {
                let _ = stopped.await;
            };
            watch_directory(&table, encoder, &repo, &options, &watch, stop, &mut report).await
        })
    };
    // The watcher indexes the tree first; wait until the reader sees every file.
    let started = Instant::now();
    while runtime.block_on(reader.file_hashes("r"))?.len() < files {
        if started.elapsed() > Duration::from_secs(600) {
            return Err("the first index took over 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut edit = 0;
    let mut one_edit = |i: usize| -> Result<f64> {
        edit += 1;
        let text = source(i, edit);
        let path = format!("src/f{i}.rs");
        let saved = Instant::now();
        std::fs::write(repo.join(&path), &text)?;
        let want = content_hash(text.as_bytes());
        loop {
            let seen = runtime.block_on(reader.file_hashes("r"))?;
            if seen.get(&path) == Some(&want) {
                return Ok(saved.elapsed().as_secs_f64());
            }
            if saved.elapsed() > Duration::from_secs(60) {
                return Err(format!("edit {edit} not searchable after 60 s").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut lags: Vec<f64> = (0..lag_edits)
        .map(|n| one_edit(n % files))
        .collect::<Result<_>>()?;
    lags.sort_by(f64::total_cmp);
    let versions_on_disk = || {
        std::fs::read_dir(watched_db.join("chunks.lance/_versions"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "manifest"))
                    .count()
            })
            .unwrap_or(0)
    };
    let growth_started = Instant::now();
    let mut most_versions = 0;
    for n in 0..edits {
        one_edit((n * 7) % files)?;
        most_versions = most_versions.max(versions_on_disk());
    }
    let growth_seconds = growth_started.elapsed().as_secs_f64();
    let after_edits = (versions_on_disk(), folder_bytes(&watched_db));
    let mut reports: Vec<(usize, usize, u64)> = events.try_iter().collect();
    // Edits have stopped: the watcher settles after the retention.
    let settle_started = Instant::now();
    let deadline = retention + Duration::from_secs(120);
    while versions_on_disk() > 1 {
        let left = deadline.saturating_sub(settle_started.elapsed());
        let report = events
            .recv_timeout(left)
            .map_err(|_| "the watcher never settled")?;
        reports.push(report);
    }
    let settle_seconds = settle_started.elapsed().as_secs_f64();
    let _ = stop.send(());
    runtime.block_on(watcher)??;
    let bursts: Vec<&(usize, usize, u64)> = reports.iter().filter(|r| r.1 > 0).collect();
    let optimizations = reports.iter().filter(|r| r.1 == 0).count();

    let versions_kept = versions_on_disk();
    let version = runtime.block_on(reader.version())?;
    let watched_bytes = folder_bytes(&watched_db);
    let fresh_db = work.path().join("fresh");
    let fresh = runtime.block_on(new_table(&fresh_db, encoder.as_ref()))?;
    runtime.block_on(async {
        index_directory(&fresh, encoder.clone(), &repo, &options, &mut |_| {}).await?;
        fresh.ensure_indexes(&Default::default()).await
    })?;
    let fresh_bytes = folder_bytes(&fresh_db);

    let report = serde_json::json!({
        "files": files, "quiet_ms": quiet_ms as u64,
        "lag_edits": lag_edits,
        "lag_ms": {
            "p50": percentile(&lags, 0.5) * 1e3,
            "p95": percentile(&lags, 0.95) * 1e3,
            "max": percentile(&lags, 1.0) * 1e3,
        },
        "edits": edits, "edit_seconds": growth_seconds,
        "bursts": bursts.len(),
        "commits": bursts.iter().map(|b| b.1).sum::<usize>(),
        "optimizations": optimizations,
        "retention_s": retention.as_secs(),
        "table_version": version,
        "most_versions_on_disk_while_editing": most_versions,
        "after_last_edit": {
            "versions_on_disk": after_edits.0, "bytes": after_edits.1,
            "disk_ratio": after_edits.1 as f64 / fresh_bytes.max(1) as f64,
        },
        "settled": {
            "seconds_after_last_edit": settle_seconds,
            "versions_on_disk": versions_kept, "bytes": watched_bytes,
            "disk_ratio": watched_bytes as f64 / fresh_bytes.max(1) as f64,
            "by_folder": table_breakdown(&watched_db),
        },
        "fresh_by_folder": table_breakdown(&fresh_db),
        "fresh_bytes": fresh_bytes,
    });
    println!("{report}");
    if let Some(path) = keep {
        eprintln!("kept {}", path.display());
        let _ = work.keep();
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::write(format!("{target}/bench-watch.json"), report.to_string())?;
    Ok(())
}

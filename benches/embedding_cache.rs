//! The machine-wide embedding cache: what a stored vector costs to write and to read back
//! (896-d, the 0.5B model's width), against what embedding the text again costs.
//!
//!     cargo bench --bench embedding_cache -- [--entries 10000] [--dim 896]
//!
//! Writes `--entries` vectors, reads each back (hits), looks up as many absent texts
//! (misses), and prunes the cache to half its size; each in one thread, on the disk of
//! the system's temporary folder. Prints one JSON line and writes
//! `$CARGO_TARGET_DIR/bench-embedding-cache.json`.

use lancet::engine::cache::EmbeddingCache;
use lancet::schemas::{ModelIdentity, Pooling};
use std::time::Instant;

#[path = "support/args.rs"]
mod args;

use args::arg;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let entries = arg("--entries", 10_000);
    let dim = arg("--dim", 896);
    let dir = tempfile::tempdir()?;
    let cache = EmbeddingCache::new(dir.path(), u64::MAX);
    let model = ModelIdentity {
        id: "bench".into(),
        revision: "r".into(),
        pooling: Pooling::LastToken,
        prompt_set: "p".into(),
        dim,
    };
    let namespace = cache.namespace(&model, "cpu-f32-576");
    let text =
        |i: usize| format!("// src/file_{i}.rs :: function_{i}\npub fn function_{i}() {{}}\n");
    let vector: Vec<f32> = (0..dim).map(|i| i as f32 * 1e-3).collect();

    let started = Instant::now();
    for i in 0..entries {
        cache.put(&namespace, &text(i), &vector)?;
    }
    let put_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut hits = 0;
    for i in 0..entries {
        hits += usize::from(cache.get(&namespace, &text(i)).is_some());
    }
    let get_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut misses = 0;
    for i in entries..2 * entries {
        misses += usize::from(cache.get(&namespace, &text(i)).is_none());
    }
    let miss_seconds = started.elapsed().as_secs_f64();

    let stats = cache.stats()?;
    let started = Instant::now();
    let pruned = cache.prune(Some(stats.bytes / 2), None)?;
    let prune_seconds = started.elapsed().as_secs_f64();

    let per = |seconds: f64| seconds / entries as f64 * 1e6;
    let report = serde_json::json!({
        "entries": entries, "dim": dim, "hits": hits, "misses": misses,
        "bytes": stats.bytes, "bytes_per_entry": stats.bytes / entries.max(1) as u64,
        "put_us_per_entry": per(put_seconds),
        "hit_us_per_entry": per(get_seconds),
        "miss_us_per_entry": per(miss_seconds),
        "prune_to_half_seconds": prune_seconds, "pruned": pruned.removed,
    });
    println!("{report}");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::create_dir_all(&target)?;
    std::fs::write(
        format!("{target}/bench-embedding-cache.json"),
        report.to_string(),
    )?;
    Ok(())
}

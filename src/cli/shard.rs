//! A distributed indexing job: `lancet index --shard I/N --stage URI ROOT...` on each
//! worker, then `lancet commit --stage URI` once.

use super::index::{canonical_root, index_encoder, ingest_options, IndexArgs};
use super::locate::{db_for_root, open_database, open_table};
use super::progress::ProgressReport;
use super::Args;
use anyhow::{bail, Result};
use clap::Parser;
use lancet::engine::ingest::{commit_stage, index_shard, IngestSummary, Shard, ShardInput, Stage};
use lancet::engine::{DbLocation, IndexOptions, TableDims, TableMetadata};
use std::collections::BTreeSet;

/// Arguments of `lancet commit`.
#[derive(Debug, Parser)]
pub struct CommitArgs {
    /// Staging location the shards wrote (a folder or an object-store URI).
    #[arg(long, value_name = "PATH|URI")]
    pub stage: String,
    /// Commit the shards that finished although others have not (their files keep their
    /// old rows until a later job).
    #[arg(long)]
    pub allow_partial: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `lancet index --shard I/N --stage URI ROOT...`.
pub async fn index(args: &Args, a: &IndexArgs, share: &str, stage: &str) -> Result<()> {
    let (index, count) = Shard::parse_share(share)?;
    if a.paths.len() > 1 && a.repo.is_some() {
        bail!("--repo names one repository; with several roots each is named by its folder");
    }
    let mut roots = Vec::with_capacity(a.paths.len());
    for path in &a.paths {
        roots.push(canonical_root(path)?);
    }
    let db_location = match (&args.db, roots.as_slice()) {
        (Some(_), _) | (None, [_]) => db_for_root(args, &roots[0]),
        (None, _) => bail!("a job over several roots writes one table: say where with --db"),
    };
    let mut inputs = Vec::with_capacity(roots.len());
    for root in roots {
        let options = ingest_options(args, a, &root, &db_location)?;
        inputs.push(ShardInput { root, options });
    }
    let names: BTreeSet<&str> = inputs.iter().map(|i| i.options.repo.as_str()).collect();
    if names.len() != inputs.len() {
        bail!("two roots have the same folder name; index them in separate jobs");
    }
    let encoder = index_encoder(args, a)?;
    let db = open_database(args, db_location.clone()).await?;
    let model_dim = encoder.identity().dim;
    let dims = TableDims {
        full: a.full_dims.min(model_dim),
        prefix: a.prefix_dims.min(a.full_dims.min(model_dim)),
    };
    let metadata = TableMetadata::new(encoder.identity().clone(), dims)?;
    let table = db.open_or_create_table(&args.table, metadata).await?;
    let stage = Stage::new(open_database(args, DbLocation::parse(stage)).await?);
    let mut reporter = ProgressReport::new(a.json);
    let mut progress = |s: &IngestSummary| reporter.update(s);
    let manifest = index_shard(
        &table,
        encoder,
        &inputs,
        &stage,
        (index, count),
        &mut progress,
    )
    .await;
    reporter.finish();
    let manifest = manifest?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&manifest)?)?;
    } else {
        outln!(
            "shard {index}/{count}: staged {} rows covering {} files of {} in {} \
             (compared against table `{}` version {}); commit with `lancet commit --stage {}`",
            manifest.rows,
            manifest.files.len(),
            manifest.repos.join(", "),
            stage.location(),
            manifest.table,
            manifest.base_version,
            stage.location()
        )?;
    }
    Ok(())
}

/// `lancet commit --stage URI`.
pub async fn commit(args: &Args, a: &CommitArgs) -> Result<()> {
    let table = open_table(args).await?;
    let stage = Stage::new(open_database(args, DbLocation::parse(&a.stage)).await?);
    let outcome = commit_stage(&table, &stage, a.allow_partial).await?;
    // New rows join the indexes now rather than at the first search.
    let indexes = table.ensure_indexes(&IndexOptions::default()).await;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&outcome)?)?;
    } else if outcome.already_committed {
        outln!(
            "job {} was committed before, at version {}: nothing added",
            outcome.job,
            outcome.version
        )?;
    } else {
        outln!(
            "committed {} shards of {} from {} into `{}` at version {}: {} rows added, {} \
             replaced, {} removed{}",
            outcome.shards.len(),
            outcome.shards.len() + outcome.missing.len(),
            stage.location(),
            table.name(),
            outcome.version,
            outcome.inserted,
            outcome.updated,
            outcome.deleted,
            if outcome.missing.is_empty() {
                String::new()
            } else {
                format!(" (missing shards: {:?})", outcome.missing)
            }
        )?;
    }
    if let Err(e) = indexes {
        errln!("lancet commit: the table's indexes were not brought up to date: {e}");
    }
    Ok(())
}

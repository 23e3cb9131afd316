//! A distributed indexing job: N workers each index their shard of the files into a
//! staging location, and one commit lands everything in the table atomically.
//!
//! The staging location (a folder or an object-store URI) holds, per shard `I` of `N`:
//! - `shard-I-of-N.lance`: a chunk table with the table's layout, holding the rows of
//!   the shard's new and changed files, with their vectors;
//! - `shard-I-of-N.json`: the shard's manifest, written last (its presence says the
//!   shard finished): the files whose rows the commit replaces or removes, the table
//!   version the shard compared against, and its run id.
//!
//! A shard only reads the table. [`commit_stage`] merges every shard's rows into it in
//! one Lance commit recording the job id (a hash of the shards' run ids): a commit run
//! twice, or again after a crash, finds that commit and adds nothing.

use super::pipeline::run_staged;
use super::{IngestOptions, IngestSummary, Progress, Shard};
use crate::error::{Error, Result};
use crate::store::{ChunkTable, Database, EmbeddedChunk, WriteReport};
use lancet_udf::Encoder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Version of the manifest format.
const MANIFEST_FORMAT: u32 = 1;
/// Transaction property holding the job id of a staged commit.
pub const JOB_PROPERTY: &str = "lancet.job";

/// What a finished shard staged, as its manifest says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// Manifest format version.
    pub format: u32,
    /// This shard, from 0.
    pub shard: u32,
    /// Shards in the job.
    pub shards: u32,
    /// Random id of this shard's run (a re-run gets a new one).
    pub run: String,
    /// The name of the table the shard was computed against.
    pub table: String,
    /// The table's creation id (`None` for tables older than the id).
    pub table_id: Option<String>,
    /// Table version the shard compared files against.
    pub base_version: u64,
    /// Repositories the shard indexed.
    pub repos: Vec<String>,
    /// `(repo, path)` of every file whose rows the commit replaces by the staged ones or
    /// removes (files gone from the tree).
    pub files: Vec<(String, String)>,
    /// Rows staged.
    pub rows: u64,
    /// The shard's summary, per repository.
    pub summaries: BTreeMap<String, serde_json::Value>,
}

/// The staging location of a distributed job.
#[derive(Debug, Clone)]
pub struct Stage {
    db: Database,
}

impl Stage {
    /// The stage at `db`'s location (opened like any database; created if missing).
    pub fn new(db: Database) -> Self {
        Stage { db }
    }

    /// Where the stage lives.
    pub fn location(&self) -> String {
        self.db.location().to_string()
    }

    /// Every finished shard's manifest, in shard order.
    pub async fn manifests(&self) -> Result<Vec<ShardManifest>> {
        let mut manifests = Vec::new();
        for name in self.db.file_names(".json").await? {
            if !name.starts_with("shard-") {
                continue;
            }
            let Some(bytes) = self.db.read_file(&name).await? else {
                continue;
            };
            let manifest: ShardManifest = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Ingest(format!(
                    "{}/{name} is not a shard manifest: {e}",
                    self.location()
                ))
            })?;
            if manifest.format != MANIFEST_FORMAT {
                return Err(Error::Ingest(format!(
                    "{}/{name} has manifest format {}, this Lancet reads {MANIFEST_FORMAT}",
                    self.location(),
                    manifest.format
                )));
            }
            manifests.push(manifest);
        }
        manifests.sort_by_key(|m| m.shard);
        Ok(manifests)
    }
}

/// The name of shard `index` of `count`'s table and manifest in the stage.
fn shard_name(index: u32, count: u32) -> String {
    format!("shard-{index:05}-of-{count:05}")
}

/// Receives a shard's groups in place of the table: their rows go into the shard's
/// staged table, their files into the manifest.
pub(super) struct ShardWriter {
    staged: ChunkTable,
    files: Mutex<BTreeSet<(String, String)>>,
}

impl ShardWriter {
    /// Stages `rows`, the complete rows of files `scope`, and the removal of `removed`.
    pub(super) async fn add(
        &self,
        repo: &str,
        scope: Vec<String>,
        removed: Vec<String>,
        rows: &[EmbeddedChunk],
    ) -> Result<WriteReport> {
        let report = self.staged.append(rows).await?;
        crate::store::lock(&self.files).extend(
            scope
                .into_iter()
                .chain(removed)
                .map(|path| (repo.to_string(), path)),
        );
        Ok(report)
    }
}

/// One repository of a shard's work: its root and how it is indexed
/// ([`IngestOptions::repo`] names it).
#[derive(Debug, Clone)]
pub struct ShardInput {
    /// The repository's root folder.
    pub root: PathBuf,
    /// How it is walked, chunked and embedded.
    pub options: IngestOptions,
}

/// Indexes shard `index` of `count` of `inputs` against `table` into `stage`: the share
/// of each repository's files that [`Shard`] gives it is compared with the table
/// (unchanged files are skipped, vectors reused by content), and what a run would commit
/// is staged. The table is only read. Running a shard again replaces what it staged.
pub async fn index_shard(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    inputs: &[ShardInput],
    stage: &Stage,
    (index, count): (u32, u32),
    progress: &mut Progress<'_>,
) -> Result<ShardManifest> {
    // The share itself is checked before anything is staged.
    Shard::new(index, count, "")?;
    table.check_encoder(encoder.identity())?;
    let repos: BTreeSet<&str> = inputs.iter().map(|i| i.options.repo.as_str()).collect();
    if repos.len() != inputs.len() {
        return Err(Error::InvalidArgument(
            "each repository of a sharded job needs its own name".into(),
        ));
    }
    let name = shard_name(index, count);
    // A re-run replaces the earlier run's work: its manifest goes first, so that a commit
    // meanwhile sees the shard as missing rather than half-written.
    stage.db.remove_file(&format!("{name}.json")).await?;
    if stage.db.table_names().await?.contains(&name) {
        stage.db.drop_table(&name).await?;
    }
    let staged = stage
        .db
        .create_table(&name, table.metadata().clone())
        .await?;
    let writer = ShardWriter {
        staged,
        files: Mutex::new(BTreeSet::new()),
    };
    table.refresh().await?;
    let base_version = table.version().await?;
    let mut summaries = BTreeMap::new();
    for input in inputs {
        let mut options = input.options.clone();
        options.walk.shard = Some(Shard::new(index, count, options.repo.clone())?);
        let summary: IngestSummary = run_staged(
            table,
            encoder.clone(),
            &input.root,
            &options,
            progress,
            &writer,
        )
        .await?;
        summaries.insert(
            options.repo.clone(),
            serde_json::to_value(&summary).map_err(|e| Error::Ingest(e.to_string()))?,
        );
    }
    let rows = writer.staged.count(None).await? as u64;
    let manifest = ShardManifest {
        format: MANIFEST_FORMAT,
        shard: index,
        shards: count,
        run: crate::store::random_id(),
        table: table.name().to_string(),
        table_id: table.creation_id().map(str::to_string),
        base_version,
        repos: repos.into_iter().map(str::to_string).collect(),
        files: crate::store::lock(&writer.files).iter().cloned().collect(),
        rows,
        summaries,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Ingest(e.to_string()))?;
    stage.db.put_file(&format!("{name}.json"), &json).await?;
    Ok(manifest)
}

/// What [`commit_stage`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageCommit {
    /// The job id recorded with the commit.
    pub job: String,
    /// Shards committed.
    pub shards: Vec<u32>,
    /// Shards of the job with no manifest (only with `allow_partial`).
    pub missing: Vec<u32>,
    /// Table version holding the job; an earlier one when it was committed before.
    pub version: u64,
    /// Whether this call found the job committed already and added nothing.
    pub already_committed: bool,
    /// Rows added, replaced and removed by this call.
    pub inserted: u64,
    /// Rows replaced.
    pub updated: u64,
    /// Rows removed.
    pub deleted: u64,
}

/// Commits every finished shard of `stage` into `table` in one atomic commit, as one
/// run over all the inputs would leave it (changed files replaced, vanished files
/// removed, unchanged files untouched). Refuses, naming them, when shards are missing,
/// unless `allow_partial`; adds nothing when the same shards were committed before.
pub async fn commit_stage(
    table: &ChunkTable,
    stage: &Stage,
    allow_partial: bool,
) -> Result<StageCommit> {
    let manifests = stage.manifests().await?;
    let Some(first) = manifests.first() else {
        return Err(Error::Ingest(format!(
            "no finished shard in {}: run `lancet index --shard I/N --stage {}` first",
            stage.location(),
            stage.location()
        )));
    };
    let count = first.shards;
    if let Some(other) = manifests.iter().find(|m| m.shards != count) {
        return Err(Error::Ingest(format!(
            "{} holds shards of jobs of {count} and {} shards; use one stage per job",
            stage.location(),
            other.shards
        )));
    }
    for manifest in &manifests {
        let same_table = manifest.table == table.name()
            && (manifest.table_id.is_none() || manifest.table_id.as_deref() == table.creation_id());
        if !same_table {
            return Err(Error::Ingest(format!(
                "shard {} of {} was computed against another table (`{}`); run it again",
                manifest.shard,
                stage.location(),
                manifest.table
            )));
        }
    }
    let present: BTreeSet<u32> = manifests.iter().map(|m| m.shard).collect();
    let missing: Vec<u32> = (0..count).filter(|i| !present.contains(i)).collect();
    if !missing.is_empty() && !allow_partial {
        return Err(Error::Ingest(format!(
            "{} of {count} shards have not finished in {}: {} (run them, or commit what \
             is there with --allow-partial)",
            missing.len(),
            stage.location(),
            missing
                .iter()
                .map(|i| format!("{i}/{count}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let job = job_id(&manifests);
    let shards: Vec<u32> = present.into_iter().collect();
    let _lock = table.lock_for_writing().await?;
    let since = manifests.iter().map(|m| m.base_version).min().unwrap_or(0);
    if let Some(version) = table
        .version_with_property(JOB_PROPERTY, &job, since)
        .await?
    {
        return Ok(StageCommit {
            job,
            shards,
            missing,
            version,
            already_committed: true,
            inserted: 0,
            updated: 0,
            deleted: 0,
        });
    }
    let mut sources = Vec::with_capacity(manifests.len());
    for manifest in &manifests {
        sources.push(
            stage
                .db
                .open_table(&shard_name(manifest.shard, manifest.shards))
                .await?,
        );
    }
    let files: Vec<(String, String)> = manifests
        .iter()
        .flat_map(|m| m.files.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let properties = HashMap::from([
        (JOB_PROPERTY.to_string(), job.clone()),
        ("lancet.stage".to_string(), stage.location()),
        (
            "lancet.shards".to_string(),
            format!("{}/{count}", shards.len()),
        ),
    ]);
    let report = table.merge_from(&sources, &files, properties).await?;
    Ok(StageCommit {
        job,
        shards,
        missing,
        version: report.version,
        already_committed: false,
        inserted: report.inserted,
        updated: report.updated,
        deleted: report.deleted,
    })
}

/// The job a set of finished shards makes: the same shards' runs, the same id.
fn job_id(manifests: &[ShardManifest]) -> String {
    let mut hasher = blake3::Hasher::new();
    for manifest in manifests {
        hasher
            .update(format!("{}/{}:{};", manifest.shard, manifest.shards, manifest.run).as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

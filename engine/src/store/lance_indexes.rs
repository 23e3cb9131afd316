//! Lance's own indexes on a chunk table: scalar (B-tree, bitmap), full-text and the
//! ANN index on the prefix column, created when due and refreshed by `optimize`.

use crate::error::Result;
use crate::store::ChunkTable;
use lancedb::index::scalar::{BTreeIndexBuilder, BitmapIndexBuilder, FtsIndexBuilder};
use lancedb::index::vector::{IvfFlatIndexBuilder, IvfHnswSqIndexBuilder, IvfPqIndexBuilder};
use lancedb::index::Index;
use lancedb::DistanceType;
use lancet_schemas::columns as col;

/// Times an optimize or an index creation retries after losing a commit race.
const CONFLICT_RETRIES: u32 = 6;

/// The ANN index kept on the Matryoshka prefix column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnIndexKind {
    /// IVF with exact fp16 distances inside the probed partitions. At 128-d a vector is
    /// 256 bytes, so scanning a few partitions is cheap and loses nothing to
    /// quantisation; the full-width re-rank then fixes the order.
    #[default]
    IvfFlat,
    /// IVF partitions, each an HNSW graph over 8-bit scalar-quantised vectors.
    IvfHnswSq,
    /// IVF with product quantisation (`sub_vectors` sub-vectors of 8 bits).
    IvfPq {
        /// Number of sub-vectors; must divide the prefix width.
        sub_vectors: u32,
    },
}

/// How a table's indexes are chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexOptions {
    /// Kind of ANN index on the prefix column.
    pub kind: AnnIndexKind,
    /// Below this many rows no ANN index is built and searches scan the prefix column
    /// (exact, and fast at that size).
    pub min_rows_for_ann: usize,
    /// IVF partitions; `None` picks about sqrt(rows).
    pub num_partitions: Option<u32>,
    /// Build scalar indexes on the filter columns (path, language, repo), the key, and
    /// the full-text index on the chunk text.
    pub scalar_indexes: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            kind: AnnIndexKind::default(),
            min_rows_for_ann: 10_000,
            num_partitions: None,
            scalar_indexes: true,
        }
    }
}

/// How [`ChunkTable::optimize_with_retention`] folds new rows into the indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexUpdate {
    /// A new small segment per index for the new rows: cheap, for a busy watcher.
    Append,
    /// Every index rewritten as one segment, which lets the compaction merge every
    /// small fragment: for an idle moment.
    Merge,
}

/// More segments than any index has: "merge them all".
const MERGE_ALL_SEGMENTS: usize = 1 << 20;

/// What [`ChunkTable::ensure_indexes`] or an optimization did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Indexes created, by column.
    pub created: Vec<String>,
    /// Whether the ANN index exists after the call.
    pub ann_ready: bool,
    /// Old versions removed (by [`ChunkTable::optimize_with_retention`]).
    pub versions_removed: u64,
    /// Bytes of files that only those versions used.
    pub bytes_removed: u64,
}

fn partitions_for(rows: usize) -> u32 {
    ((rows as f64).sqrt().round() as u32).clamp(1, 8192)
}

impl IndexOptions {
    fn ann_index(&self, rows: usize) -> Index {
        let partitions = self.num_partitions.unwrap_or_else(|| partitions_for(rows));
        match self.kind {
            AnnIndexKind::IvfFlat => Index::IvfFlat(
                IvfFlatIndexBuilder::default()
                    .distance_type(DistanceType::Cosine)
                    .num_partitions(partitions),
            ),
            AnnIndexKind::IvfHnswSq => Index::IvfHnswSq(
                IvfHnswSqIndexBuilder::default()
                    .distance_type(DistanceType::Cosine)
                    .num_partitions(partitions.div_ceil(64).max(1)),
            ),
            AnnIndexKind::IvfPq { sub_vectors } => Index::IvfPq(
                IvfPqIndexBuilder::default()
                    .distance_type(DistanceType::Cosine)
                    .num_partitions(partitions)
                    .num_sub_vectors(sub_vectors),
            ),
        }
    }
}

impl ChunkTable {
    /// Names of the columns that carry an index.
    pub async fn indexed_columns(&self) -> Result<Vec<String>> {
        let indices = self.table.list_indices().await?;
        Ok(indices.into_iter().flat_map(|i| i.columns).collect())
    }

    /// Creates the indexes the table should have and does not: scalar indexes on the key
    /// and filter columns, and the ANN index on the prefix column once the table holds
    /// `options.min_rows_for_ann` rows. Existing indexes are left to
    /// [`Self::optimize`], which folds new rows into them.
    ///
    /// Safe beside another process doing the same: an index creation that loses the race
    /// is retried, and then finds the index made.
    pub async fn ensure_indexes(&self, options: &IndexOptions) -> Result<IndexReport> {
        retry_on_conflict(|| self.ensure_indexes_once(options)).await
    }

    async fn ensure_indexes_once(&self, options: &IndexOptions) -> Result<IndexReport> {
        let rows = self.count(None).await?;
        let existing = self.indexed_columns().await?;
        let mut report = IndexReport::default();
        if rows == 0 {
            report.ann_ready = existing.iter().any(|c| c == &self.prefix_column);
            return Ok(report);
        }
        if options.scalar_indexes {
            let scalar: [(&str, Index); 6] = [
                (col::CHUNK_ID, Index::BTree(BTreeIndexBuilder::default())),
                (col::PATH, Index::BTree(BTreeIndexBuilder::default())),
                (
                    col::CONTENT_HASH,
                    Index::BTree(BTreeIndexBuilder::default()),
                ),
                (col::LANGUAGE, Index::Bitmap(BitmapIndexBuilder::default())),
                (col::REPO, Index::Bitmap(BitmapIndexBuilder::default())),
                // BM25 over chunk text with the code tokenizer: identifiers split on
                // case and underscores, no stemming.
                (col::TEXT, Index::FTS(FtsIndexBuilder::code())),
            ];
            for (column, index) in scalar {
                if !existing.iter().any(|c| c == column) {
                    self.table.create_index(&[column], index).execute().await?;
                    report.created.push(column.to_string());
                }
            }
        }
        let has_ann = existing.iter().any(|c| c == &self.prefix_column);
        // The ANN index is trained on, and partitioned for, the rows that have vectors.
        let vectors = if has_ann {
            0
        } else {
            self.vector_coverage(None).await?.with_vectors as usize
        };
        if !has_ann && vectors >= options.min_rows_for_ann {
            self.table
                .create_index(&[self.prefix_column.as_str()], options.ann_index(vectors))
                .execute()
                .await?;
            report.created.push(self.prefix_column.clone());
            report.ann_ready = true;
        } else {
            report.ann_ready = has_ann;
        }
        Ok(report)
    }

    /// Compacts small files, folds new rows into the indexes, prunes versions older than
    /// a week, and creates indexes that are due (see [`Self::ensure_indexes`]).
    ///
    /// Safe beside a writer: a compaction that loses the race with a concurrent commit is
    /// retried on the new version (a few times, then the conflict is returned).
    pub async fn optimize(&self, options: &IndexOptions) -> Result<IndexReport> {
        self.check_writable()?;
        retry_on_conflict(|| async {
            self.table
                .optimize(lancedb::table::OptimizeAction::All)
                .await?;
            self.ensure_indexes_once(options).await
        })
        .await
    }

    /// [`Self::optimize`] for a table under continuous writes (a watcher): folds new rows
    /// into the indexes as `update` says, compacts, and removes versions older than
    /// `retention` (never the latest). A reader keeps a version for the length of one
    /// query plus its consistency interval, so a retention of seconds to minutes never
    /// deletes files a live reader holds; files no version refers to (an interrupted
    /// commit's) are left to a week.
    pub async fn optimize_with_retention(
        &self,
        options: &IndexOptions,
        retention: std::time::Duration,
        update: IndexUpdate,
    ) -> Result<IndexReport> {
        use lancedb::table::{CompactionOptions, OptimizeAction, OptimizeOptions};
        let index_options = match update {
            IndexUpdate::Append => OptimizeOptions::default(),
            IndexUpdate::Merge => OptimizeOptions::merge(MERGE_ALL_SEGMENTS),
        };
        self.check_writable()?;
        retry_on_conflict(|| async {
            // Indexes before compaction: Lance never merges fragments that different
            // index segments cover (or that one covers and another does not), so
            // fragments written since the last index update would stay apart, one small
            // file per edit, unless the segments were merged first.
            self.table
                .optimize(OptimizeAction::Index(index_options.clone()))
                .await?;
            self.table
                .optimize(OptimizeAction::Compact {
                    options: CompactionOptions::default(),
                    remap_options: None,
                })
                .await?;
            // Pruning last: what the index update and the compaction replaced goes in
            // the same call, except the versions they wrote themselves, which are
            // younger than the retention (see [`Self::prune_versions`]).
            let mut report = self.ensure_indexes_once(options).await?;
            let (versions, bytes) = self.prune_versions(retention).await?;
            report.versions_removed = versions;
            report.bytes_removed = bytes;
            Ok(report)
        })
        .await
    }

    /// Removes versions older than `retention` (never the latest) and the files only
    /// they use; returns the versions and bytes removed. An optimization's own
    /// intermediate versions outlive it by the retention: a watcher prunes once more
    /// when that has passed.
    pub async fn prune_versions(&self, retention: std::time::Duration) -> Result<(u64, u64)> {
        use lancedb::table::{Duration, OptimizeAction};
        self.check_writable()?;
        let older_than = Duration::from_std(retention)
            .map_err(|e| crate::error::Error::InvalidArgument(format!("retention: {e}")))?;
        let pruned = self
            .table
            .optimize(OptimizeAction::Prune {
                older_than: Some(older_than),
                delete_unverified: Some(false),
                error_if_tagged_old_versions: Some(false),
            })
            .await?;
        Ok(pruned
            .prune
            .map_or((0, 0), |p| (p.old_versions, p.bytes_removed)))
    }
}

/// Runs `op` again, backing off, while it fails with a commit conflict (a few times, then
/// the conflict is returned): each retry starts from the version that won.
async fn retry_on_conflict<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_commit_conflict() && attempt < CONFLICT_RETRIES => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::Error;

    fn conflict() -> Error {
        Error::Lance(lancedb::Error::Lance {
            source: lance_core::Error::commit_conflict_source(7, "another writer won".into()),
        })
    }

    /// Runs `retry_on_conflict` over answers given in turn; returns its result and the
    /// number of attempts made.
    fn attempts(answers: Vec<Result<u32>>) -> (Result<u32>, usize) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let answers = std::sync::Mutex::new(answers.into_iter());
        let made = std::sync::atomic::AtomicUsize::new(0);
        let result = runtime.block_on(retry_on_conflict(|| {
            made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let next = answers
                .lock()
                .unwrap()
                .next()
                .expect("asked once too often");
            async move { next }
        }));
        (result, made.into_inner())
    }

    #[test]
    fn a_commit_conflict_is_retried_and_other_errors_are_not() {
        let (result, made) = attempts(vec![Err(conflict()), Err(conflict()), Ok(5)]);
        assert_eq!((result.unwrap(), made), (5, 3));

        let bad = Err(Error::InvalidArgument("bad".into()));
        let (result, made) = attempts(vec![bad, Ok(5)]);
        assert!(matches!(result, Err(Error::InvalidArgument(_))) && made == 1);

        // A conflict that never clears is returned after the last retry.
        let always = (0..=CONFLICT_RETRIES).map(|_| Err(conflict())).collect();
        let (result, made) = attempts(always);
        assert!(result.unwrap_err().is_commit_conflict());
        assert_eq!(made, CONFLICT_RETRIES as usize + 1);
    }

    #[test]
    fn partitions_grow_with_the_square_root() {
        assert_eq!(partitions_for(1), 1);
        assert_eq!(partitions_for(20_000), 141);
        assert_eq!(partitions_for(1_000_000), 1000);
    }
}

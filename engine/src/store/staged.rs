//! Writes prepared elsewhere, landed in one commit: the rows of several staged chunk
//! tables (the shards of a distributed job) replace the rows of the files they cover, and
//! the commit carries properties (a job id) by which a later attempt finds it.

use crate::error::{Error, Result};
use crate::store::write::files_predicate;
use crate::store::{ChunkTable, WriteReport};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{StreamExt, TryStreamExt};
use lance::dataset::{
    CommitBuilder, Dataset, MergeInsertBuilder, WhenMatched, WhenNotMatched, WhenNotMatchedBySource,
};
use lancet_schemas::columns as col;
use std::collections::HashMap;
use std::sync::Arc;

/// Attempts at a merge that lost a race with another writer's commit.
const ATTEMPTS: u32 = 4;

impl ChunkTable {
    /// Makes the rows of `sources` (tables of this table's layout) the complete set of
    /// chunks of the files `files` (`(repo, path)` pairs), in one atomic commit that
    /// records `properties`: chunks of those files that no source holds are removed, the
    /// others inserted or replaced. A file in `files` that no source has rows for is
    /// deleted. The sources are streamed, never held in memory whole.
    pub async fn merge_from(
        &self,
        sources: &[ChunkTable],
        files: &[(String, String)],
        properties: HashMap<String, String>,
    ) -> Result<WriteReport> {
        if files.is_empty() && sources.is_empty() {
            return self.unchanged().await;
        }
        for source in sources {
            if source.schema.fields() != self.schema.fields() {
                return Err(Error::InvalidArgument(format!(
                    "staged table `{}` does not have table `{}`'s columns",
                    source.name(),
                    self.name()
                )));
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dataset = self.current_dataset().await?;
            match self
                .merge_once(dataset, sources, files, properties.clone())
                .await
            {
                Ok((merged, report)) => {
                    if let Some(wrapper) = self.table.dataset() {
                        wrapper.update(merged);
                    }
                    return Ok(report);
                }
                Err(e) if e.is_commit_conflict() && attempt < ATTEMPTS => {
                    tracing::info!(
                        "staged merge into `{}` lost a race, retrying: {e}",
                        self.name()
                    );
                    self.refresh().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn merge_once(
        &self,
        dataset: Arc<Dataset>,
        sources: &[ChunkTable],
        files: &[(String, String)],
        properties: HashMap<String, String>,
    ) -> Result<(Dataset, WriteReport)> {
        let lance = |e: lance::Error| Error::Lance(lancedb::Error::from(e));
        let mut builder = MergeInsertBuilder::try_new(dataset.clone(), vec![col::CHUNK_ID.into()])
            .map_err(lance)?;
        builder
            .when_matched(WhenMatched::UpdateAll)
            .when_not_matched(WhenNotMatched::InsertAll);
        if !files.is_empty() {
            builder.when_not_matched_by_source(
                WhenNotMatchedBySource::delete_if(&dataset, &files_predicate(files))
                    .map_err(lance)?,
            );
        }
        let job = builder.try_build().map_err(lance)?;
        let uncommitted = job
            .execute_uncommitted(self.stream_of(sources).await?)
            .await
            .map_err(lance)?;
        let stats = uncommitted.stats.clone();
        let mut transaction = uncommitted.transaction;
        // On the transaction itself: `CommitBuilder::with_transaction_properties` only
        // reaches transactions it builds (batches), not one passed to `execute`.
        transaction.transaction_properties = Some(Arc::new(properties));
        let mut commit = CommitBuilder::new(dataset);
        if let Some(rows) = uncommitted.affected_rows {
            commit = commit.with_affected_rows(rows);
        }
        let merged = commit.execute(transaction).await.map_err(lance)?;
        let report = WriteReport {
            inserted: stats.num_inserted_rows,
            updated: stats.num_updated_rows,
            deleted: stats.num_deleted_rows,
            version: merged.version().version,
        };
        Ok((merged, report))
    }

    /// Every row of `sources`, one after the other, as one stream with this table's
    /// schema.
    async fn stream_of(&self, sources: &[ChunkTable]) -> Result<SendableRecordBatchStream> {
        let mut streams = Vec::with_capacity(sources.len());
        for source in sources {
            let dataset = source.current_dataset().await?;
            let stream = dataset
                .scan()
                .try_into_stream()
                .await
                .map_err(|e| Error::Lance(lancedb::Error::from(e)))?;
            streams.push(stream.map_err(datafusion::error::DataFusionError::from));
        }
        let schema = self.schema.clone();
        let rows = futures::stream::iter(streams).flatten().map(move |batch| {
            // Same columns (checked above); the table-level metadata differs.
            batch.and_then(|b| {
                arrow_array::RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                    .map_err(datafusion::error::DataFusionError::from)
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            rows,
        )))
    }

    /// The first version after `after` whose commit recorded property `key` = `value`
    /// (`None` when none did, or their records are gone).
    pub async fn version_with_property(
        &self,
        key: &str,
        value: &str,
        after: u64,
    ) -> Result<Option<u64>> {
        let dataset = self.current_dataset().await?;
        let latest = dataset
            .latest_version_id()
            .await
            .map_err(|e| Error::Lance(lancedb::Error::from(e)))?;
        for version in after.saturating_add(1)..=latest {
            // A version cleaned up since has no transaction left to read.
            let Ok(Some(transaction)) = dataset.read_transaction_by_version(version).await else {
                continue;
            };
            let found = transaction
                .transaction_properties
                .as_ref()
                .is_some_and(|p| p.get(key).is_some_and(|v| v == value));
            if found {
                return Ok(Some(version));
            }
        }
        Ok(None)
    }

    /// The Lance dataset at the handle's current version.
    async fn current_dataset(&self) -> Result<Arc<Dataset>> {
        let wrapper = self.table.dataset().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "table `{}` is not a native Lance table",
                self.name()
            ))
        })?;
        Ok(wrapper.get().await?)
    }
}

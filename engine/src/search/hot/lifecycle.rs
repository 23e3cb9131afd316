//! The hot index of a [`ChunkTable`]: build, load, keep in step with the table, search.
//! It is kept with the store's table handle as an attachment (see `ChunkTable::attachment`).

use super::{snapshot, HnswParams, HotIndex, HotQuery};
use crate::error::{Error, Result};
use crate::search::Filter;
use crate::store::columns::{column, strings};
use crate::store::{remove_dir_if_present, ChunkTable};
use arrow_array::{RecordBatch, UInt64Array};
use futures::TryStreamExt;
use lance_core::ROW_ID;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet_schemas::{columns as col, fp16_optional_vectors};
use roaring::RoaringBitmap;
use std::time::Instant;
use tokio::sync::RwLock;

/// The Lance column of the version that last wrote each row (tables with stable row ids).
const LAST_UPDATED: &str = "_row_last_updated_at_version";
/// Rows read from Lance per request when rows are read by id.
const FETCH_ROWS: usize = 4_096;

/// How the hot index is built and kept.
#[derive(Debug, Clone, PartialEq)]
pub struct HotIndexOptions {
    /// Graph parameters.
    pub params: HnswParams,
    /// Threads that link rows into the graph (default: all cores).
    pub threads: usize,
    /// Rebuild from scratch, rather than update, once more than this share of the
    /// index's rows have left the table (masked rows slow the graph walk).
    pub rebuild_share: f64,
}

impl Default for HotIndexOptions {
    fn default() -> Self {
        HotIndexOptions {
            params: HnswParams::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rebuild_share: 0.25,
        }
    }
}

/// What bringing the hot index up to date did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HotIndexReport {
    /// Table version the index now reflects.
    pub version: u64,
    /// Rows it answers for.
    pub rows: u64,
    /// Rows read from Lance and linked into the graph.
    pub inserted: u64,
    /// Rows masked because they left the table or were rewritten.
    pub removed: u64,
    /// Whether the index was built from scratch.
    pub rebuilt: bool,
    /// Whether a snapshot was loaded from disk.
    pub loaded: bool,
    /// Seconds spent.
    pub seconds: f64,
}

/// The hot index of a table handle, once opened; shared by the handle's clones.
type HotSlot = RwLock<Option<HotIndex>>;

impl ChunkTable {
    /// This handle's hot index slot, kept with the store's table handle as an attachment.
    fn hot(&self) -> std::sync::Arc<HotSlot> {
        self.attachment::<HotSlot>()
    }

    fn hot_dir(&self) -> Result<&std::path::Path> {
        self.derived_dir().ok_or_else(|| {
            Error::InvalidArgument("this table was not opened from a database folder".into())
        })
    }

    /// What a snapshot must match to be used: the model, the widths and the table's
    /// creation id (a snapshot of another table with the same model is foreign too).
    fn metadata_json(&self) -> String {
        let mut sorted: std::collections::BTreeMap<_, _> =
            self.metadata().to_map().into_iter().collect();
        if let Some(id) = self.creation_id() {
            sorted.insert("creation_id".to_string(), id.to_string());
        }
        serde_json::to_string(&sorted).unwrap_or_default()
    }

    /// Makes searches use the hot index: loads the saved snapshot (building one when there
    /// is none, or when it is unreadable or belongs to another table), brings it up to the
    /// table's current version, saves it if that changed anything, and keeps it in memory.
    pub async fn open_hot_index(&self, options: &HotIndexOptions) -> Result<HotIndexReport> {
        let started = Instant::now();
        let dir = self.hot_dir()?.to_path_buf();
        let loaded = match snapshot::load(&dir) {
            Ok(Some((index, manifest)))
                if manifest.table_metadata == self.metadata_json()
                    && index.widths()
                        == (self.metadata().dims.prefix, self.metadata().dims.full) =>
            {
                Some(index)
            }
            Ok(Some(_)) => {
                tracing::warn!(
                    "hot index in {} belongs to another table; rebuilding",
                    dir.display()
                );
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(
                    "hot index in {} is unreadable ({e}); rebuilding",
                    dir.display()
                );
                None
            }
        };
        let mut report = HotIndexReport::default();
        let mut index = match loaded {
            Some(index) => {
                report.loaded = true;
                index
            }
            None => {
                report.rebuilt = true;
                self.new_hot_index(options)
            }
        };
        let saved_version = report.loaded.then_some(index.version);
        self.catch_up(&mut index, options, &mut report).await?;
        if saved_version != Some(index.version) {
            // The snapshot only saves the next open some work: a database this process
            // may not write (read-only, full) still gets its searches.
            if let Err(e) = snapshot::save(&index, &dir, &self.metadata_json()) {
                tracing::warn!("hot index kept in memory only: cannot save it ({e})");
            }
        }
        report.rows = index.live_rows();
        report.version = index.version;
        report.seconds = started.elapsed().as_secs_f64();
        *self.hot().write().await = Some(index);
        Ok(report)
    }

    /// Builds the hot index from scratch from the table's current version, saves it, and
    /// keeps it in memory for searches.
    pub async fn build_hot_index(&self, options: &HotIndexOptions) -> Result<HotIndexReport> {
        let started = Instant::now();
        let dir = self.hot_dir()?.to_path_buf();
        self.check_writable()?;
        let mut index = self.new_hot_index(options);
        let mut report = HotIndexReport {
            rebuilt: true,
            ..HotIndexReport::default()
        };
        self.catch_up(&mut index, options, &mut report).await?;
        snapshot::save(&index, &dir, &self.metadata_json())?;
        report.rows = index.live_rows();
        report.version = index.version;
        report.seconds = started.elapsed().as_secs_f64();
        *self.hot().write().await = Some(index);
        Ok(report)
    }

    /// Whether a hot index snapshot is saved for this table (loaded or not).
    pub fn has_hot_snapshot(&self) -> bool {
        self.derived_dir().is_some_and(snapshot::exists)
    }

    /// Whether searches of this handle use a hot index.
    pub async fn has_hot_index(&self) -> bool {
        self.hot().read().await.is_some()
    }

    /// Forgets the hot index in memory and removes its snapshot from disk.
    pub async fn drop_hot_index(&self) -> Result<()> {
        *self.hot().write().await = None;
        remove_dir_if_present(self.hot_dir()?)
    }

    fn new_hot_index(&self, options: &HotIndexOptions) -> HotIndex {
        let dims = self.metadata().dims;
        HotIndex::new(dims.prefix, dims.full, options.params)
    }

    /// Brings `index` to the table's current version: masks rows that left, reads rows
    /// written since the index's version and links them into the graph. When more than
    /// `options.rebuild_share` of its rows have left, starts over from the table instead.
    async fn catch_up(
        &self,
        index: &mut HotIndex,
        options: &HotIndexOptions,
        report: &mut HotIndexReport,
    ) -> Result<()> {
        let version = self.version().await?;
        if index.version == version && !index.row_ids.is_empty() {
            return Ok(());
        }
        let mut present = None;
        if !index.row_ids.is_empty() {
            let ids = self.row_ids(None).await?;
            index.pending &= &ids;
            let mut removed = 0;
            for (node, &id) in index.row_ids.iter().enumerate() {
                if !ids.contains(id) && index.deleted.insert(node as u32) {
                    removed += 1;
                }
            }
            report.removed += removed;
            if index.deleted.len() as f64 > options.rebuild_share * index.row_ids.len() as f64 {
                // Masked rows slow every walk: rebuild from the table.
                *index = self.new_hot_index(options);
                report.rebuilt = true;
            } else {
                present = Some(ids);
            }
        }
        let fresh = present.is_none();
        // Rows written after the index's version: new, or rewritten in place (stable row
        // ids survive an update, the version that last wrote a row does not).
        let columns = [
            col::EMBEDDING,
            self.prefix_column(),
            col::LANGUAGE,
            col::REPO,
            col::PATH,
        ];
        let mut query = self
            .lance()
            .query()
            .select(Select::columns(&columns))
            .with_row_id();
        if !fresh {
            query = query.only_if(format!("{LAST_UPDATED} > {}", index.version));
        }
        let mut batches = query.execute().await?;
        while let Some(batch) = batches.try_next().await? {
            report.inserted += batch.num_rows() as u64;
            report.removed += self.push_rows(index, &batch)?;
        }
        // Rows present but unknown to the index whatever their lineage says (a version
        // restored from before the index, say): read them by id.
        if let Some(present) = present {
            let missing: Vec<u64> = present
                .iter()
                .filter(|id| {
                    !index.pending.contains(*id)
                        && index
                            .node_of
                            .get(id)
                            .is_none_or(|&n| index.deleted.contains(n))
                })
                .collect();
            for ids in missing.chunks(FETCH_ROWS) {
                for batch in self.rows_by_id(ids.to_vec(), &columns).await? {
                    report.inserted += batch.num_rows() as u64;
                    report.removed += self.push_rows(index, &batch)?;
                }
            }
        }
        index.link_new_rows(options.threads);
        index.version = version;
        Ok(())
    }

    /// Adds the rows of `batch` to `index`; returns how many replaced a row it held.
    /// Rows without vectors are noted as pending, not added.
    fn push_rows(&self, index: &mut HotIndex, batch: &RecordBatch) -> Result<u64> {
        let ids = column::<UInt64Array>(batch, ROW_ID)?;
        let full =
            fp16_optional_vectors(crate::store::columns::column_ref(batch, col::EMBEDDING)?)?;
        let prefix = fp16_optional_vectors(crate::store::columns::column_ref(
            batch,
            self.prefix_column(),
        )?)?;
        let (language, repo, path) = (
            strings(batch, col::LANGUAGE)?,
            strings(batch, col::REPO)?,
            strings(batch, col::PATH)?,
        );
        let mut replaced = 0;
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            if let Some(&node) = index.node_of.get(&id) {
                replaced += u64::from(index.deleted.insert(node));
            }
            let (Some(prefix), Some(full)) = (prefix.row(row), full.row(row)) else {
                index.pending.insert(id);
                continue;
            };
            index.pending.remove(id);
            index.push(
                id,
                prefix,
                full,
                language.value(row),
                repo.value(row),
                path.value(row),
            );
        }
        Ok(replaced)
    }

    /// Stable ids of the rows matching `predicate` (all rows when `None`).
    async fn row_ids(&self, predicate: Option<String>) -> Result<roaring::RoaringTreemap> {
        let mut query = self
            .lance()
            .query()
            .select(Select::columns(&[] as &[&str]))
            .with_row_id();
        if let Some(predicate) = predicate {
            query = query.only_if(predicate);
        }
        let mut batches = query.execute().await?;
        let mut ids = roaring::RoaringTreemap::new();
        while let Some(batch) = batches.try_next().await? {
            ids.extend(
                column::<UInt64Array>(&batch, ROW_ID)?
                    .values()
                    .iter()
                    .copied(),
            );
        }
        Ok(ids)
    }

    /// The two-stage search through the hot index, when this handle has one: the best
    /// `k` rows as `(row id, score)`. Catches the index up first if the table moved.
    pub(crate) async fn hot_search(
        &self,
        full: &[f32],
        k: usize,
        shortlist: usize,
        ef: usize,
        filter: &Filter,
    ) -> Result<Option<Vec<(u64, f32)>>> {
        let version = self.version().await?;
        let slot = self.hot();
        {
            let guard = slot.read().await;
            let Some(index) = guard.as_ref() else {
                return Ok(None);
            };
            if index.version == version {
                return self
                    .search_index(index, full, k, shortlist, ef, filter)
                    .await
                    .map(Some);
            }
        }
        let mut guard = slot.write().await;
        let Some(index) = guard.as_mut() else {
            return Ok(None);
        };
        let options = HotIndexOptions {
            params: index.graph.params(),
            ..HotIndexOptions::default()
        };
        self.catch_up(index, &options, &mut HotIndexReport::default())
            .await?;
        self.search_index(index, full, k, shortlist, ef, filter)
            .await
            .map(Some)
    }

    async fn search_index(
        &self,
        index: &HotIndex,
        full: &[f32],
        k: usize,
        shortlist: usize,
        ef: usize,
        filter: &Filter,
    ) -> Result<Vec<(u64, f32)>> {
        let mut allowed = index.attributes.matching(filter);
        if let Some(predicate) = filter.predicate.as_deref().filter(|p| !p.trim().is_empty()) {
            let rows = self.row_ids(Some(predicate.to_string())).await?;
            let nodes: RoaringBitmap = index.nodes_of(rows);
            allowed = Some(match allowed {
                Some(set) => set & nodes,
                None => nodes,
            });
        }
        Ok(index.search(&HotQuery {
            full,
            k,
            shortlist,
            ef,
            allowed: allowed.as_ref(),
        }))
    }
}

//! SQL over a Lancet database: a DataFusion session with every chunk table registered
//! (projection, filter and limit pushed into Lance) and Lancet's functions:
//!
//! - `embed(text [, task [, dims]])`: a normalised fp16 vector from the database's model;
//! - `cosine_distance(a, b)`: 1 - cos over fp16/f32 vectors;
//! - `vector_search(table, query, k [, refine])`: the two-stage Matryoshka search, the
//!   query a text (embedded as a query) or a vector;
//! - `fts(table, text, k)`: BM25 over chunk text;
//! - `hybrid_search(table, text, k)`: vector and BM25 rankings fused by reciprocal rank.

mod cosine;
mod embed;
mod pushdown;
mod search_functions;
mod vectors;

pub use cosine::CosineDistance;
pub use embed::EmbedFunction;
pub use pushdown::to_lance_sql;
pub use search_functions::{hit_schema, SearchFunction, SearchKind, SourceTree};

use crate::error::{Error, Result};
use crate::store::{ChunkTable, Database};
use arrow_array::RecordBatch;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use lancedb::table::datafusion::BaseTableAdapter;
use lancet_udf::Encoder;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A SQL session over one database.
pub struct Session {
    context: SessionContext,
    tables: Arc<BTreeMap<String, ChunkTable>>,
    encoder: Option<Arc<dyn Encoder>>,
}

impl Session {
    /// Registers every table of `db` and the functions. Without an encoder, `embed()`
    /// is not registered and searches take vector literals only.
    pub async fn new(db: &Database, encoder: Option<Arc<dyn Encoder>>) -> Result<Self> {
        let context = SessionContext::new();
        let mut tables = BTreeMap::new();
        for name in db.table_names().await? {
            let table = db.open_table(&name).await?;
            let adapter = BaseTableAdapter::try_new(table.lance().base_table().clone()).await?;
            context
                .register_table(name.as_str(), Arc::new(adapter))
                .map_err(sql_error)?;
            tables.insert(name, table);
        }
        let tables = Arc::new(tables);
        context.register_udf(ScalarUDF::from(CosineDistance::default()));
        if let Some(encoder) = &encoder {
            let widths: std::collections::BTreeSet<usize> =
                tables.values().map(|t| t.metadata().dims.full).collect();
            let dims = match widths.iter().next() {
                Some(&w) if widths.len() == 1 => w,
                _ => encoder.dim().min(lancet_schemas::TableDims::default().full),
            };
            let mut embed = EmbedFunction::new(encoder.clone(), dims);
            // One model per table: an encoder that built none of the tables must not
            // produce vectors to rank theirs (the CLI refuses the same way).
            let checks: Vec<Result<()>> = tables
                .values()
                .map(|t| t.check_encoder(encoder.identity()))
                .collect();
            if checks.iter().all(Result::is_err) {
                if let Some(Err(e)) = checks.into_iter().next() {
                    embed = embed.refusing(e.to_string());
                }
            }
            context.register_udf(ScalarUDF::from(embed));
        }
        let session = Session {
            context,
            tables,
            encoder,
        };
        session.register_searches(None);
        Ok(session)
    }

    /// Makes the search functions' hits of `tree`'s repository carry `_stale`: whether
    /// the file under `tree.root` changed since it was indexed.
    pub fn with_source_tree(self, tree: SourceTree) -> Self {
        self.register_searches(Some(Arc::new(tree)));
        self
    }

    fn register_searches(&self, tree: Option<Arc<SourceTree>>) {
        for kind in [SearchKind::Vector, SearchKind::Text, SearchKind::Hybrid] {
            let function = SearchFunction::new(
                kind,
                self.tables.clone(),
                self.encoder.clone(),
                tree.clone(),
            );
            self.context.register_udtf(kind.name(), Arc::new(function));
        }
    }

    /// The chunk table `name` as this session holds it: searches through it share the
    /// session's hot index.
    pub fn table(&self, name: &str) -> Option<&ChunkTable> {
        self.tables.get(name)
    }

    /// Loads the hot index of every table that has one saved (see
    /// [`ChunkTable::open_hot_index`]), so that `vector_search` runs on it.
    pub async fn open_hot_indexes(
        &self,
        options: &crate::search::HotIndexOptions,
    ) -> Result<Vec<crate::search::HotIndexReport>> {
        let mut reports = Vec::new();
        for table in self.tables.values() {
            if table.has_hot_snapshot() {
                reports.push(table.open_hot_index(options).await?);
            }
        }
        Ok(reports)
    }

    /// The DataFusion context, for registering more tables or functions.
    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    /// Names of the registered chunk tables.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// Runs one SQL statement and collects its result.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>> {
        let frame = self.context.sql(query).await.map_err(sql_error)?;
        frame.collect().await.map_err(sql_error)
    }
}

fn sql_error(e: datafusion::error::DataFusionError) -> Error {
    Error::Sql(e.to_string())
}

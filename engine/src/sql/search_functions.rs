//! The search table functions: `vector_search(table, query, k [, refine])`,
//! `fts(table, text, k)` and `hybrid_search(table, text, k)`. Each yields the hit columns
//! plus `_score` (and `_distance` for vector search) and `_stale` (whether the hit's file
//! changed on disk since it was indexed, when the session knows the tree); WHERE clauses
//! on the hit columns run inside the search as its prefilter, so a filtered search still
//! returns `k` rows when `k` rows match.

use super::pushdown::to_lance_sql;
use super::vectors;
use crate::search::{Filter, SearchHit, SearchMode, SearchRequest};
use crate::store::ChunkTable;
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use lancet_schemas::columns as col;
use lancet_udf::{Encoder, Task, TaskRole};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The repository on disk that a database indexes: search hits of its files carry
/// `_stale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTree {
    /// Its root folder.
    pub root: PathBuf,
    /// The repository name its chunks are stored under.
    pub repo: String,
}

/// Columns a WHERE clause may name to be pushed into the search.
const PUSHABLE: &[&str] = &[
    col::CHUNK_ID,
    col::REPO,
    col::PATH,
    col::LANGUAGE,
    col::START_LINE,
    col::END_LINE,
    col::START_BYTE,
    col::END_BYTE,
    col::SYMBOL,
    col::KIND,
];

/// Which search a function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// `vector_search`.
    Vector,
    /// `fts`.
    Text,
    /// `hybrid_search`.
    Hybrid,
}

impl SearchKind {
    /// The SQL name of the function.
    pub fn name(self) -> &'static str {
        match self {
            SearchKind::Vector => "vector_search",
            SearchKind::Text => "fts",
            SearchKind::Hybrid => "hybrid_search",
        }
    }
}

/// A search table function over the session's tables.
pub struct SearchFunction {
    kind: SearchKind,
    tables: Arc<BTreeMap<String, ChunkTable>>,
    encoder: Option<Arc<dyn Encoder>>,
    tree: Option<Arc<SourceTree>>,
}

impl std::fmt::Debug for SearchFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchFunction")
            .field("kind", &self.kind)
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .field(
                "model",
                &self.encoder.as_ref().map(|e| e.identity().id.clone()),
            )
            .finish()
    }
}

impl SearchFunction {
    /// The function `kind` over `tables`, embedding text queries with `encoder`; hits
    /// of `tree`'s files say whether they are stale.
    pub fn new(
        kind: SearchKind,
        tables: Arc<BTreeMap<String, ChunkTable>>,
        encoder: Option<Arc<dyn Encoder>>,
        tree: Option<Arc<SourceTree>>,
    ) -> Self {
        SearchFunction {
            kind,
            tables,
            encoder,
            tree,
        }
    }

    fn table(&self, expr: &Expr) -> Result<ChunkTable> {
        let name = string_literal(expr, self.kind.name(), "table name")?;
        match self.tables.get(&name) {
            Some(table) => Ok(table.clone()),
            None => plan_err!(
                "{}: no table `{name}` (tables: {})",
                self.kind.name(),
                self.tables.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Embeds `text` as a query for `table`, refusing a table built by another model.
    fn embed_query(&self, table: &ChunkTable, text: &str) -> Result<Vec<f32>> {
        let Some(encoder) = &self.encoder else {
            return plan_err!(
                "{}: a text query needs the encoder; open the session with a model",
                self.kind.name()
            );
        };
        table
            .check_encoder(encoder.identity())
            .map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let role: TaskRole = Task::Nl2Code.query();
        let embeddings = encoder
            .encode(&[text], role)
            .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        Ok(embeddings.row(0).to_vec())
    }
}

fn string_literal(expr: &Expr, function: &str, what: &str) -> Result<String> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Ok(s.clone()),
        other => plan_err!("{function}: the {what} must be a string literal, got {other}"),
    }
}

fn count_literal(expr: &Expr, function: &str, what: &str) -> Result<usize> {
    let value = match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => *v,
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => i64::from(*v),
        Expr::Literal(ScalarValue::UInt64(Some(v)), _) => *v as i64,
        other => return plan_err!("{function}: {what} must be an integer literal, got {other}"),
    };
    if !(1..=100_000).contains(&value) {
        return plan_err!("{function}: {what} must be between 1 and 100000, got {value}");
    }
    Ok(value as usize)
}

impl TableFunctionImpl for SearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let name = self.kind.name();
        let usage = match self.kind {
            SearchKind::Vector => "vector_search(table, query text or vector, k [, refine])",
            SearchKind::Text => "fts(table, text, k)",
            SearchKind::Hybrid => "hybrid_search(table, text, k)",
        };
        let max_args = if self.kind == SearchKind::Vector {
            4
        } else {
            3
        };
        if exprs.len() < 3 || exprs.len() > max_args {
            return plan_err!("{name}: expected {usage}, got {} arguments", exprs.len());
        }
        let table = self.table(&exprs[0])?;
        // One model per table: a session with a model ranks only tables of that model
        // (its `embed()` or text made the query vector); without one, a vector literal
        // is the caller's word.
        if let (Some(encoder), SearchKind::Vector | SearchKind::Hybrid) = (&self.encoder, self.kind)
        {
            table
                .check_encoder(encoder.identity())
                .map_err(|e| DataFusionError::Plan(format!("{name}: {e}")))?;
        }
        let k = count_literal(&exprs[2], name, "k")?;
        let search = match self.kind {
            SearchKind::Vector => {
                let vector = match &exprs[1] {
                    Expr::Literal(ScalarValue::Utf8(Some(text)), _)
                    | Expr::Literal(ScalarValue::Utf8View(Some(text)), _)
                    | Expr::Literal(ScalarValue::LargeUtf8(Some(text)), _) => {
                        self.embed_query(&table, text)?
                    }
                    Expr::Literal(value, _) if vectors::is_vector_type(&value.data_type()) => {
                        vectors::literal(value)?
                    }
                    other => {
                        return plan_err!(
                            "{name}: the query must be a text or vector literal (or embed('...')), got {other}"
                        )
                    }
                };
                let refine = match exprs.get(3) {
                    Some(e) => count_literal(e, name, "refine")?,
                    None => 10,
                };
                Search::Vector { vector, refine }
            }
            SearchKind::Text => Search::Text {
                text: string_literal(&exprs[1], name, "text")?,
            },
            SearchKind::Hybrid => {
                let text = string_literal(&exprs[1], name, "text")?;
                let vector = self.embed_query(&table, &text)?;
                Search::Hybrid { text, vector }
            }
        };
        Ok(Arc::new(SearchProvider {
            table,
            search,
            k,
            schema: hit_schema(),
            tree: self.tree.clone(),
        }))
    }
}

#[derive(Debug, Clone)]
enum Search {
    Vector { vector: Vec<f32>, refine: usize },
    Text { text: String },
    Hybrid { text: String, vector: Vec<f32> },
}

/// The result of one search call, run when DataFusion scans it.
#[derive(Debug)]
struct SearchProvider {
    table: ChunkTable,
    search: Search,
    k: usize,
    schema: SchemaRef,
    tree: Option<Arc<SourceTree>>,
}

/// The hit columns plus `_score`, `_distance` and `_stale`.
pub fn hit_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text(col::CHUNK_ID, false),
        text(col::REPO, false),
        text(col::PATH, false),
        text(col::LANGUAGE, false),
        Field::new(col::START_LINE, DataType::UInt32, false),
        Field::new(col::END_LINE, DataType::UInt32, false),
        Field::new(col::START_BYTE, DataType::UInt64, false),
        Field::new(col::END_BYTE, DataType::UInt64, false),
        text(col::SYMBOL, true),
        text(col::KIND, false),
        text(col::TEXT, false),
        Field::new("_score", DataType::Float32, false),
        Field::new("_distance", DataType::Float32, true),
        Field::new("_stale", DataType::Boolean, true),
    ]))
}

fn hits_batch(
    schema: SchemaRef,
    hits: &[SearchHit],
    distances: bool,
    stale: Vec<Option<bool>>,
) -> Result<RecordBatch> {
    let strings = |f: fn(&SearchHit) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(hits.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        strings(|h| &h.chunk_id),
        strings(|h| &h.repo),
        strings(|h| &h.path),
        strings(|h| &h.language),
        Arc::new(UInt32Array::from_iter_values(
            hits.iter().map(|h| h.start_line),
        )),
        Arc::new(UInt32Array::from_iter_values(
            hits.iter().map(|h| h.end_line),
        )),
        Arc::new(UInt64Array::from_iter_values(
            hits.iter().map(|h| h.start_byte),
        )),
        Arc::new(UInt64Array::from_iter_values(
            hits.iter().map(|h| h.end_byte),
        )),
        Arc::new(StringArray::from_iter(
            hits.iter().map(|h| h.symbol.as_deref()),
        )),
        strings(|h| &h.kind),
        strings(|h| &h.text),
        Arc::new(Float32Array::from_iter_values(hits.iter().map(|h| h.score))),
        Arc::new(Float32Array::from_iter(
            hits.iter().map(|h| distances.then_some(1.0 - h.score)),
        )),
        Arc::new(BooleanArray::from(stale)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn engine_error(e: crate::error::Error) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

#[async_trait]
impl TableProvider for SearchProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match to_lance_sql(f, PUSHABLE) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let predicates: Vec<String> = filters
            .iter()
            .filter_map(|f| to_lance_sql(f, PUSHABLE))
            .collect();
        let filter = Filter {
            predicate: (!predicates.is_empty()).then(|| predicates.join(" AND ")),
            ..Filter::default()
        };
        let (hits, distances) = match &self.search {
            Search::Vector { vector, refine } => {
                let request = SearchRequest::new(vector.clone(), self.k)
                    .filter(filter)
                    .mode(SearchMode::TwoStage { refine: *refine });
                (
                    self.table.search(&request).await.map_err(engine_error)?,
                    true,
                )
            }
            Search::Text { text } => (
                self.table
                    .text_search(text, self.k, &filter)
                    .await
                    .map_err(engine_error)?,
                false,
            ),
            Search::Hybrid { text, vector } => {
                let request = SearchRequest::new(vector.clone(), self.k).filter(filter);
                (
                    self.table
                        .hybrid_search(text, &request)
                        .await
                        .map_err(engine_error)?,
                    false,
                )
            }
        };
        let stale = match self.tree.as_deref() {
            Some(tree) => self
                .table
                .stale_flags(&hits, &tree.root, &tree.repo)
                .await
                .map_err(engine_error)?,
            None => vec![None; hits.len()],
        };
        let batch = hits_batch(self.schema.clone(), &hits, distances, stale)?;
        let table = MemTable::try_new(self.schema.clone(), vec![vec![batch]])?;
        table.scan(state, projection, &[], limit).await
    }
}

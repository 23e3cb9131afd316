//! Arguments and answers of the MCP tools, with the JSON schemas clients see. No field
//! is optional in the `null` sense (strict clients reject `"type": [..., "null"]`): an
//! absent argument takes its default, an empty string means "not set".

use schemars::transform::{RecursiveTransform, Transform};
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

/// Drops the `uint32`/`uint64` formats schemars writes for unsigned integers: JSON Schema
/// defines no such formats and strict validators (the MCP Inspector's) warn on each; the
/// `minimum: 0` written beside them keeps the meaning.
fn portable(schema: &mut Schema) {
    let mut drop_unsigned_formats = RecursiveTransform(|s: &mut Schema| {
        let unsigned = s
            .get("format")
            .and_then(|f| f.as_str())
            .is_some_and(|f| f.starts_with("uint"));
        if unsigned {
            s.remove("format");
        }
    });
    drop_unsigned_formats.transform(schema);
}

/// Default number of hits.
const DEFAULT_K: u32 = 10;
/// Default answer budget in tokens: well under the 25,000 that Claude Code accepts
/// from a tool (and under its 10,000-token warning).
pub const DEFAULT_MAX_TOKENS: u32 = 6_000;

fn default_k() -> u32 {
    DEFAULT_K
}

fn default_max_tokens() -> u32 {
    DEFAULT_MAX_TOKENS
}

fn default_max_rows() -> u32 {
    50
}

/// Which ranking a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Meaning and words: the vector and keyword rankings fused by reciprocal rank.
    #[default]
    Hybrid,
    /// Meaning only: the embedding of the query against the chunks'.
    Vector,
    /// Words only: BM25 over the chunk text (identifiers, error messages).
    Text,
}

/// How much of each hit's code the answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// The first lines of each chunk.
    #[default]
    Snippet,
    /// The whole chunk.
    Full,
    /// Path and line range only.
    Location,
}

/// Arguments of `search_code`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(transform = portable)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// What to look for: a question, a description of behaviour, an identifier or code.
    pub query: String,
    /// Number of hits (1 to 50).
    #[serde(default = "default_k")]
    pub k: u32,
    /// Only files whose path starts with this prefix, e.g. `src/engine/` ("" for all).
    #[serde(default)]
    pub path: String,
    /// Only this language, e.g. `rust`, `python`, `typescript` ("" for all).
    #[serde(default)]
    pub language: String,
    /// Only this repository, for databases holding several ("" for all).
    #[serde(default)]
    pub repo: String,
    /// Ranking: `hybrid` (default), `vector` or `text`.
    #[serde(default)]
    pub mode: Mode,
    /// Code per hit: `snippet` (default), `full` or `location`.
    #[serde(default)]
    pub detail: Detail,
    /// Budget of the whole answer in tokens (about 3 characters each); hits are cut or
    /// left for the next page to fit.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// `next_cursor` of a previous answer to the same query, for the hits after it.
    #[serde(default)]
    pub cursor: String,
}

/// Arguments of `find_similar`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(transform = portable)]
#[serde(deny_unknown_fields)]
pub struct SimilarArgs {
    /// A file of the index (relative to the repository root), with `line`.
    #[serde(default)]
    pub path: String,
    /// A line of `path` (1-based): the chunk holding it is the example.
    #[serde(default)]
    pub line: u32,
    /// Or the example code itself (used when given, instead of `path` and `line`).
    #[serde(default)]
    pub text: String,
    /// Number of hits (1 to 50).
    #[serde(default = "default_k")]
    pub k: u32,
    /// Code per hit: `snippet` (default), `full` or `location`.
    #[serde(default)]
    pub detail: Detail,
    /// Budget of the whole answer in tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

/// Arguments of `sql`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(transform = portable)]
#[serde(deny_unknown_fields)]
pub struct SqlArgs {
    /// One read-only SQL statement over the table `chunks` (columns path, language,
    /// repo, symbol, kind, start_line, end_line, text, ...); `embed('text')`,
    /// `vector_search('chunks', 'query', k)`, `fts(...)` and `hybrid_search(...)` work.
    pub query: String,
    /// Most rows returned (1 to 1,000).
    #[serde(default = "default_max_rows")]
    pub max_rows: u32,
    /// Budget of the whole answer in tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

/// Arguments of `index_status`: none.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(transform = portable)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Arguments of `reindex`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(transform = portable)]
#[serde(deny_unknown_fields)]
pub struct ReindexArgs {
    /// Files or folders to re-index, relative to the repository root (or absolute
    /// inside it); empty for the whole repository. Deleted paths are removed.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// One search hit.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(transform = portable)]
pub struct Hit {
    /// Path relative to the repository root.
    pub path: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, inclusive.
    pub end_line: u32,
    /// Enclosing symbol, e.g. `Parser::parse` ("" when none).
    pub symbol: String,
    /// Syntactic kind: function, method, class, ...
    pub kind: String,
    /// Language.
    pub language: String,
    /// Repository.
    pub repo: String,
    /// Score of the ranking used (higher is better), to 4 decimals.
    pub score: f64,
    /// Cosine similarity of the vector stage (0 when the hit came from words only).
    pub vector_score: f64,
    /// BM25 score of the keyword stage (0 when the hit came from meaning only).
    pub text_score: f64,
    /// The file changed on disk (or is gone) since it was indexed: re-read it.
    pub stale: bool,
    /// The code, as `detail` asked ("" for `location`).
    pub text: String,
    /// `text` was cut to fit the budget.
    pub text_cut: bool,
}

/// Answer of `search_code` and `find_similar`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = portable)]
pub struct SearchAnswer {
    /// Hits, best first.
    pub hits: Vec<Hit>,
    /// Pass as `cursor` to get the hits after these ("" when there are no more).
    pub next_cursor: String,
    /// Hits whose file changed since indexing (see `stale`).
    pub stale_hits: u32,
    /// Share of the index's chunks that have vectors, 0 to 1. Below 1 the index is
    /// still being embedded: the rest are found by text ranking only.
    pub vector_coverage: f64,
}

/// Answer of `sql`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = portable)]
pub struct SqlAnswer {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each a JSON object keyed by column.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The statement returned more rows than shown (past `max_rows` or the budget).
    pub more_rows: bool,
}

/// An indexing job started by `reindex`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[schemars(transform = portable)]
pub struct JobStatus {
    /// `idle`, `running`, `done` or `failed`; `watching` under `lancet mcp --watch`.
    pub state: String,
    /// The paths the job re-indexes (empty: the whole repository).
    pub paths: Vec<String>,
    /// Files found by the walk so far.
    pub files_found: u64,
    /// Files read so far.
    pub files_scanned: u64,
    /// Files new or changed, indexed.
    pub files_indexed: u64,
    /// Files gone from the tree, removed from the index.
    pub files_deleted: u64,
    /// Chunks embedded so far.
    pub chunks_embedded: u64,
    /// Seconds since the job started.
    pub seconds: f64,
    /// Why the job failed ("" otherwise).
    pub error: String,
}

/// Answer of `index_status`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = portable)]
pub struct StatusAnswer {
    /// Repository root served.
    pub root: String,
    /// Database folder.
    pub database: String,
    /// Whether the table exists yet.
    pub indexed: bool,
    /// Chunk rows.
    pub rows: u64,
    /// Files indexed.
    pub files: u64,
    /// Model that embedded the table.
    pub model: String,
    /// Whether this server's model is loaded (it loads in the background at start).
    pub model_loaded: bool,
    /// Table version (each commit adds one).
    pub version: u64,
    /// Files on disk that are new, changed or gone since they were indexed.
    pub files_changed: u64,
    /// Some of them.
    pub changed_examples: Vec<String>,
    /// The last or ongoing `reindex` job of this server.
    pub job: JobStatus,
}

/// Answer of `reindex`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = portable)]
pub struct ReindexAnswer {
    /// What happens now.
    pub message: String,
    /// The job as it stands.
    pub job: JobStatus,
}

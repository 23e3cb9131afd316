//! The MCP server: five tools over the handlers of this folder. Every failure a caller
//! can act on is a tool result with `isError` and a message saying what to do.

use super::schema::{
    NoArgs, ReindexAnswer, ReindexArgs, SearchAnswer, SearchArgs, SimilarArgs, SqlAnswer, SqlArgs,
    StatusAnswer,
};
use super::state::Shared;
use super::{index, search, sql};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{Implementation, ProgressNotificationParam, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler};
use std::sync::Arc;

const INSTRUCTIONS: &str = "Lancet searches this repository's code by meaning and by words. \
Start with search_code (a question or a description of behaviour; an identifier works too), \
then read the files it points at. Hits marked stale changed on disk since indexing: re-read \
them, and call reindex when many did. find_similar finds code like a given location or \
snippet; sql answers counting and listing questions over the chunks table.";

/// The server: shared state and its tools.
#[derive(Clone)]
pub struct LancetMcp {
    shared: Arc<Shared>,
    #[allow(dead_code)] // read by the code #[tool_handler] generates
    tool_router: ToolRouter<LancetMcp>,
}

impl LancetMcp {
    /// A server over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        LancetMcp {
            shared,
            tool_router: Self::tool_router(),
        }
    }

    /// Tells a client that asked for progress that the model is still loading.
    async fn note_model_loading(&self, context: &RequestContext<RoleServer>) {
        if self.shared.model_loaded() {
            return;
        }
        if let Some(token) = context.meta.get_progress_token() {
            let note = ProgressNotificationParam::new(token, 0.0)
                .with_message("loading the embedding model (first call after start)");
            let _ = context.peer.notify_progress(note).await;
        }
    }
}

#[tool_router]
impl LancetMcp {
    #[tool(
        description = "Search the repository's code by meaning and words. Returns the best \
                       chunks (functions, classes, blocks) with path, line range, symbol, \
                       scores and a snippet, cut to max_tokens; next_cursor pages on. Hits \
                       with stale=true changed on disk since indexing.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_code(
        &self,
        Parameters(args): Parameters<SearchArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<SearchAnswer>, String> {
        if args.mode != super::schema::Mode::Text {
            self.note_model_loading(&context).await;
        }
        search::search_code(&self.shared, args).await.map(Json)
    }

    #[tool(
        description = "Find code similar to an example: the indexed chunk at path and line, \
                       or a snippet given as text. The example itself is left out.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn find_similar(
        &self,
        Parameters(args): Parameters<SimilarArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<SearchAnswer>, String> {
        self.note_model_loading(&context).await;
        search::find_similar(&self.shared, args).await.map(Json)
    }

    #[tool(
        description = "What the index holds (rows, files, model, version), how many files \
                       changed on disk since indexing, and the progress of a reindex job.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn index_status(
        &self,
        Parameters(_): Parameters<NoArgs>,
    ) -> Result<Json<StatusAnswer>, String> {
        index::status(&self.shared).await.map(Json)
    }

    #[tool(
        description = "Re-index the repository, or only the given files and folders, \
                       incrementally in the background (unchanged files are skipped, deleted \
                       ones removed); index_status reports progress, and so do progress \
                       notifications when the call carries a progress token. Refused while \
                       another job writes the index.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn reindex(
        &self,
        Parameters(args): Parameters<ReindexArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<ReindexAnswer>, String> {
        self.note_model_loading(&context).await;
        let sink = context
            .meta
            .get_progress_token()
            .map(|token| index::ProgressSink {
                peer: context.peer.clone(),
                token,
            });
        index::reindex(self.shared.clone(), args, sink)
            .await
            .map(Json)
    }

    #[tool(
        description = "Run one read-only SQL query over the `chunks` table (path, language, \
                       repo, symbol, kind, start_line, end_line, text) with embed(), \
                       vector_search(), fts() and hybrid_search(); statements that write \
                       are refused.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn sql(&self, Parameters(args): Parameters<SqlArgs>) -> Result<Json<SqlAnswer>, String> {
        sql::sql(&self.shared, args).await.map(Json)
    }
}

#[tool_handler]
impl ServerHandler for LancetMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("lancet", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

//! `lancet mcp`: the index served to coding agents over the Model Context Protocol
//! (stdio), sized for their context windows.
//!
//! `initialize` is answered at once; the model loads in the background from the start.
//! Tools: `search_code`, `find_similar`, `index_status`, `reindex`, `sql`.

mod budget;
mod freshness;
mod index;
mod schema;
mod search;
mod server;
mod sql;
mod state;

use super::Args;
use anyhow::{Context, Result};
use clap::Parser;
use rmcp::ServiceExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `lancet mcp`.
#[derive(Debug, Parser)]
pub struct McpArgs {
    /// Repository to serve (its index is `ROOT/.lancet` unless --db says otherwise).
    #[arg(default_value = ".")]
    pub root: PathBuf,
}

pub async fn run(args: &Args, a: &McpArgs) -> Result<()> {
    let root = a
        .root
        .canonicalize()
        .with_context(|| format!("cannot serve {}", a.root.display()))?;
    let shared = Arc::new(state::Shared::new(args, root));
    // Load the model now, beside the handshake: the first search finds it ready.
    let loading = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = loading.encoder().await {
            tracing::warn!("{e}");
        }
    });
    let server = server::LancetMcp::new(shared)
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP handshake on stdio")?;
    server.waiting().await.context("MCP session")?;
    Ok(())
}

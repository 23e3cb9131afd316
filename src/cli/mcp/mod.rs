//! `lancet mcp`: the index served to coding agents over the Model Context Protocol
//! (stdio, or streamable HTTP with `--http`), sized for their context windows.
//!
//! `initialize` is answered at once; the model loads in the background from the start.
//! Tools: `search_code`, `find_similar`, `index_status`, `reindex`, `sql`.

mod budget;
mod http;
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
    /// Serve the streamable HTTP transport at http://ADDR/mcp (e.g. 127.0.0.1:8765)
    /// instead of stdio.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Index the repository, then keep the index current as files change (as `lancet
    /// watch` does), while serving.
    #[arg(long)]
    pub watch: bool,
}

pub async fn run(args: &Args, a: &McpArgs) -> Result<()> {
    let root = a
        .root
        .canonicalize()
        .with_context(|| format!("cannot serve {}", a.root.display()))?;
    let shared = Arc::new(state::Shared::new(args, root)?);
    // Load the model now, beside the handshake: the first search finds it ready.
    let loading = shared.clone();
    let loading_failed = shared.clone();
    let watch = a.watch;
    tokio::spawn(async move {
        let started = if watch {
            index::watch(loading).await
        } else {
            loading.encoder().await.map(|_| ())
        };
        if let Err(e) = started {
            tracing::warn!("{e}");
            if watch {
                if let Ok(mut job) = loading_failed.job.lock() {
                    job.status.state = "failed".into();
                    job.status.error = format!("the watcher stopped: {e}");
                }
            }
        }
    });
    if let Some(addr) = &a.http {
        return http::serve(shared, addr).await;
    }
    let server = server::LancetMcp::new(shared)
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP handshake on stdio")?;
    server.waiting().await.context("MCP session")?;
    Ok(())
}

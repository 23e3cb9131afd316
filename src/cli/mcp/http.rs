//! `lancet mcp --http ADDR`: the same server over MCP's streamable HTTP transport, for
//! clients that connect to a URL (and for several clients sharing one loaded model).
//! Each client session gets its own server over the one shared state.

use super::server::LancetMcp;
use super::state::Shared;
use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves MCP at `http://ADDR/mcp` until the process is stopped.
pub async fn serve(shared: Arc<Shared>, addr: &str) -> Result<()> {
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (give HOST:PORT, e.g. 127.0.0.1:8765)")
    })?;
    let local = listener.local_addr().context("the listening address")?;
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts(local));
    let service = StreamableHttpService::new(
        move || Ok(LancetMcp::new(shared.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    errln!("lancet mcp: serving http://{local}/mcp");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on serving.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("an MCP HTTP connection ended: {e}");
            }
        });
    }
}

/// The `Host` values accepted: loopback names (which guard a local server against DNS
/// rebinding), and the address the server was bound to when that is not loopback.
fn allowed_hosts(local: SocketAddr) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    if !local.ip().is_loopback() && !local.ip().is_unspecified() {
        hosts.push(local.ip().to_string());
    }
    hosts
}

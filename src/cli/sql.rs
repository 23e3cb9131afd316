//! `lancet sql [QUERY]`: SQL over the database, with embed(), vector_search(), fts() and
//! hybrid_search(). Without a query, an interactive shell reads statements ending in `;`.

use super::locate::{existing_db, indexed_root, load_encoder, open_database};
use super::Args;
use anyhow::{Context, Result};
use clap::Parser;
use lancet::engine::datafusion::arrow::csv::WriterBuilder;
use lancet::engine::datafusion::arrow::json::ArrayWriter;
use lancet::engine::datafusion::arrow::util::pretty::pretty_format_batches;
use lancet::engine::sql::{Session, SourceTree};
use lancet::udf::{Encoder, EncoderOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

/// Arguments of `lancet sql`.
#[derive(Debug, Parser)]
pub struct SqlArgs {
    /// The statement; omit it for an interactive shell (statements end with `;`).
    pub query: Option<String>,
    /// Print rows as a JSON array.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print rows as CSV with a header.
    #[arg(long)]
    pub csv: bool,
    /// Do not load the model: embed() and text queries are unavailable, start-up is
    /// instant.
    #[arg(long)]
    pub no_model: bool,
}

pub async fn run(args: &Args, a: &SqlArgs) -> Result<()> {
    let db = open_database(args, existing_db(args)?).await?;
    let encoder: Option<Arc<dyn Encoder>> = if a.no_model {
        None
    } else {
        match load_encoder(args, EncoderOptions::default()) {
            Ok(encoder) => Some(encoder),
            Err(e) => {
                errln!("warning: embed() and text queries are unavailable: {e:#}");
                None
            }
        }
    };
    let mut session = Session::new(&db, encoder).await?;
    // Hits of the tree a default database indexes say whether their file changed.
    if let Some((root, repo)) = indexed_root(args) {
        session = session.with_source_tree(SourceTree { root, repo });
    }
    match &a.query {
        Some(query) => execute(&session, query, a).await,
        None => shell(&session, a).await,
    }
}

async fn execute(session: &Session, query: &str, a: &SqlArgs) -> Result<()> {
    let batches = session.sql(query).await?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut writer = ArrayWriter::new(Vec::new());
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.finish()?;
        let bytes = writer.into_inner();
        out.write_all(if bytes.is_empty() { b"[]" } else { &bytes })?;
        writeln!(out)?;
    } else if a.csv {
        let mut writer = WriterBuilder::new().with_header(true).build(&mut out);
        for batch in &batches {
            writer.write(batch)?;
        }
    } else {
        writeln!(out, "{}", pretty_format_batches(&batches)?)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
    }
    Ok(())
}

async fn shell(session: &Session, a: &SqlArgs) -> Result<()> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        errln!(
            "lancet sql: tables {}; end statements with `;`, `\\q` quits",
            session.table_names().join(", ")
        );
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut statement = String::new();
    loop {
        if interactive {
            let prompt = if statement.is_empty() {
                "lancet> "
            } else {
                "     -> "
            };
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "{prompt}").and_then(|()| stderr.flush());
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading stdin")?;
        let trimmed = line.trim();
        if statement.is_empty() && matches!(trimmed, "\\q" | "exit" | "quit") {
            break;
        }
        statement.push_str(&line);
        statement.push('\n');
        if trimmed.ends_with(';') {
            let query = std::mem::take(&mut statement);
            // An error ends the statement, not the shell.
            if let Err(e) = execute(session, query.trim().trim_end_matches(';'), a).await {
                errln!("error: {e:#}");
            }
        }
    }
    if !statement.trim().is_empty() {
        execute(session, statement.trim(), a).await?;
    }
    Ok(())
}

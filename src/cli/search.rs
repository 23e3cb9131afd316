//! `lancet search QUERY`.

use super::locate::{indexed_root, load_encoder, open_table};
use super::output::print_hits;
use super::Args;
use anyhow::{bail, Result};
use clap::Parser;
use lancet::engine::{ChunkTable, Filter, SearchHit, SearchMode, SearchRequest};
use lancet::udf::{EncoderOptions, Role, TaskRole};

/// Arguments of `lancet search`.
#[derive(Debug, Parser)]
pub struct SearchArgs {
    /// What to look for: a question, a description, or code.
    pub query: String,
    /// Number of results.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Only these languages (repeatable).
    #[arg(long = "lang")]
    pub languages: Vec<String>,
    /// Only paths starting with this prefix.
    #[arg(long)]
    pub path: Option<String>,
    /// Only paths matching this glob (`*` any characters, `?` one).
    #[arg(long)]
    pub glob: Option<String>,
    /// Only this repository.
    #[arg(long)]
    pub repo: Option<String>,
    /// Task of the query: nl2code, qa, code2code, code2nl, code2completion.
    #[arg(long, default_value = "nl2code")]
    pub task: String,
    /// Shortlist size of the coarse search, as a multiple of k.
    #[arg(long, default_value_t = 10)]
    pub refine: usize,
    /// Exact search at full width (slow; for checking).
    #[arg(long)]
    pub exact: bool,
    /// Print results as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &Args, a: &SearchArgs) -> Result<()> {
    if a.query.trim().is_empty() {
        bail!("the query is empty");
    }
    let task: TaskRole = a.task.parse()?;
    let task = TaskRole {
        role: Role::Query,
        ..task
    };
    let table = open_table(args).await?;
    let encoder = load_encoder(args, EncoderOptions::default())?;
    table.check_encoder(encoder.identity())?;
    let embeddings = encoder.encode(&[a.query.as_str()], task)?;
    let filter = Filter {
        languages: a.languages.clone(),
        path_prefix: a.path.clone(),
        path_glob: a.glob.clone(),
        repo: a.repo.clone(),
        predicate: None,
    };
    let mode = if a.exact {
        SearchMode::Exact
    } else {
        SearchMode::TwoStage { refine: a.refine }
    };
    let request = SearchRequest::new(embeddings.row(0).to_vec(), a.k)
        .filter(filter)
        .mode(mode);
    // While the index is still being embedded, rows without vectors are found by text:
    // the ranking fuses the vector and the text rankings rather than miss them.
    let coverage = table.current_vector_coverage().await?;
    let hits = if coverage.is_complete() || a.exact {
        table.search(&request).await?
    } else {
        errln!(
            "note: vectors cover {coverage} so far; ranking by vector and text together \
             (`lancet index` embeds the rest)"
        );
        table.hybrid_search(&a.query, &request).await?
    };
    let stale = stale_flags(args, &table, &hits).await?;
    print_hits(&hits, &stale, a.json)
}

/// Whether each hit's file changed on disk since it was indexed, where the tree is known
/// (a default `.lancet` database); empty otherwise.
async fn stale_flags(args: &Args, table: &ChunkTable, hits: &[SearchHit]) -> Result<Vec<bool>> {
    let Some((root, repo)) = indexed_root(args) else {
        return Ok(Vec::new());
    };
    if hits.iter().all(|h| h.repo != repo) {
        return Ok(Vec::new());
    }
    let flags = table.stale_flags(hits, &root, &repo).await?;
    Ok(flags.into_iter().map(|f| f.unwrap_or(false)).collect())
}

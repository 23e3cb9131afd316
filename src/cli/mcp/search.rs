//! `search_code` and `find_similar`: rankings, pages and the answer's budget.

use super::budget::{self, first_lines, json_tokens, SNIPPET_LINES};
use super::schema::{Detail, Hit, Mode, SearchAnswer, SearchArgs, SimilarArgs};
use super::state::Shared;
use lancet::engine::{ChunkTable, Filter, SearchHit, SearchRequest};
use lancet::udf::{Task, TaskRole};
use std::collections::HashMap;

/// Most hits one page holds.
pub const MAX_PAGE: u32 = 50;
/// Deepest a cursor may page.
const MAX_OFFSET: usize = 1_000;

/// A page of one ranking: hits `offset..offset + k`.
struct Page {
    offset: usize,
    k: usize,
}

impl Page {
    fn parse(cursor: &str, k: u32) -> Result<Self, String> {
        if !(1..=MAX_PAGE).contains(&k) {
            return Err(format!("k = {k}: ask for 1 to {MAX_PAGE} hits"));
        }
        let offset = if cursor.is_empty() {
            0
        } else {
            cursor
                .strip_prefix('o')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n <= MAX_OFFSET)
                .ok_or_else(|| {
                    format!("cursor {cursor:?} is not one this server gave; omit it to start over")
                })?
        };
        Ok(Page {
            offset,
            k: k as usize,
        })
    }

    /// Hits to rank: this page, and one more to know whether another page follows.
    fn depth(&self) -> usize {
        self.offset + self.k + 1
    }
}

/// One ranked hit with the score of each stage that found it.
struct Ranked {
    hit: SearchHit,
    vector_score: f32,
    text_score: f32,
}

/// Answers `search_code`.
pub async fn search_code(shared: &Shared, args: SearchArgs) -> Result<SearchAnswer, String> {
    if args.query.trim().is_empty() {
        return Err("the query is empty: say what code to look for".into());
    }
    let page = Page::parse(&args.cursor, args.k)?;
    let table = shared.table().await?;
    let filter = Filter {
        languages: if args.language.is_empty() {
            Vec::new()
        } else {
            vec![args.language.clone()]
        },
        path_prefix: (!args.path.is_empty()).then(|| args.path.clone()),
        repo: (!args.repo.is_empty()).then(|| args.repo.clone()),
        ..Filter::default()
    };
    let depth = page.depth();
    let ranked = match args.mode {
        Mode::Text => text_ranking(&table, &args.query, depth, &filter).await?,
        Mode::Vector | Mode::Hybrid => {
            let vector = query_vector(shared, &table, &args.query, Task::Nl2Code.query()).await?;
            let request = SearchRequest::new(vector, depth).filter(filter.clone());
            if args.mode == Mode::Vector {
                vector_ranking(&table, &request).await?
            } else {
                hybrid_ranking(&table, &args.query, request).await?
            }
        }
    };
    answer(shared, &table, ranked, &page, args.detail, args.max_tokens).await
}

/// Answers `find_similar`: the chunk at `path:line` (or the given code) as a
/// code-to-code query, the example itself left out.
pub async fn find_similar(shared: &Shared, args: SimilarArgs) -> Result<SearchAnswer, String> {
    let page = Page::parse("", args.k)?;
    let table = shared.table().await?;
    let (example, own) = if !args.text.trim().is_empty() {
        (args.text.clone(), None)
    } else if !args.path.is_empty() && args.line > 0 {
        let hit = chunk_at(&table, &args.path, args.line).await?;
        (hit.text.clone(), Some(hit.chunk_id))
    } else {
        return Err(
            "give `text` (the example code), or `path` and `line` of it in the index".into(),
        );
    };
    let vector = query_vector(shared, &table, &example, Task::Code2Code.query()).await?;
    let request = SearchRequest::new(vector, page.depth() + 1);
    let mut ranked = vector_ranking(&table, &request).await?;
    ranked.retain(|r| Some(&r.hit.chunk_id) != own.as_ref());
    answer(shared, &table, ranked, &page, args.detail, args.max_tokens).await
}

/// The indexed chunk of `path` holding `line`.
async fn chunk_at(table: &ChunkTable, path: &str, line: u32) -> Result<SearchHit, String> {
    let path = path.trim_start_matches("./");
    table
        .chunk_at(None, path, line)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "no indexed chunk of {path} holds line {line}; give the path relative to \
                 the repository root and a line inside the file, or pass `text`"
            )
        })
}

async fn query_vector(
    shared: &Shared,
    table: &ChunkTable,
    query: &str,
    task: TaskRole,
) -> Result<Vec<f32>, String> {
    let encoder = shared.encoder().await?;
    table
        .check_encoder(encoder.identity())
        .map_err(|e| e.to_string())?;
    let encoder = encoder.clone();
    let query = query.to_string();
    let embedded = tokio::task::spawn_blocking(move || encoder.encode(&[query.as_str()], task))
        .await
        .map_err(|e| format!("the encoder failed: {e}"))?
        .map_err(|e| e.to_string())?;
    Ok(embedded.row(0).to_vec())
}

async fn vector_ranking(
    table: &ChunkTable,
    request: &SearchRequest,
) -> Result<Vec<Ranked>, String> {
    let hits = table.search(request).await.map_err(|e| e.to_string())?;
    Ok(hits
        .into_iter()
        .map(|hit| Ranked {
            vector_score: hit.score,
            text_score: 0.0,
            hit,
        })
        .collect())
}

async fn text_ranking(
    table: &ChunkTable,
    query: &str,
    depth: usize,
    filter: &Filter,
) -> Result<Vec<Ranked>, String> {
    let hits = table
        .text_search(query, depth, filter)
        .await
        .map_err(|e| e.to_string())?;
    Ok(hits
        .into_iter()
        .map(|hit| Ranked {
            text_score: hit.score,
            vector_score: 0.0,
            hit,
        })
        .collect())
}

/// The engine's hybrid search; each hit keeps the score each stage gave it.
async fn hybrid_ranking(
    table: &ChunkTable,
    query: &str,
    request: SearchRequest,
) -> Result<Vec<Ranked>, String> {
    let stages = table
        .hybrid_search_stages(query, &request)
        .await
        .map_err(|e| e.to_string())?;
    let scores = |hits: &[SearchHit]| -> HashMap<String, f32> {
        hits.iter().map(|h| (h.chunk_id.clone(), h.score)).collect()
    };
    let (vector_scores, text_scores) = (scores(&stages.vector), scores(&stages.keyword));
    Ok(stages
        .fused
        .into_iter()
        .map(|hit| Ranked {
            vector_score: vector_scores.get(&hit.chunk_id).copied().unwrap_or(0.0),
            text_score: text_scores.get(&hit.chunk_id).copied().unwrap_or(0.0),
            hit,
        })
        .collect())
}

/// The page of `ranked`, marked stale where the file changed, cut to the budget.
async fn answer(
    shared: &Shared,
    table: &ChunkTable,
    ranked: Vec<Ranked>,
    page: &Page,
    detail: Detail,
    max_tokens: u32,
) -> Result<SearchAnswer, String> {
    let more = ranked.len() > page.offset + page.k;
    let on_page: Vec<Ranked> = ranked.into_iter().skip(page.offset).take(page.k).collect();
    let page_hits: Vec<&SearchHit> = on_page.iter().map(|r| &r.hit).collect();
    let stale_flags = table
        .stale_flags(&page_hits, &shared.root, &shared.repo)
        .await
        .map_err(|e| e.to_string())?;
    let mut hits: Vec<Hit> = on_page
        .into_iter()
        .zip(stale_flags)
        .map(|(r, stale)| {
            let stale = stale.unwrap_or(false);
            let text = match detail {
                Detail::Location => String::new(),
                Detail::Snippet => first_lines(&r.hit.text, SNIPPET_LINES).to_string(),
                Detail::Full => r.hit.text.clone(),
            };
            let text_cut = text.len() < r.hit.text.len() && detail != Detail::Location;
            Hit {
                path: r.hit.path,
                start_line: r.hit.start_line,
                end_line: r.hit.end_line,
                symbol: r.hit.symbol.unwrap_or_default(),
                kind: r.hit.kind,
                language: r.hit.language,
                repo: r.hit.repo,
                score: rounded(r.hit.score),
                vector_score: rounded(r.vector_score),
                text_score: rounded(r.text_score),
                stale,
                text,
                text_cut,
            }
        })
        .collect();
    let shown = hits.len();
    let coverage = table
        .current_vector_coverage()
        .await
        .map_err(|e| e.to_string())?;
    let frame = SearchAnswer {
        hits: Vec::new(),
        next_cursor: format!("o{}", page.offset + page.k),
        stale_hits: 0,
        vector_coverage: 1.0,
    };
    let kept = budget::fit(&mut hits, max_tokens.max(1) as usize, json_tokens(&frame));
    let next_cursor = if kept < shown || more {
        format!("o{}", page.offset + kept)
    } else {
        String::new()
    };
    Ok(SearchAnswer {
        stale_hits: hits.iter().filter(|h| h.stale).count() as u32,
        hits,
        next_cursor,
        vector_coverage: (coverage.share() * 1e3).floor() / 1e3,
    })
}

/// `score` to 4 decimals: what ranks hits, without digits that only cost tokens.
fn rounded(score: f32) -> f64 {
    (f64::from(score) * 1e4).round() / 1e4
}

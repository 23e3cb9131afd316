//! The `sql` tool: one read-only statement, rows capped and cut to the budget.

use super::budget::json_tokens;
use super::schema::{SqlAnswer, SqlArgs};
use super::state::Shared;
use lancet::engine::datafusion::arrow::json::ArrayWriter;
use lancet::engine::datafusion::execution::context::SQLOptions;
use lancet::engine::sql::{Session, SourceTree};

/// Most rows one answer may ask for.
const MAX_ROWS: u32 = 1_000;

/// Runs `args.query` without letting it write: DDL, DML and statements such as `SET`
/// are refused before planning.
pub async fn sql(shared: &Shared, args: SqlArgs) -> Result<SqlAnswer, String> {
    if !(1..=MAX_ROWS).contains(&args.max_rows) {
        return Err(format!(
            "max_rows = {}: ask for 1 to {MAX_ROWS}",
            args.max_rows
        ));
    }
    let db = shared.database().await?;
    // Without the model the statement still runs; embed() then says why it cannot.
    let encoder = shared.encoder().await.ok();
    let session = Session::new(&db, encoder)
        .await
        .map_err(|e| e.to_string())?
        .with_source_tree(SourceTree {
            root: shared.root.clone(),
            repo: shared.repo.clone(),
        });
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = session
        .context()
        .sql_with_options(&args.query, read_only)
        .await
        .map_err(|e| format!("SQL: {e} (this tool runs one read-only SELECT)"))?;
    let limit = args.max_rows as usize;
    let frame = frame
        .limit(0, Some(limit + 1))
        .map_err(|e| format!("SQL: {e}"))?;
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches = frame.collect().await.map_err(|e| format!("SQL: {e}"))?;
    let mut writer = ArrayWriter::new(Vec::new());
    for batch in &batches {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    let bytes = writer.into_inner();
    let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?
    };
    let mut more_rows = rows.len() > limit;
    rows.truncate(limit);
    // Rows in order while they fit: the frame first, then each row and its comma.
    let mut answer = SqlAnswer {
        columns,
        rows: Vec::new(),
        more_rows: true,
    };
    let mut used = json_tokens(&answer);
    let budget = args.max_tokens.max(1) as usize;
    let total = rows.len();
    for row in rows {
        used += json_tokens(&row) + 1;
        if used > budget {
            break;
        }
        answer.rows.push(row);
    }
    more_rows |= answer.rows.len() < total;
    answer.more_rows = more_rows;
    Ok(answer)
}

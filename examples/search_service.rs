//! A service embedding Lancet: it opens an index once, keeps the model loaded, and
//! answers each query (one per stdin line) through the Rust API and through SQL.
//!
//!     lancet index path/to/repo --db /tmp/idx --model MODEL
//!     cargo run --release --example search_service -- /tmp/idx MODEL

use lancet::engine::sql::Session;
use lancet::engine::{Database, Filter, HotIndexOptions, SearchRequest, DEFAULT_TABLE};
use lancet::udf::{Encoder, EncoderOptions, QwenEncoder, Task};
use std::io::BufRead;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(db_path), Some(model)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: search_service DB_DIR MODEL_DIR_OR_HUB_ID");
    };
    let encoder: Arc<dyn Encoder> = Arc::new(QwenEncoder::load(&model, EncoderOptions::default())?);
    let db = Database::open(&db_path).await?;
    let sql = Session::new(&db, Some(encoder.clone())).await?;
    let Some(table) = sql.table(DEFAULT_TABLE) else {
        anyhow::bail!("no table `{DEFAULT_TABLE}` in {db_path}");
    };
    table.check_encoder(encoder.identity())?;
    // Searches of a long-lived service run on the hot index: load it (building it if
    // `lancet optimize` never did), shared by the Rust API and SQL through one handle.
    let hot = table.open_hot_index(&HotIndexOptions::default()).await?;
    eprintln!("hot index: {} rows, {:.1} s", hot.rows, hot.seconds);

    for line in std::io::stdin().lock().lines() {
        let query = line?;
        if query.trim().is_empty() {
            continue;
        }
        // The Rust API: embed the query, search with a filter, print the hits.
        let vector = encoder.encode(&[query.as_str()], Task::Nl2Code.query())?;
        let request = SearchRequest::new(vector.row(0).to_vec(), 5).filter(Filter {
            path_prefix: Some("src/".into()),
            ..Filter::default()
        });
        for hit in table.search(&request).await? {
            println!(
                "api  {:.3} {}:{}-{}",
                hit.score, hit.path, hit.start_line, hit.end_line
            );
        }
        // The same question in SQL, joined with an aggregate over the table.
        let statement = format!(
            "SELECT v.path, v.symbol, v._score, f.chunks FROM vector_search('{DEFAULT_TABLE}', '{}', 5) v \
             JOIN (SELECT path, count(*) AS chunks FROM {DEFAULT_TABLE} GROUP BY path) f \
             ON v.path = f.path ORDER BY v._score DESC",
            query.replace('\'', "''")
        );
        for batch in sql.sql(&statement).await? {
            println!(
                "{}",
                lancet::engine::datafusion::arrow::util::pretty::pretty_format_batches(&[batch])?
            );
        }
    }
    Ok(())
}

//! SQL: embed(), cosine_distance(), vector_search(), fts(), hybrid_search(), pushdown
//! of WHERE clauses into the search, and clear errors.

use crate::support::{rows::chunk, rows::row, runtime, HashEncoder};
use arrow_array::{Array, RecordBatch, StringArray};
use lancet::engine::sql::Session;
use lancet::engine::{ChunkTable, Database, IndexOptions, TableDims, TableMetadata};
use lancet::udf::Encoder;
use std::sync::Arc;

const LANGUAGES: [&str; 3] = ["rust", "python", "go"];

fn text_of(i: usize) -> String {
    let topics = [
        "parse config file path",
        "open socket connection retry",
        "sort vector of numbers",
        "render html template page",
        "hash password with salt",
        "read json request body",
    ];
    format!(
        "{} item{i} variant{}",
        topics[i % topics.len()],
        i / topics.len()
    )
}

/// A database with 36 chunks over three languages, one of them naming a rare
/// identifier.
async fn database(dir: &std::path::Path, encoder: &HashEncoder) -> (Database, ChunkTable) {
    let db = Database::open(dir).await.unwrap();
    let metadata = TableMetadata::new(
        encoder.identity().clone(),
        TableDims {
            full: 32,
            prefix: 8,
        },
    )
    .unwrap();
    let table = db.create_table("chunks", metadata).await.unwrap();
    let rows: Vec<_> = (0..36)
        .map(|i| {
            let mut text = text_of(i);
            if i == 7 {
                text.push_str(" fn parse_config_value");
            }
            let language = LANGUAGES[i % 3];
            let path = format!("src/{language}/file{i}.x");
            row(
                chunk("r", &path, language, i as u32, &text),
                encoder.vector(&text),
            )
        })
        .collect();
    table.append(&rows).await.unwrap();
    table
        .ensure_indexes(&IndexOptions::default())
        .await
        .unwrap();
    (db, table)
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(column)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            (0..a.len()).map(move |i| a.value(i).to_string())
        })
        .collect()
}

async fn session(db: &Database) -> Session {
    let encoder: Arc<dyn Encoder> = Arc::new(HashEncoder::new(32));
    Session::new(db, Some(encoder)).await.unwrap()
}

#[test]
fn vector_search_finds_a_chunk_by_its_text_and_filters_before_the_search() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(32);
        let (db, _table) = database(dir.path(), &encoder).await;
        let s = session(&db).await;

        let target = text_of(4);
        let got = s
            .sql(&format!(
                "SELECT path FROM vector_search('chunks', '{target}', 5)"
            ))
            .await
            .unwrap();
        let paths = strings(&got, "path");
        assert_eq!(paths.len(), 5);
        assert_eq!(paths[0], "src/python/file4.x");

        // The filter runs inside the search: still k rows, all of them Rust.
        let got = s
            .sql(&format!(
                "SELECT language, _distance FROM vector_search('chunks', '{target}', 7) \
                 WHERE language = 'rust'"
            ))
            .await
            .unwrap();
        let languages = strings(&got, "language");
        assert_eq!(languages.len(), 7);
        assert!(languages.iter().all(|l| l == "rust"), "{languages:?}");

        let plan = s
            .sql(&format!(
                "EXPLAIN SELECT path FROM vector_search('chunks', '{target}', 5) \
                 WHERE language = 'rust'"
            ))
            .await
            .unwrap();
        let plan = strings(&plan, "plan").join("\n");
        assert!(
            plan.contains("full_filters=[") && plan.contains("language = Utf8(\"rust\")"),
            "{plan}"
        );
        assert!(
            !plan.contains("Filter:") && !plan.contains("FilterExec"),
            "{plan}"
        );
    });
}

#[test]
fn order_by_cosine_distance_to_embed_agrees_with_vector_search() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(32);
        let (db, _table) = database(dir.path(), &encoder).await;
        let s = session(&db).await;
        let query = "open socket connection";
        let ordered = s
            .sql(&format!(
                "SELECT chunk_id FROM chunks \
                 ORDER BY cosine_distance(embedding, embed('{query}')) LIMIT 6"
            ))
            .await
            .unwrap();
        let searched = s
            .sql(&format!(
                "SELECT chunk_id FROM vector_search('chunks', '{query}', 6)"
            ))
            .await
            .unwrap();
        assert_eq!(
            strings(&ordered, "chunk_id"),
            strings(&searched, "chunk_id")
        );
        // A vector literal from embed() is accepted as the query too.
        let by_vector = s
            .sql(&format!(
                "SELECT chunk_id FROM vector_search('chunks', embed('{query}'), 6)"
            ))
            .await
            .unwrap();
        assert_eq!(
            strings(&by_vector, "chunk_id"),
            strings(&searched, "chunk_id")
        );
    });
}

#[test]
fn joins_and_aggregates_over_chunks() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(32);
        let (db, _table) = database(dir.path(), &encoder).await;
        let s = session(&db).await;
        let got = s
            .sql("SELECT language, count(*) AS n FROM chunks GROUP BY language ORDER BY language")
            .await
            .unwrap();
        assert_eq!(strings(&got, "language"), ["go", "python", "rust"]);
        let got = s
            .sql(&format!(
                "SELECT c.path, c.file_hash FROM vector_search('chunks', '{}', 3) v \
                 JOIN chunks c ON v.chunk_id = c.chunk_id ORDER BY v._score DESC",
                text_of(9)
            ))
            .await
            .unwrap();
        let paths = strings(&got, "path");
        assert_eq!(paths.len(), 3);
        assert_eq!(paths[0], "src/rust/file9.x");
        assert_eq!(strings(&got, "file_hash")[0], "f-src/rust/file9.x");
    });
}

#[test]
fn fts_finds_an_identifier_and_hybrid_fuses_both_rankings() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(32);
        let (db, table) = database(dir.path(), &encoder).await;
        let s = session(&db).await;
        let got = s
            .sql("SELECT path FROM fts('chunks', 'parse_config_value', 3)")
            .await
            .unwrap();
        let paths = strings(&got, "path");
        assert_eq!(
            paths.first().map(String::as_str),
            Some("src/python/file7.x"),
            "{paths:?}"
        );

        let query = "parse config value";
        let got = s
            .sql(&format!(
                "SELECT chunk_id, _score FROM hybrid_search('chunks', '{query}', 5)"
            ))
            .await
            .unwrap();
        let fused = strings(&got, "chunk_id");
        assert_eq!(fused.len(), 5);
        // The same fusion computed from the Rust API's two rankings.
        let vector = encoder
            .encode(&[query], lancet::udf::Task::Nl2Code.query())
            .unwrap();
        let request = lancet::engine::SearchRequest::new(vector.row(0).to_vec(), 10);
        let by_vector = table.search(&request).await.unwrap();
        let by_text = table
            .text_search(query, 10, &Default::default())
            .await
            .unwrap();
        let expected = lancet::engine::reciprocal_rank_fusion(&[by_vector, by_text], 5);
        let expected: Vec<String> = expected.into_iter().map(|h| h.chunk_id).collect();
        assert_eq!(fused, expected);
    });
}

#[test]
fn bad_queries_give_clear_errors() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(32);
        let (db, _table) = database(dir.path(), &encoder).await;
        let s = session(&db).await;
        let cases = [
            (
                "SELECT * FROM vector_search('nope', 'x', 3)",
                "no table `nope`",
            ),
            (
                "SELECT * FROM vector_search('chunks', 42, 3)",
                "must be a text or vector",
            ),
            (
                "SELECT * FROM vector_search('chunks', 'x', 0)",
                "between 1 and",
            ),
            (
                "SELECT * FROM vector_search('chunks', 'x')",
                "expected vector_search(",
            ),
            ("SELECT embed('x', 'bogus')", "unknown task `bogus`"),
            ("SELECT embed(42)", "the text must be a string"),
            (
                "SELECT cosine_distance(path, path) FROM chunks",
                "takes two vectors",
            ),
            // The parser names the token it could not take.
            ("SELEC path FROM chunks", "found: SELEC"),
            ("SELECT nope FROM chunks", "nope"),
            (
                "SELECT * FROM vector_search('chunks', 'x', 100000, 100000)",
                "at most 1000000",
            ),
            ("SELECT embed('x', 'nl2code.query', -1)", "between 1 and 32"),
            (
                "SELECT embed('x', 'nl2code.query', 9223372036854775807)",
                "between 1 and 32",
            ),
        ];
        for (query, expected) in cases {
            let err = match s.sql(query).await {
                Ok(_) => panic!("{query} succeeded"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(expected), "{query}: {err}");
        }
    });
}

#[test]
fn a_session_with_another_model_may_not_rank_the_table_with_its_vectors() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (db, _table) = database(dir.path(), &HashEncoder::new(32)).await;
        // Same width, another model: its vectors must not rank this table's.
        let foreign: Arc<dyn Encoder> = Arc::new(HashEncoder::new(32).with_id("other/model"));
        let s = Session::new(&db, Some(foreign)).await.unwrap();
        let literal = format!("[{}]", vec!["0.1"; 32].join(", "));
        for query in [
            "SELECT path FROM vector_search('chunks', embed('parse config'), 3)".to_string(),
            "SELECT path FROM vector_search('chunks', 'parse config', 3)".to_string(),
            format!("SELECT path FROM vector_search('chunks', {literal}, 3)"),
            "SELECT path, cosine_distance(embedding, embed('parse config')) AS d \
             FROM chunks ORDER BY d LIMIT 3"
                .to_string(),
            "SELECT _score FROM hybrid_search('chunks', 'parse config', 3)".to_string(),
        ] {
            let err = s.sql(&query).await.unwrap_err().to_string();
            assert!(err.contains("other/model"), "{query}: {err}");
        }
        // What needs no vector of its model still answers.
        let got = s.sql("SELECT count(*) AS n FROM chunks").await.unwrap();
        assert_eq!(got[0].num_rows(), 1);
        let got = s
            .sql("SELECT path FROM fts('chunks', 'parse_config_value', 3)")
            .await
            .unwrap();
        let paths = strings(&got, "path");
        assert_eq!(
            paths.first().map(String::as_str),
            Some("src/python/file7.x")
        );
    });
}

//! The Lance store: schema round trip, model identity, writes.

use crate::support::{rows::chunk, rows::row, runtime, HashEncoder};
use arrow_array::{Array, RecordBatch};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet::engine::{Consistency, Database, Error, SearchRequest, TableDims, TableMetadata};
use lancet::schemas::{columns as col, fp16_vectors};
use lancet::udf::Encoder;

const DIMS: TableDims = TableDims {
    full: 48,
    prefix: 16,
};

fn metadata(encoder: &HashEncoder) -> TableMetadata {
    TableMetadata::new(encoder.identity().clone(), DIMS).unwrap()
}

#[test]
fn fp16_vectors_and_metadata_round_trip() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(64);
        let db = Database::open(dir.path()).await.unwrap();
        let table = db.create_table("chunks", metadata(&encoder)).await.unwrap();
        let texts = ["fn alpha() {}", "def beta(): pass", "class Gamma {}"];
        let rows: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| row(chunk("r", "a.rs", "rust", i as u32, t), encoder.vector(t)))
            .collect();
        table.append(&rows).await.unwrap();

        // Reopen through a new connection: metadata and vectors come back as written.
        let db = Database::open(dir.path()).await.unwrap();
        let table = db.open_table("chunks").await.unwrap();
        assert_eq!(table.metadata(), &metadata(&encoder));
        assert_eq!(table.prefix_column(), "embedding_16");
        let batches: Vec<RecordBatch> = table
            .lance()
            .query()
            .select(Select::columns(&[
                col::TEXT,
                col::EMBEDDING,
                "embedding_16",
            ]))
            .execute()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let batch = arrow_select_concat(&batches);
        let full = fp16_vectors(batch.column_by_name(col::EMBEDDING).unwrap().as_ref()).unwrap();
        let prefix = fp16_vectors(batch.column_by_name("embedding_16").unwrap().as_ref()).unwrap();
        let text = batch
            .column_by_name(col::TEXT)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert_eq!(full.len(), 3);
        // Checked against the definition, not the writer's own function: the first
        // `width` values of the pooled vector scaled to unit length, stored as fp16.
        let truncated_unit = |pooled: &[f32], width: usize| -> Vec<f32> {
            let norm = pooled[..width].iter().map(|x| x * x).sum::<f32>().sqrt();
            pooled[..width].iter().map(|x| x / norm).collect()
        };
        for i in 0..3 {
            let pooled = encoder.vector(text.value(i));
            for (stored, width) in [(full.row(i), 48), (prefix.row(i), 16)] {
                let expected = truncated_unit(&pooled, width);
                assert_eq!(stored.len(), width);
                for (got, want) in stored.iter().zip(&expected) {
                    // fp16 keeps 11 significant bits: within 2^-11 relative, plus the
                    // subnormal step.
                    let got = got.to_f32();
                    assert!(
                        (got - want).abs() <= want.abs() / 2048.0 + 1e-7,
                        "{got} vs {want}"
                    );
                }
            }
        }
    });
}

fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}

#[test]
fn another_model_or_other_dims_are_refused_with_both_named() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).await.unwrap();
        let built_with = HashEncoder::new(64);
        db.create_table("chunks", metadata(&built_with))
            .await
            .unwrap();

        let other = HashEncoder::new(64).with_id("test/other-model");
        let err = db
            .open_or_create_table("chunks", metadata(&other))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::Schema(_)), "{message}");
        assert!(
            message.contains("test/hash-encoder") && message.contains("test/other-model"),
            "{message}"
        );
        let table = db.open_table("chunks").await.unwrap();
        assert!(table.check_encoder(other.identity()).is_err());
        table.check_encoder(built_with.identity()).unwrap();

        let narrower = TableMetadata::new(
            built_with.identity().clone(),
            TableDims {
                full: 32,
                prefix: 16,
            },
        )
        .unwrap();
        let err = db
            .open_or_create_table("chunks", narrower)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("48/16"), "{err}");

        let err = db.open_table("missing").await.unwrap_err();
        assert!(
            err.to_string().contains("chunks"),
            "lists existing tables: {err}"
        );
    });
}

#[test]
fn upsert_replace_and_delete_change_exactly_their_rows() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(64);
        let db = Database::open(dir.path()).await.unwrap();
        let table = db.create_table("chunks", metadata(&encoder)).await.unwrap();
        let make = |path: &str, n: u32, text: &str| {
            row(chunk("r", path, "rust", n, text), encoder.vector(text))
        };
        table
            .append(&[
                make("a.rs", 0, "fn a0"),
                make("a.rs", 1, "fn a1"),
                make("b.rs", 0, "fn b0"),
                make("c.rs", 0, "fn c0"),
            ])
            .await
            .unwrap();
        assert_eq!(table.count(None).await.unwrap(), 4);

        // Upsert: one existing id updated, one new id inserted, nothing else touched.
        let report = table
            .upsert(&[make("b.rs", 0, "fn b0 changed"), make("b.rs", 1, "fn b1")])
            .await
            .unwrap();
        assert_eq!((report.inserted, report.updated), (1, 1));
        assert_eq!(
            texts(&table, "path = 'b.rs'").await,
            ["fn b0 changed", "fn b1"]
        );
        assert_eq!(table.count(None).await.unwrap(), 5);

        // Replace a file: chunk 1 disappears, chunk 0 changes, other files stay.
        let report = table
            .replace_files(
                &[("r".into(), "a.rs".into())],
                &[make("a.rs", 0, "fn a0 v2")],
            )
            .await
            .unwrap();
        assert_eq!(report.deleted, 1);
        assert_eq!(texts(&table, "path = 'a.rs'").await, ["fn a0 v2"]);
        assert_eq!(texts(&table, "path = 'c.rs'").await, ["fn c0"]);

        // Delete by file removes that file's rows only.
        let report = table.delete_file("r", "b.rs").await.unwrap();
        assert_eq!(report.deleted, 2);
        assert_eq!(table.count(None).await.unwrap(), 2);
        assert_eq!(texts(&table, "path = 'c.rs'").await, ["fn c0"]);

        // Replacing a file with nothing deletes it.
        table
            .replace_files(&[("r".into(), "c.rs".into())], &[])
            .await
            .unwrap();
        assert_eq!(texts(&table, "true").await, ["fn a0 v2"]);
        let stats = table.stats().await.unwrap();
        assert_eq!((stats.rows, stats.files, stats.repos), (1, 1, 1));
    });
}

async fn texts(table: &lancet::engine::ChunkTable, filter: &str) -> Vec<String> {
    let batches: Vec<RecordBatch> = table
        .lance()
        .query()
        .only_if(filter)
        .select(Select::columns(&[col::TEXT]))
        .execute()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            (0..a.len())
                .map(|i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_long_lived_handle_sees_other_commits_within_its_consistency_bound() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(64);
        let writer_db = Database::open(dir.path()).await.unwrap();
        let writer = writer_db
            .create_table("chunks", metadata(&encoder))
            .await
            .unwrap();
        let append = |i: u32| {
            let text = format!("fn f{i}() {{}}");
            let vector = encoder.vector(&text);
            row(chunk("r", &format!("f{i}.rs"), "rust", i, &text), vector)
        };
        writer.append(&[append(0)]).await.unwrap();

        let interval = std::time::Duration::from_millis(300);
        let path = dir.path().to_path_buf();
        let open = |consistency| {
            let path = path.clone();
            async move {
                Database::open_with(path, consistency)
                    .await
                    .unwrap()
                    .open_table("chunks")
                    .await
                    .unwrap()
            }
        };
        let strong = open(Consistency::Strong).await;
        let eventual = open(Consistency::Eventual(interval)).await;
        eventual
            .open_hot_index(&lancet::engine::HotIndexOptions::default())
            .await
            .unwrap();
        assert_eq!(strong.count(None).await.unwrap(), 1);
        assert_eq!(eventual.count(None).await.unwrap(), 1);

        writer.append(&[append(1)]).await.unwrap();
        // Strong: the next read sees it.
        assert_eq!(strong.count(None).await.unwrap(), 2);
        // Eventual: seen once the interval has passed, by reads and by the hot index.
        tokio::time::sleep(interval * 2).await;
        assert_eq!(eventual.count(None).await.unwrap(), 2);
        let query = SearchRequest::new(encoder.vector("fn f1() {}"), 1);
        let hits = eventual.search(&query).await.unwrap();
        assert_eq!(hits[0].path, "f1.rs");

        // The option as the CLI takes it.
        assert_eq!(
            "strong".parse::<Consistency>().unwrap(),
            Consistency::Strong
        );
        assert_eq!(
            "eventual:2.5".parse::<Consistency>().unwrap(),
            Consistency::Eventual(std::time::Duration::from_millis(2_500))
        );
        assert_eq!(
            "eventual".parse::<Consistency>().unwrap(),
            Consistency::default()
        );
        for bad in [
            "",
            "weak",
            "eventual:",
            "eventual:-1",
            "eventual:1e9",
            "eventual:NaN",
        ] {
            assert!(bad.parse::<Consistency>().is_err(), "{bad}");
        }
    });
}

#[test]
fn a_nan_or_infinite_vector_is_never_written() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let encoder = HashEncoder::new(64);
        let db = Database::open(dir.path()).await.unwrap();
        let table = db.create_table("chunks", metadata(&encoder)).await.unwrap();
        let good = row(
            chunk("r", "a.rs", "rust", 0, "fn a() {}"),
            encoder.vector("fn a() {}"),
        );
        for bad_value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut vector = encoder.vector("fn b() {}");
            vector[3] = bad_value;
            let bad = row(chunk("r", "src/b.rs", "rust", 1, "fn b() {}"), vector);
            for write in 0..3 {
                let rows = [good.clone(), bad.clone()];
                let err = match write {
                    0 => table.append(&rows).await,
                    1 => table.upsert(&rows).await,
                    _ => {
                        let files = [
                            ("r".to_string(), "a.rs".to_string()),
                            ("r".to_string(), "src/b.rs".to_string()),
                        ];
                        table.replace_files(&files, &rows).await
                    }
                }
                .unwrap_err()
                .to_string();
                assert!(
                    err.contains(&encoder.identity().id) && err.contains("src/b.rs"),
                    "{err}"
                );
            }
        }
        assert_eq!(table.count(None).await.unwrap(), 0, "nothing was written");
    });
}

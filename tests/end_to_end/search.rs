//! The two-stage search: self-retrieval, prefiltering, the ANN index, recall.

use crate::support::{rows::chunk, rows::row, runtime, HashEncoder};
use lancet::engine::synthetic::{MatryoshkaGenerator, MatryoshkaSpec};
use lancet::engine::{
    AnnIndexKind, ChunkTable, Database, Filter, IndexOptions, SearchMode, SearchRequest, TableDims,
    TableMetadata,
};
use lancet::udf::{ModelIdentity, Pooling};

pub(crate) fn synthetic_model(dim: usize) -> ModelIdentity {
    ModelIdentity {
        id: "test/synthetic".into(),
        revision: "1".into(),
        pooling: Pooling::LastToken,
        prompt_set: lancet::udf::PROMPT_SET.into(),
        dim,
    }
}

const LANGUAGES: [&str; 3] = ["rust", "python", "go"];

/// Language of row `i`: 1% go, 9% python, 90% rust.
pub(crate) fn language_of(i: usize) -> &'static str {
    match i % 100 {
        0 => LANGUAGES[2],
        1..=9 => LANGUAGES[1],
        _ => LANGUAGES[0],
    }
}

/// A table of `vectors`, row `i` at path `src/{language}/f{i}.x`.
pub(crate) async fn table_of(db: &Database, vectors: &[Vec<f32>], dims: TableDims) -> ChunkTable {
    let meta = TableMetadata::new(synthetic_model(vectors[0].len()), dims).unwrap();
    let table = db.create_table("chunks", meta).await.unwrap();
    for (start, batch) in vectors.chunks(5_000).enumerate() {
        let rows: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = start * 5_000 + j;
                let lang = language_of(i);
                let path = format!("src/{lang}/f{i}.x");
                row(
                    chunk("repo", &path, lang, 0, &format!("chunk {i}")),
                    v.clone(),
                )
            })
            .collect();
        table.append(&rows).await.unwrap();
    }
    table
}

pub(crate) fn row_index(path: &str) -> usize {
    let name = path.rsplit('/').next().unwrap();
    name[1..name.len() - 2].parse().unwrap()
}

pub(crate) fn exact_top_k(
    data: &[Vec<f32>],
    query: &[f32],
    k: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

#[test]
fn a_chunk_is_found_first_by_its_own_vector() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).await.unwrap();
        let encoder = HashEncoder::new(64);
        let meta = TableMetadata::new(
            lancet::udf::Encoder::identity(&encoder).clone(),
            TableDims {
                full: 64,
                prefix: 16,
            },
        )
        .unwrap();
        let table = db.create_table("chunks", meta).await.unwrap();
        let texts = [
            "fn parse_config(path: &Path) -> Config",
            "def train_model(data, epochs): pass",
            "func ServeHTTP(w http.ResponseWriter, r *http.Request)",
            "class LruCache { get(key) {} put(key, value) {} }",
            "SELECT name FROM users WHERE id = 1",
        ];
        let rows: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                row(
                    chunk("r", &format!("f{i}.txt"), "text", i as u32, t),
                    encoder.vector(t),
                )
            })
            .collect();
        table.append(&rows).await.unwrap();
        for (i, text) in texts.iter().enumerate() {
            let hits = table
                .search(&SearchRequest::new(encoder.vector(text), 3))
                .await
                .unwrap();
            assert_eq!(hits.len(), 3);
            assert_eq!(hits[0].path, format!("f{i}.txt"));
            assert_eq!(hits[0].text, *text);
            assert!(hits[0].score > 0.999, "{}", hits[0].score);
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        }
        // k = 0 is an empty answer, a k above the table returns every row once.
        let v = encoder.vector(texts[0]);
        assert!(table
            .search(&SearchRequest::new(v.clone(), 0))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            table
                .search(&SearchRequest::new(v.clone(), 50_000))
                .await
                .unwrap()
                .len(),
            5
        );
        // Past the bounds a search may allocate: refused, naming the bound.
        for request in [
            SearchRequest::new(v.clone(), 1_000_000),
            SearchRequest::new(v.clone(), 100_000).mode(SearchMode::TwoStage { refine: 100_000 }),
            SearchRequest::new(v.clone(), 10).ef(usize::MAX),
        ] {
            let err = table.search(&request).await.unwrap_err().to_string();
            assert!(err.contains("at most"), "{err}");
            let err = table
                .search_row_ids(&request)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("at most"), "{err}");
        }
        // A query narrower than the table is an error, not a panic.
        assert!(table
            .search(&SearchRequest::new(vec![1.0; 8], 3))
            .await
            .is_err());
        assert!(table
            .search(&SearchRequest::new(vec![f32::NAN; 64], 3))
            .await
            .is_err());
    });
}

#[test]
fn ann_index_is_used_filters_apply_before_the_search_and_recall_holds() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).await.unwrap();
        let generator = MatryoshkaGenerator::new(MatryoshkaSpec::default());
        let data = generator.sample(20_000, 0);
        let queries = generator.sample(40, 1);
        let table = table_of(&db, &data, TableDims::default()).await;

        let report = table
            .ensure_indexes(&IndexOptions::default())
            .await
            .unwrap();
        assert!(report.ann_ready);
        assert!(
            report.created.contains(&"embedding_128".to_string()),
            "{report:?}"
        );
        let stats = table.stats().await.unwrap();
        let ann = stats
            .indexes
            .iter()
            .find(|i| i.column == "embedding_128")
            .unwrap();
        assert_eq!(
            (ann.index_type.as_str(), ann.indexed_rows),
            ("IvfFlat", 20_000)
        );

        // The coarse query runs on the ANN index; a selective filter (here 1%) runs flat
        // over the matching rows, the filter applied inside the scan, before the KNN.
        let go = Filter {
            languages: vec!["go".into()],
            ..Filter::default()
        };
        let plan = table
            .explain_search(&SearchRequest::new(queries[0].clone(), 10))
            .await
            .unwrap();
        assert!(
            plan.contains("ANNSubIndex") || plan.contains("ANNIvf"),
            "{plan}"
        );
        let plan = table
            .explain_search(&SearchRequest::new(queries[0].clone(), 10).filter(go.clone()))
            .await
            .unwrap();
        let knn = plan.find("KNNVectorDistance").expect("flat KNN");
        assert!(
            plan[knn..].contains("language") && !plan[..knn].contains("FilterExec: language"),
            "the filter sits below (inside) the KNN, not above it: {plan}"
        );

        // Recall@10 of the two-stage search against exact cosine at 768-d.
        let mut found = 0;
        for q in &queries {
            let truth = exact_top_k(&data, q, 10, |_| true);
            let hits = table
                .search(&SearchRequest::new(q.clone(), 10))
                .await
                .unwrap();
            assert_eq!(hits.len(), 10);
            found += hits
                .iter()
                .filter(|h| truth.contains(&row_index(&h.path)))
                .count();
        }
        let recall = found as f64 / (10 * queries.len()) as f64;
        eprintln!("two-stage recall@10 over 20k vectors: {recall:.3}");
        assert!(recall >= 0.95, "recall@10 {recall}");

        // The exact mode is the ground truth.
        let exact = table
            .search(&SearchRequest::new(queries[0].clone(), 10).mode(SearchMode::Exact))
            .await
            .unwrap();
        let truth = exact_top_k(&data, &queries[0], 10, |_| true);
        let exact_rows: Vec<usize> = exact.iter().map(|h| row_index(&h.path)).collect();
        assert!(exact_rows.iter().filter(|r| truth.contains(r)).count() >= 9);

        // A 1% filter still returns k rows, all matching, and the right ones.
        let mut found = 0;
        for q in queries.iter().take(10) {
            let hits = table
                .search(&SearchRequest::new(q.clone(), 10).filter(go.clone()))
                .await
                .unwrap();
            assert_eq!(hits.len(), 10, "prefiltered search returns k rows");
            assert!(hits.iter().all(|h| h.language == "go"));
            let truth = exact_top_k(&data, q, 10, |i| language_of(i) == "go");
            found += hits
                .iter()
                .filter(|h| truth.contains(&row_index(&h.path)))
                .count();
        }
        assert!(found as f64 / 100.0 >= 0.9, "filtered recall {found}/100");

        // Path prefix, glob and repository filters; quotes cannot widen a filter.
        let q = queries[1].clone();
        let prefix = Filter {
            path_prefix: Some("src/python/".into()),
            ..Filter::default()
        };
        let hits = table
            .search(&SearchRequest::new(q.clone(), 5).filter(prefix))
            .await
            .unwrap();
        assert_eq!(hits.len(), 5);
        assert!(hits.iter().all(|h| h.path.starts_with("src/python/")));
        let glob = Filter {
            path_glob: Some("src/*/f1?.x".into()),
            ..Filter::default()
        };
        let hits = table
            .search(&SearchRequest::new(q.clone(), 20).filter(glob))
            .await
            .unwrap();
        assert_eq!(hits.len(), 10, "f10..f19");
        let injection = Filter {
            path_prefix: Some("x' OR '1'='1".into()),
            ..Filter::default()
        };
        assert!(table
            .search(&SearchRequest::new(q.clone(), 5).filter(injection))
            .await
            .unwrap()
            .is_empty());
        let other_repo = Filter {
            repo: Some("other".into()),
            ..Filter::default()
        };
        assert!(table
            .search(&SearchRequest::new(q, 5).filter(other_repo))
            .await
            .unwrap()
            .is_empty());
    });
}

#[test]
fn other_ann_index_kinds_train_on_fp16_and_find_their_rows() {
    runtime().block_on(async {
        let generator = MatryoshkaGenerator::new(MatryoshkaSpec {
            clusters: 16,
            ..MatryoshkaSpec::default()
        });
        let data = generator.sample(3_000, 0);
        for kind in [
            AnnIndexKind::IvfHnswSq,
            AnnIndexKind::IvfPq { sub_vectors: 16 },
        ] {
            let dir = tempfile::tempdir().unwrap();
            let db = Database::open(dir.path()).await.unwrap();
            let table = table_of(&db, &data, TableDims::default()).await;
            let options = IndexOptions {
                kind,
                min_rows_for_ann: 1_000,
                ..IndexOptions::default()
            };
            assert!(
                table.ensure_indexes(&options).await.unwrap().ann_ready,
                "{kind:?}"
            );
            for i in [0, 1234, 2999] {
                let hits = table
                    .search(&SearchRequest::new(data[i].clone(), 5))
                    .await
                    .unwrap();
                assert_eq!(row_index(&hits[0].path), i, "{kind:?}");
            }
        }
    });
}

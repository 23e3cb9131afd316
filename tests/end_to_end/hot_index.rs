//! The hot index: same answers as exact search, filters before the search, in step with
//! every write, and a snapshot that is either whole or rebuilt.

use crate::search::{exact_top_k, language_of, row_index, table_of};
use crate::support::{rows::chunk, rows::row, runtime};
use lancet::engine::synthetic::{MatryoshkaGenerator, MatryoshkaSpec};
use lancet::engine::{ChunkTable, Database, Filter, HotIndexOptions, SearchRequest, TableDims};

fn recall(found: &[usize], truth: &[usize]) -> usize {
    found.iter().filter(|f| truth.contains(f)).count()
}

async fn rows_of(table: &ChunkTable, request: SearchRequest) -> Vec<usize> {
    let hits = table.search(&request).await.unwrap();
    let ids = table
        .search_row_ids(&request)
        .await
        .unwrap()
        .expect("hot index in use");
    assert_eq!(hits.len(), ids.len(), "the hits are the rows found");
    for (hit, (_, score)) in hits.iter().zip(&ids) {
        assert_eq!(hit.score, *score);
    }
    hits.iter().map(|h| row_index(&h.path)).collect()
}

#[test]
fn the_hot_index_finds_the_exact_neighbours_and_filters_first() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).await.unwrap();
        let generator = MatryoshkaGenerator::new(MatryoshkaSpec::default());
        let data = generator.sample(6_000, 0);
        let queries = generator.sample(30, 1);
        let table = table_of(&db, &data, TableDims::default()).await;
        assert!(table
            .search_row_ids(&SearchRequest::new(queries[0].clone(), 10))
            .await
            .unwrap()
            .is_none());

        let report = table
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert!(report.rebuilt && !report.loaded, "{report:?}");
        assert_eq!((report.rows, report.inserted), (6_000, 6_000));
        assert!(table.has_hot_index().await);

        let (mut plain, mut go, mut python) = (0, 0, 0);
        let go_filter = Filter {
            languages: vec!["go".into()],
            ..Filter::default()
        };
        let python_filter = Filter {
            languages: vec!["python".into()],
            ..Filter::default()
        };
        for q in &queries {
            let found = rows_of(&table, SearchRequest::new(q.clone(), 10)).await;
            assert_eq!(found.len(), 10);
            plain += recall(&found, &exact_top_k(&data, q, 10, |_| true));

            let found = rows_of(
                &table,
                SearchRequest::new(q.clone(), 10).filter(go_filter.clone()),
            )
            .await;
            assert_eq!(found.len(), 10, "a 1% filter still fills k");
            assert!(found.iter().all(|&i| language_of(i) == "go"));
            go += recall(
                &found,
                &exact_top_k(&data, q, 10, |i| language_of(i) == "go"),
            );

            let found = rows_of(
                &table,
                SearchRequest::new(q.clone(), 10).filter(python_filter.clone()),
            )
            .await;
            assert!(found.iter().all(|&i| language_of(i) == "python"));
            python += recall(
                &found,
                &exact_top_k(&data, q, 10, |i| language_of(i) == "python"),
            );
        }
        let total = 10.0 * queries.len() as f64;
        assert!(plain as f64 / total >= 0.95, "recall@10 {plain}/{total}");
        assert!(
            go as f64 / total >= 0.95,
            "1% filter recall@10 {go}/{total}"
        );
        assert!(
            python as f64 / total >= 0.95,
            "9% filter recall@10 {python}/{total}"
        );

        // Path, glob, repository and SQL-predicate filters; quotes never widen one.
        let q = queries[0].clone();
        let by = |filter: Filter, k: usize| SearchRequest::new(q.clone(), k).filter(filter);
        let found = rows_of(
            &table,
            by(
                Filter {
                    path_prefix: Some("src/python/".into()),
                    ..Filter::default()
                },
                5,
            ),
        )
        .await;
        assert!(found.len() == 5 && found.iter().all(|&i| language_of(i) == "python"));
        let glob = Filter {
            path_glob: Some("src/*/f1?.x".into()),
            ..Filter::default()
        };
        let mut found = rows_of(&table, by(glob, 20)).await;
        found.sort();
        assert_eq!(found, (10..20).collect::<Vec<_>>());
        let predicate = Filter {
            predicate: Some("path LIKE 'src/go/%' AND start_line = 1".into()),
            ..Filter::default()
        };
        let found = rows_of(&table, by(predicate, 5)).await;
        assert!(found.len() == 5 && found.iter().all(|&i| language_of(i) == "go"));
        for filter in [
            Filter {
                path_prefix: Some("x' OR '1'='1".into()),
                ..Filter::default()
            },
            Filter {
                repo: Some("other".into()),
                ..Filter::default()
            },
            Filter {
                languages: vec!["go".into()],
                repo: Some("elsewhere".into()),
                ..Filter::default()
            },
        ] {
            assert!(rows_of(&table, by(filter, 5)).await.is_empty());
        }
        assert!(rows_of(&table, SearchRequest::new(q.clone(), 0))
            .await
            .is_empty());
        assert_eq!(
            rows_of(&table, SearchRequest::new(q.clone(), 100_000))
                .await
                .len(),
            6_000
        );
    });
}

#[test]
fn the_hot_index_and_lance_agree_on_every_glob() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).await.unwrap();
        // Paths with the characters SQL's LIKE treats specially (`_`, `%`, `\\`), a quote,
        // a non-ASCII character and nested folders.
        let paths = [
            "src/a_b.rs",
            "src/axb.rs",
            "src/100%.rs",
            "src/100x.rs",
            "src/deep/x.rs",
            "src/x.rs",
            "src/\u{fc}.rs",
            "lib/b_test.go",
            "lib/b_test.go.orig",
            "a\\b.rs",
            "src/it's.rs",
            "README",
        ];
        let vectors = MatryoshkaGenerator::new(MatryoshkaSpec::default()).sample(paths.len(), 0);
        let meta = lancet::engine::TableMetadata::new(
            crate::search::synthetic_model(vectors[0].len()),
            TableDims::default(),
        )
        .unwrap();
        let table = db.create_table("chunks", meta).await.unwrap();
        let rows: Vec<_> = paths
            .iter()
            .zip(&vectors)
            .map(|(path, v)| row(chunk("repo", path, "rust", 0, path), v.clone()))
            .collect();
        table.append(&rows).await.unwrap();
        let lance = db.open_table("chunks").await.unwrap();
        table
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();

        let globs = [
            "src/a_b.rs",
            "src/100%.rs",
            "src/*.rs",
            "src/?.rs",
            "*_test.go",
            "*",
            "**",
            "a\\b.rs",
            "src/it's.rs",
            "**/x.rs",
            "*.r?",
            "src/100?.rs",
            "README*",
            "?",
        ];
        for glob in globs {
            let request = SearchRequest::new(vectors[0].clone(), 100).filter(Filter {
                path_glob: Some(glob.into()),
                ..Filter::default()
            });
            let matched = |hits: Vec<lancet::engine::SearchHit>| {
                let mut paths: Vec<String> = hits.into_iter().map(|h| h.path).collect();
                paths.sort();
                paths
            };
            assert!(table.search_row_ids(&request).await.unwrap().is_some());
            let hot = matched(table.search(&request).await.unwrap());
            let sql = matched(lance.search(&request).await.unwrap());
            assert_eq!(
                hot, sql,
                "glob {glob:?}: hot index (left) and Lance's LIKE (right)"
            );
        }
        // And the answers are the ones a glob means.
        let only = |glob: &str| {
            let request = SearchRequest::new(vectors[0].clone(), 100).filter(Filter {
                path_glob: Some(glob.into()),
                ..Filter::default()
            });
            let lance = &lance;
            async move {
                let mut paths: Vec<String> = lance
                    .search(&request)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|h| h.path)
                    .collect();
                paths.sort();
                paths
            }
        };
        assert_eq!(only("src/a_b.rs").await, ["src/a_b.rs"]);
        assert_eq!(only("src/100%.rs").await, ["src/100%.rs"]);
        assert_eq!(only("src/?.rs").await, ["src/x.rs", "src/\u{fc}.rs"]);
        assert_eq!(only("*_test.go").await, ["lib/b_test.go"]);
        assert_eq!(only("**/x.rs").await, ["src/deep/x.rs", "src/x.rs"]);
    });
}

#[test]
fn the_hot_index_follows_inserts_rewrites_and_deletes() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).await.unwrap();
        let generator = MatryoshkaGenerator::new(MatryoshkaSpec {
            clusters: 16,
            ..MatryoshkaSpec::default()
        });
        let data = generator.sample(3_000, 0);
        let fresh = generator.sample(3, 7);
        let table = table_of(&db, &data, TableDims::default()).await;
        table
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();

        // Writes through this handle move its version: the next search catches up.
        let added = row(
            chunk("repo", "src/rust/f3000.x", "rust", 0, "chunk 3000"),
            fresh[0].clone(),
        );
        table.append(&[added]).await.unwrap();
        let rewritten = row(
            chunk("repo", "src/rust/f42.x", "rust", 0, "chunk 42"),
            fresh[1].clone(),
        );
        table.upsert(&[rewritten]).await.unwrap();
        table.delete_file("repo", "src/rust/f77.x").await.unwrap();

        let top = |v: &Vec<f32>| SearchRequest::new(v.clone(), 1);
        assert_eq!(
            rows_of(&table, top(&fresh[0])).await,
            vec![3000],
            "an added row is found"
        );
        assert_eq!(
            rows_of(&table, top(&fresh[1])).await,
            vec![42],
            "a rewritten row is found by its new vector"
        );
        assert_ne!(
            rows_of(&table, top(&data[42])).await,
            vec![42],
            "and no longer by its old one"
        );
        for q in generator.sample(10, 3).iter().chain([&data[77]]) {
            let found = rows_of(&table, SearchRequest::new(q.clone(), 50)).await;
            assert!(!found.contains(&77), "a deleted row is never returned");
        }

        // A new handle loads the saved snapshot and catches up with the same writes.
        let other = db.open_table("chunks").await.unwrap();
        let report = other
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert!(report.loaded && !report.rebuilt, "{report:?}");
        assert_eq!(report.rows, 3_000, "3,000 + 1 added - 1 deleted");
        assert!(report.inserted >= 2 && report.removed >= 2, "{report:?}");
        // Both handles answer as exact search over the table as written now.
        let mut now = data.clone();
        now[42] = fresh[1].clone();
        now.push(fresh[0].clone());
        let (mut found_here, mut found_there, mut total) = (0, 0, 0);
        for q in generator.sample(10, 4) {
            let truth = exact_top_k(&now, &q, 10, |i| i != 77);
            let request = SearchRequest::new(q, 10);
            found_here += recall(&rows_of(&table, request.clone()).await, &truth);
            found_there += recall(&rows_of(&other, request).await, &truth);
            total += truth.len();
        }
        assert!(
            found_here as f64 >= 0.95 * total as f64 && found_there as f64 >= 0.95 * total as f64,
            "recall@10 {found_here}/{total} on the writing handle, {found_there}/{total} on the new one"
        );
        // Opened again with nothing written since: loaded as saved, nothing read.
        let again = db.open_table("chunks").await.unwrap();
        let report = again
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert!(
            report.loaded && report.inserted == 0 && report.removed == 0,
            "{report:?}"
        );
    });
}

#[test]
fn rows_restored_from_before_the_index_are_caught_up_by_id() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).await.unwrap();
        let data = MatryoshkaGenerator::new(MatryoshkaSpec::default()).sample(400, 0);
        let table = table_of(&db, &data, TableDims::default()).await;
        let before_delete = table.version().await.unwrap();
        for i in 0..5 {
            table
                .delete_file("repo", &format!("src/{}/f{i}.x", language_of(i)))
                .await
                .unwrap();
        }
        table
            .build_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();

        // Restoring the version before the deletes brings five rows back with their old
        // lineage: nothing says they were written after the index's version.
        table.lance().checkout(before_delete).await.unwrap();
        table.lance().restore().await.unwrap();
        let handle = db.open_table("chunks").await.unwrap();
        let report = handle
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert!(report.loaded && !report.rebuilt, "{report:?}");
        assert_eq!(
            (report.inserted, report.removed, report.rows),
            (5, 0, 400),
            "{report:?}"
        );
        for (i, vector) in data.iter().enumerate().take(5) {
            let found = rows_of(&handle, SearchRequest::new(vector.clone(), 1)).await;
            assert_eq!(found, vec![i], "restored row {i} is found");
        }
    });
}

#[test]
fn a_damaged_or_foreign_snapshot_is_rebuilt_not_trusted() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).await.unwrap();
        let generator = MatryoshkaGenerator::new(MatryoshkaSpec {
            clusters: 8,
            ..MatryoshkaSpec::default()
        });
        let data = generator.sample(1_000, 0);
        let table = table_of(&db, &data, TableDims::default()).await;
        table
            .build_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        let hot = dir.path().join("chunks.hot");
        let current = std::fs::read_to_string(hot.join("CURRENT")).unwrap();
        let snapshot = hot.join(current.trim());

        type Damage<'a> = (&'a str, Box<dyn Fn() + 'a>);
        let damage: [Damage; 4] = [
            (
                "truncated graph",
                Box::new(|| {
                    let graph = snapshot.join("graph.bin");
                    let len = std::fs::metadata(&graph).unwrap().len();
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&graph)
                        .unwrap()
                        .set_len(len - 100)
                        .unwrap();
                }),
            ),
            (
                "short vectors",
                Box::new(|| std::fs::write(snapshot.join("full.f16"), b"\0\0").unwrap()),
            ),
            (
                "garbage manifest",
                Box::new(|| std::fs::write(snapshot.join("manifest.json"), b"{").unwrap()),
            ),
            (
                "pointer to nothing",
                Box::new(|| std::fs::write(hot.join("CURRENT"), b"v9-missing").unwrap()),
            ),
        ];
        for (what, break_it) in damage {
            // Rebuild a good snapshot, remember where it is, then break it.
            table
                .build_hot_index(&HotIndexOptions::default())
                .await
                .unwrap();
            let current = std::fs::read_to_string(hot.join("CURRENT")).unwrap();
            let snapshot_now = hot.join(current.trim());
            std::fs::rename(&snapshot_now, &snapshot).ok();
            std::fs::write(
                hot.join("CURRENT"),
                snapshot.file_name().unwrap().to_str().unwrap(),
            )
            .unwrap();
            break_it();
            let handle = db.open_table("chunks").await.unwrap();
            let report = handle
                .open_hot_index(&HotIndexOptions::default())
                .await
                .unwrap();
            assert!(report.rebuilt && !report.loaded, "{what}: {report:?}");
            let found = rows_of(&handle, SearchRequest::new(data[500].clone(), 1)).await;
            assert_eq!(found, vec![500], "{what}");
        }

        // A snapshot of another table of the same model and widths, copied in place of
        // this one's, is foreign: the tables differ by creation, not by metadata.
        let other = {
            let meta = table.metadata().clone();
            let other = db.create_table("other", meta).await.unwrap();
            let rows: Vec<_> = data[..300]
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    row(
                        chunk("repo", &format!("src/go/f{i}.x"), "go", 0, "o"),
                        v.clone(),
                    )
                })
                .collect();
            other.append(&rows).await.unwrap();
            other
                .build_hot_index(&HotIndexOptions::default())
                .await
                .unwrap();
            other
        };
        assert_ne!(other.creation_id(), table.creation_id());
        assert!(table.creation_id().is_some());
        std::fs::remove_dir_all(&hot).unwrap();
        crate::ingest::copy_dir(&dir.path().join("other.hot"), &hot);
        let handle = db.open_table("chunks").await.unwrap();
        let report = handle
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert!(
            report.rebuilt && !report.loaded && report.rows == 1_000,
            "{report:?}"
        );

        // A table dropped and recreated under the same name never sees the old snapshot.
        db.drop_table("chunks").await.unwrap();
        assert!(!hot.exists());
        let table = table_of(&db, &data[..500], TableDims::default()).await;
        let report = table
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert!(report.rebuilt && report.rows == 500, "{report:?}");
    });
}

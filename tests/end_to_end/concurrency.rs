//! Reads during writes: searches (hot index and Lance) and SQL from several tasks while an
//! ingestion commits and an optimize compacts and indexes; two writer processes on one
//! table.

use crate::ingest::{index, index_command, open_chunks, rows, same_rows, table_for};
use crate::support::tiny_model::write_tiny_model;
use crate::support::{runtime, write, HashEncoder};
use lancet::engine::ingest::{index_directory, IngestOptions};
use lancet::engine::sql::Session;
use lancet::engine::{Database, Filter, HotIndexOptions, IndexOptions, SearchRequest};
use lancet::udf::Encoder;
use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn function(i: usize, body: &str) -> String {
    format!("pub fn f{i}(x: u64) -> u64 {{\n    {body}\n}}\n")
}

#[test]
fn searches_and_sql_run_cleanly_while_ingestion_and_optimize_write() {
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2) = (dir.path().join("v1"), dir.path().join("v2"));
        let mut contents: HashMap<String, Vec<String>> = HashMap::new();
        for i in 0..60 {
            let path = format!("src/m{i:02}.rs");
            let (old, new) = (function(i, &format!("x * {i}")), function(i, &format!("x * {i} + 1000")));
            write(&v1, &path, &old);
            write(&v2, &path, &new);
            contents.insert(path, vec![old, new]);
        }
        for i in 60..90 {
            let path = format!("src/added{i}.rs");
            let text = function(i, "x - 1");
            write(&v2, &path, &text);
            contents.insert(path, vec![text]);
        }
        let encoder = Arc::new(HashEncoder::new(32));
        let db_dir = dir.path().join("db");
        let table = table_for(&db_dir, &encoder).await;
        index(&table, &encoder, &v1).await;
        table.open_hot_index(&HotIndexOptions::default()).await.unwrap();

        let done = Arc::new(AtomicBool::new(false));
        // Rounds that finished while the writers were still at work, and the table
        // versions the searches read: proof that reads ran beside the writes.
        let (searches, queries) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let versions_read = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let contents = Arc::new(contents);
        let mut readers = Vec::new();
        for reader in 0..2 {
            let (table, encoder, done, searches, contents) =
                (table.clone(), encoder.clone(), done.clone(), searches.clone(), contents.clone());
            let versions_read = versions_read.clone();
            readers.push(tokio::spawn(async move {
                let mut round = 0;
                while !done.load(Ordering::SeqCst) || round == 0 {
                    let i = (round * 7 + reader) % 60;
                    let mut request = SearchRequest::new(encoder.vector(&format!("x * {i}")), 8);
                    if round % 2 == 1 {
                        request = request.filter(Filter { path_prefix: Some("src/m".into()), ..Filter::default() });
                    }
                    let version = table.version().await.expect("the version during writes");
                    let hits = table.search(&request).await.expect("a search during writes fails");
                    versions_read.lock().unwrap().insert(version);
                    assert!(!hits.is_empty());
                    let ids: BTreeSet<&str> = hits.iter().map(|h| h.chunk_id.as_str()).collect();
                    assert_eq!(ids.len(), hits.len(), "a row returned twice");
                    for hit in &hits {
                        let versions = &contents[&hit.path];
                        assert!(
                            versions.iter().any(|v| v.contains(hit.text.trim())),
                            "{}: text {:?} is neither the old nor the new file", hit.path, hit.text
                        );
                    }
                    if !done.load(Ordering::SeqCst) {
                        searches.fetch_add(1, Ordering::SeqCst);
                    }
                    round += 1;
                    tokio::task::yield_now().await;
                }
            }));
        }
        {
            let (done, queries) = (done.clone(), queries.clone());
            let db = Database::open(&db_dir).await.unwrap();
            let sql_encoder: Arc<dyn Encoder> = encoder.clone();
            readers.push(tokio::spawn(async move {
                let session = Session::new(&db, Some(sql_encoder)).await.unwrap();
                // vector_search in this session runs on its own copy of the hot index.
                let loaded = session.open_hot_indexes(&HotIndexOptions::default()).await.unwrap();
                assert_eq!(loaded.len(), 1);
                let mut round = 0;
                while !done.load(Ordering::SeqCst) || round == 0 {
                    for query in [
                        "SELECT count(*) AS n FROM chunks",
                        "SELECT path FROM vector_search('chunks', 'x * 3', 5) WHERE language = 'rust'",
                        "SELECT language, count(*) FROM chunks GROUP BY language",
                    ] {
                        session.sql(query).await.expect("a SQL query during writes fails");
                    }
                    if !done.load(Ordering::SeqCst) {
                        queries.fetch_add(1, Ordering::SeqCst);
                    }
                    round += 1;
                    tokio::task::yield_now().await;
                }
            }));
        }

        let writer = {
            let (table, encoder) = (table.clone(), encoder.clone());
            let options = IngestOptions { repo: "r".into(), commit_files: 3, threads: 2, ..IngestOptions::default() };
            let v2 = v2.clone();
            tokio::spawn(async move {
                let encoder: Arc<dyn Encoder> = encoder;
                index_directory(&table, encoder, &v2, &options, &mut |_| {}).await
            })
        };
        let optimizer = {
            let table = table.clone();
            tokio::spawn(async move {
                let options = IndexOptions { min_rows_for_ann: 40, ..IndexOptions::default() };
                for _ in 0..3 {
                    table.optimize(&options).await?;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Ok::<(), lancet::engine::Error>(())
            })
        };
        let summary = writer.await.unwrap().expect("the ingestion fails beside the optimize");
        optimizer.await.unwrap().expect("the optimize fails beside the ingestion");
        done.store(true, Ordering::SeqCst);
        for reader in readers {
            reader.await.unwrap();
        }
        let (searches, queries) = (searches.load(Ordering::SeqCst), queries.load(Ordering::SeqCst));
        let versions_read = versions_read.lock().unwrap().len();
        assert!(
            searches > 0 && queries > 0 && versions_read >= 3,
            "{searches} searches and {queries} SQL rounds finished during the writes, \
             over {versions_read} table versions"
        );
        assert_eq!(summary.files_indexed, 90, "{summary}");

        // The end state is v2, whole: every file once, with its new text.
        let paths: BTreeSet<String> = rows(&table).await.into_iter().map(|r| r.path).collect();
        assert_eq!(paths.len(), 90);
        for i in [0usize, 31, 59] {
            let hits = table
                .search(&SearchRequest::new(encoder.vector(&function(i, &format!("x * {i} + 1000"))), 1))
                .await
                .unwrap();
            assert!(hits[0].text.contains("+ 1000"), "{:?}", hits[0]);
        }
    });
}

#[test]
fn two_writer_processes_on_one_table_serialise_or_fail_clearly_and_never_corrupt_it() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    let write_all = |body: &dyn Fn(usize) -> String| {
        for i in 0..40 {
            write(&repo, &format!("src/w{i:02}.rs"), function(i, &body(i)));
        }
    };
    let (clean, shared) = (work.path().join("clean"), work.path().join("shared"));
    let rt = runtime();
    let read = |db: &std::path::Path| rt.block_on(async { rows(&open_chunks(db).await).await });
    let run_two_at_once = || {
        let spawn = || {
            index_command(&model, &repo, &shared)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let mut succeeded = 0;
        for child in [a, b] {
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!stderr.contains("panicked"), "{stderr}");
            if output.status.success() {
                succeeded += 1;
            } else {
                assert!(
                    stderr.contains("is being written by"),
                    "a failing writer says why: {stderr:?}"
                );
            }
        }
        assert!(succeeded >= 1, "one of two writers always finishes");
        let after = read(&shared);
        let ids: BTreeSet<&str> = after.iter().map(|r| r.chunk_id.as_str()).collect();
        assert_eq!(ids.len(), after.len(), "duplicate chunk ids");
    };

    // Two writers on a new table (rows appended), then two updating every file (rows
    // merged). Each time one finishes, the other finishes too or says who holds the
    // table, and the table ends as a single writer leaves it.
    for operator in ["^", "|"] {
        write_all(&|i| format!("x {operator} {i}"));
        assert!(index_command(&model, &repo, &clean)
            .status()
            .unwrap()
            .success());
        run_two_at_once();
        assert!(same_rows(&read(&shared), &read(&clean)));
    }
}

#[test]
fn a_second_writer_fails_at_once_naming_the_process_that_holds_the_table() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    write(&repo, "src/a.rs", function(1, "x + 1"));
    let db = work.path().join("db");
    assert!(index_command(&model, &repo, &db)
        .status()
        .unwrap()
        .success());
    let rt = runtime();
    let table = rt.block_on(open_chunks(&db));
    // This process holds the table, for certain: the job must contend, and lose.
    let held = rt.block_on(table.lock_for_writing()).unwrap();
    write(&repo, "src/b.rs", function(2, "x + 2"));
    let output = index_command(&model, &repo, &db)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a second writer went ahead");
    assert!(
        stderr.contains(&format!(
            "is being written by process {}",
            std::process::id()
        )),
        "{stderr}"
    );
    let count = || rt.block_on(async { rows(&open_chunks(&db).await).await.len() });
    assert_eq!(count(), 1, "it wrote nothing");
    // Released, the same job runs.
    drop(held);
    assert!(index_command(&model, &repo, &db)
        .status()
        .unwrap()
        .success());
    assert_eq!(count(), 2);
}

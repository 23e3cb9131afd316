//! Text first, vectors after: a table searchable by text before any vector exists,
//! vector coverage rising as the embedding proceeds, the most recently changed files
//! embedded first, and an embedding stopped midway resumed by the next job.

use crate::ingest::{rows, same_rows, table_for};
use crate::support::{runtime, write, HashEncoder};
use lancet::engine::ingest::{
    index_directory, plan_directory, IngestOptions, IngestSummary, VectorTiming,
};
use lancet::engine::{ChunkTable, Filter, HotIndexOptions, SearchMode, SearchRequest};
use lancet::udf::Encoder;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const FILES: usize = 12;
const FUNCTIONS: usize = 3;

fn options(vectors: VectorTiming) -> IngestOptions {
    IngestOptions {
        repo: "r".into(),
        commit_files: 4,
        threads: 2,
        // One function per chunk, four chunks per encoder call and per commit of
        // vectors: a stopped job has committed some batches and not others.
        chunk_tokens: 92,
        embed_batch: 4,
        commit_chunks: 4,
        vectors,
        ..IngestOptions::default()
    }
}

async fn run(
    table: &ChunkTable,
    encoder: &Arc<HashEncoder>,
    root: &Path,
    vectors: VectorTiming,
) -> lancet::engine::Result<IngestSummary> {
    let encoder: Arc<dyn Encoder> = encoder.clone();
    index_directory(table, encoder, root, &options(vectors), &mut |_| {}).await
}

/// `root` indexed into `work/reference` with every group committed with its vectors:
/// what a text-first job must end equal to.
async fn reference_run(work: &Path, root: &Path) -> (ChunkTable, IngestSummary) {
    let encoder = Arc::new(HashEncoder::new(64));
    let table = table_for(&work.join("reference"), &encoder).await;
    let summary = run(&table, &encoder, root, VectorTiming::WithText)
        .await
        .unwrap();
    (table, summary)
}

/// `FILES` files of `FUNCTIONS` functions; file `m00` was modified last, `m11` first.
fn tree(root: &Path) {
    for i in 0..FILES {
        let text: String = (0..FUNCTIONS)
            .map(|j| format!("pub fn widget_{i}_{j}(x: u64) -> u64 {{\n    x * {i} + {j}\n}}\n\n"))
            .collect();
        let name = format!("src/m{i:02}.rs");
        write(root, &name, text);
        let modified = SystemTime::now() - Duration::from_secs(60 * (i as u64 + 1));
        std::fs::File::options()
            .write(true)
            .open(root.join(&name))
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }
}

/// Paths of the rows that have vectors.
async fn paths_with_vectors(table: &ChunkTable) -> BTreeSet<String> {
    let hits = table
        .search(&SearchRequest::new(vec![1.0; 32], 100).filter(Filter::default()))
        .await
        .unwrap();
    hits.into_iter().map(|h| h.path).collect()
}

#[test]
fn a_table_is_searchable_by_text_before_any_vector_and_a_stopped_embedding_resumes() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("repo");
    tree(&root);
    let chunks = (FILES * FUNCTIONS) as u64;
    let rt = runtime();
    rt.block_on(async {
        // The reference: every group committed with its vectors.
        let (reference, _) = reference_run(work.path(), &root).await;

        // Text only: every row, no vector, found by text at once.
        let encoder = Arc::new(HashEncoder::new(64));
        let table = table_for(&work.path().join("db"), &encoder).await;
        let summary = run(&table, &encoder, &root, VectorTiming::Later)
            .await
            .unwrap();
        assert_eq!(encoder.texts_encoded(), 0);
        assert_eq!(
            (summary.chunks_embedded, summary.chunks_pending),
            (0, chunks as usize)
        );
        let coverage = table.vector_coverage(None).await.unwrap();
        assert_eq!((coverage.chunks, coverage.with_vectors), (chunks, 0));
        let by_text = table
            .text_search("widget_7_2", 5, &Filter::default())
            .await
            .unwrap();
        assert_eq!(by_text[0].path, "src/m07.rs", "{by_text:?}");
        assert!(paths_with_vectors(&table).await.is_empty());
        let hybrid = table
            .hybrid_search("widget_3_1", &SearchRequest::new(vec![1.0; 32], 3))
            .await
            .unwrap();
        assert_eq!(hybrid[0].path, "src/m03.rs");
        // The hot index opens on a table without vectors and answers for none of it.
        let hot = table
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert_eq!(hot.rows, 0);

        // The dry run counts the rows left without vectors as work to do.
        let dyn_encoder: Arc<dyn Encoder> = encoder.clone();
        let plan = plan_directory(
            Some(&table),
            dyn_encoder,
            &root,
            &options(VectorTiming::AfterText),
        )
        .await
        .unwrap();
        assert_eq!(
            (plan.files_changed, plan.chunks_pending, plan.texts_to_embed),
            (0, chunks as usize, chunks as usize)
        );

        // An embedding stopped after 3 batches of 4: those rows keep their vectors, the
        // most recently modified files first, and the table stays whole.
        let failing = Arc::new(HashEncoder::new(64).failing_after(12));
        let stopped = run(&table, &failing, &root, VectorTiming::AfterText).await;
        assert!(stopped.is_err(), "the encoder stops the job");
        let coverage = table.vector_coverage(Some("r")).await.unwrap();
        assert_eq!((coverage.chunks, coverage.with_vectors), (chunks, 12));
        assert_eq!(coverage.to_string(), "33.3% (12 of 36 chunks)");
        let embedded_first: BTreeSet<String> = (0..4).map(|i| format!("src/m{i:02}.rs")).collect();
        assert_eq!(paths_with_vectors(&table).await, embedded_first);
        // Lance's own search (a handle without the hot index), flat and exact, skips
        // the rows without vectors.
        let plain = table_for(&work.path().join("db"), &encoder).await;
        for mode in [SearchMode::Exact, SearchMode::default()] {
            let hits = plain
                .search(&SearchRequest::new(vec![1.0; 32], 100).mode(mode))
                .await
                .unwrap();
            let paths: BTreeSet<String> = hits.into_iter().map(|h| h.path).collect();
            assert_eq!(paths, embedded_first, "{mode:?}");
        }
        // SQL sees the rows without vectors as NULL vectors, and its vector search
        // returns only rows with vectors.
        let db = lancet::engine::Database::open(&work.path().join("db"))
            .await
            .unwrap();
        let sql_encoder: Arc<dyn Encoder> = encoder.clone();
        let session = lancet::engine::sql::Session::new(&db, Some(sql_encoder))
            .await
            .unwrap();
        let counted = session
            .sql("SELECT count(*) AS n FROM chunks WHERE embedding IS NULL")
            .await
            .unwrap();
        let n = counted[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 24);
        let found = session
            .sql("SELECT path FROM vector_search('chunks', 'widget', 100)")
            .await
            .unwrap();
        let mut sql_paths = BTreeSet::new();
        for batch in &found {
            let paths = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            sql_paths.extend(paths.iter().flatten().map(str::to_string));
        }
        assert_eq!(sql_paths, embedded_first);
        // The hot index catches up with the rows that got vectors.
        let hot = table
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert_eq!(hot.rows, 12);

        // The next job embeds exactly the rest and ends where an uninterrupted job does.
        let before = encoder.texts_encoded();
        let summary = run(&table, &encoder, &root, VectorTiming::AfterText)
            .await
            .unwrap();
        assert_eq!(encoder.texts_encoded() - before, (chunks - 12) as usize);
        assert_eq!(summary.chunks_embedded, (chunks - 12) as usize);
        assert_eq!(summary.tokens_embedded, plan.tokens_to_embed * 24 / 36);
        assert_eq!(summary.chunks_vectors_added, chunks - 12);
        assert_eq!(summary.chunks_pending, 0);
        assert!(table.vector_coverage(None).await.unwrap().is_complete());
        assert!(same_rows(&rows(&table).await, &rows(&reference).await));
        let hot = table
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert_eq!(hot.rows, chunks);
        assert_eq!(paths_with_vectors(&table).await.len(), FILES);

        // Nothing left: a further job embeds nothing and commits nothing.
        let summary = run(&table, &encoder, &root, VectorTiming::AfterText)
            .await
            .unwrap();
        assert_eq!((summary.chunks_embedded, summary.commits), (0, 0));
    });
}

#[test]
fn text_first_commits_text_then_vectors_and_ends_like_a_job_with_vectors() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("repo");
    tree(&root);
    let rt = runtime();
    rt.block_on(async {
        let (reference, inline) = reference_run(work.path(), &root).await;

        let encoder = Arc::new(HashEncoder::new(64));
        let table = table_for(&work.path().join("db"), &encoder).await;
        let summary = run(&table, &encoder, &root, VectorTiming::AfterText)
            .await
            .unwrap();
        assert_eq!(summary.chunks_embedded, inline.chunks_embedded);
        assert_eq!(summary.tokens_embedded, inline.tokens_embedded);
        assert_eq!(summary.chunks_added, inline.chunks_added);
        assert_eq!(summary.chunks_vectors_added, summary.chunks_added);
        assert_eq!(summary.chunks_pending, 0);
        assert!(same_rows(&rows(&table).await, &rows(&reference).await));

        // An edit re-embeds only its file's changed chunk, text first as well.
        write(
            &root,
            "src/m05.rs",
            "pub fn widget_5_0(x: u64) -> u64 {\n    x * 500\n}\n",
        );
        let before = encoder.texts_encoded();
        let summary = run(&table, &encoder, &root, VectorTiming::AfterText)
            .await
            .unwrap();
        assert_eq!(encoder.texts_encoded() - before, 1);
        assert_eq!(
            (summary.files_indexed, summary.chunks_vectors_added),
            (1, 1)
        );
        assert!(table.vector_coverage(None).await.unwrap().is_complete());
    });
}

/// `lancet index` killed with SIGKILL while it gives rows their vectors: the table holds
/// every file's text, part of the vectors, answers `status` and `search` (text and
/// vectors fused, coverage said), and the next `lancet index` embeds exactly the rest,
/// ending with the rows of an uninterrupted run.
#[test]
fn lancet_index_killed_while_embedding_resumes_where_it_stopped() {
    use crate::ingest::open_chunks;
    use crate::support::cli::{lancet, lancet_command, stderr, stdout};
    use crate::support::tiny_model::write_tiny_model;
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    let model = cwd.join("model");
    write_tiny_model(&model, 7);
    let repo = cwd.join("repo");
    let files = 600;
    for i in 0..files {
        write(
            &repo,
            &format!("src/m{i:03}.rs"),
            format!("pub fn gadget_{i}(x: u64) -> u64 {{\n    x * {i} + 1\n}}\n"),
        );
    }
    let index = |db: &Path, extra: &[&str]| {
        let mut args = vec![
            "--no-cache",
            "--model",
            model.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "index",
            repo.to_str().unwrap(),
            "--repo",
            "r",
            "--threads",
            "2",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let reference = cwd.join("reference");
    let args = index(&reference, &["--vectors", "with-text"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lancet(&refs, cwd);
    assert!(out.status.success(), "{}", stderr(&out));

    let db = cwd.join("db");
    let args = index(&db, &["--commit-chunks", "8"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = lancet_command(&refs, cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let progress = BufReader::new(child.stderr.take().unwrap());
    let mut saw_vectors = false;
    for line in progress.lines() {
        if line.unwrap().contains("vectors added to") {
            saw_vectors = true;
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(saw_vectors, "the job never reached its embedding phase");

    let rt = runtime();
    let coverage =
        rt.block_on(async { open_chunks(&db).await.vector_coverage(None).await.unwrap() });
    assert_eq!(
        coverage.chunks, files as u64,
        "every file's text is committed"
    );
    assert!(
        coverage.with_vectors > 0 && coverage.with_vectors < coverage.chunks,
        "the job was not killed while embedding: {coverage}"
    );

    let db_arg = db.to_str().unwrap();
    let model_arg = model.to_str().unwrap();
    let status = lancet(
        &["--model", model_arg, "--db", db_arg, "status", "--json"],
        cwd,
    );
    assert!(status.status.success(), "{}", stderr(&status));
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["vectors"]["with_vectors"], coverage.with_vectors);
    assert_eq!(status["vectors"]["chunks"], coverage.chunks);

    // A search fuses text and vectors while coverage is partial, and says so.
    let found = lancet(
        &[
            "--model",
            model_arg,
            "--db",
            db_arg,
            "search",
            "gadget_417",
            "--json",
        ],
        cwd,
    );
    assert!(found.status.success(), "{}", stderr(&found));
    assert!(
        stderr(&found).contains("vectors cover"),
        "{}",
        stderr(&found)
    );
    let hits: serde_json::Value = serde_json::from_str(&stdout(&found)).unwrap();
    // The best text match ranks first in its ranking, so at worst it ties the best
    // vector match (1/61 each).
    let top: Vec<&str> = (0..2).filter_map(|i| hits[i]["path"].as_str()).collect();
    assert!(top.contains(&"src/m417.rs"), "{hits}");

    let args = index(&db, &["--json"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let resumed = lancet(&refs, cwd);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&resumed)).unwrap();
    assert_eq!(summary["files_indexed"], 0);
    assert_eq!(summary["chunks_embedded"], coverage.pending());
    assert_eq!(summary["chunks_pending"], 0);
    rt.block_on(async {
        let got = rows(&open_chunks(&db).await).await;
        let expected = rows(&open_chunks(&reference).await).await;
        assert!(same_rows(&got, &expected), "the resumed run differs");
    });
}

/// The ANN index of a table whose rows partly wait for their vectors: it is sized for
/// (and Lance trains it on) the rows with vectors, a search through it (or exact)
/// returns only those, and once the rest get their vectors an optimize folds them in.
#[test]
fn the_ann_index_is_built_over_the_rows_with_vectors_and_takes_the_rest_later() {
    use crate::support::rows::{chunk, row};
    use lancet::engine::{ChunkEmbedding, EmbeddedChunk, IndexOptions};
    let work = tempfile::tempdir().unwrap();
    let encoder = Arc::new(HashEncoder::new(64));
    let rt = runtime();
    rt.block_on(async {
        let table = table_for(work.path(), &encoder).await;
        let text = |n: u32| format!("fn item_{n}() {{ alpha{} beta{} }}", n % 7, n % 13);
        let rows: Vec<EmbeddedChunk> = (0..600u32)
            .map(|n| {
                let chunk = chunk("r", &format!("src/f{}.rs", n / 10), "rust", n, &text(n));
                if n % 3 == 0 {
                    EmbeddedChunk {
                        chunk,
                        embedding: ChunkEmbedding::Pending,
                    }
                } else {
                    row(chunk, encoder.vector(&text(n)))
                }
            })
            .collect();
        table.append(&rows).await.unwrap();
        let options = IndexOptions {
            min_rows_for_ann: 300,
            ..IndexOptions::default()
        };
        let report = table.ensure_indexes(&options).await.unwrap();
        assert!(
            report.ann_ready,
            "400 rows with vectors are past the threshold"
        );
        let query = encoder.vector(&text(5));
        for mode in [SearchMode::default(), SearchMode::Exact] {
            let hits = table
                .search(&SearchRequest::new(query.clone(), 50).mode(mode))
                .await
                .unwrap();
            assert_eq!(hits.len(), 50, "{mode:?}");
            assert!(
                hits.iter().all(|h| {
                    let n: u32 = h.chunk_id.rsplit('#').next().unwrap().parse().unwrap();
                    !n.is_multiple_of(3)
                }),
                "{mode:?}: a row without vectors came back"
            );
        }

        // The rest get their vectors; optimize folds them into the index.
        let filled: Vec<EmbeddedChunk> = rows
            .iter()
            .filter(|r| r.embedding == ChunkEmbedding::Pending)
            .map(|r| row(r.chunk.clone(), encoder.vector(&r.chunk.text)))
            .collect();
        let report = table.fill_vectors(&filled).await.unwrap();
        assert_eq!(report.updated, 200);
        assert!(table.vector_coverage(None).await.unwrap().is_complete());
        table.optimize(&options).await.unwrap();
        let hits = table
            .search(&SearchRequest::new(encoder.vector(&text(3)), 1))
            .await
            .unwrap();
        assert_eq!(hits[0].chunk_id, "r:src/f0.rs#3");
    });
}

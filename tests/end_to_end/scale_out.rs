//! Scale-out: tables on an object store (a real local S3 server, moto), shards of a job
//! staged by separate workers and landed in one idempotent commit, a store that goes
//! away mid-job.

use crate::ingest::{rows, same_rows, table_for};
use crate::support::s3::S3;
use crate::support::{runtime, write, HashEncoder};
use lancet::engine::ingest::{
    commit_stage, index_directory, index_shard, IngestOptions, IngestSummary, ShardInput, Stage,
};
use lancet::engine::{
    ChunkTable, Database, DatabaseOptions, Filter, HotIndexOptions, SearchRequest, TableDims,
    TableMetadata,
};
use lancet::udf::Encoder;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FILES: usize = 16;

fn options() -> IngestOptions {
    IngestOptions {
        repo: "r".into(),
        commit_files: 3,
        threads: 2,
        chunk_tokens: 92,
        ..IngestOptions::default()
    }
}

fn tree(root: &Path) {
    for i in 0..FILES {
        let text: String = (0..2)
            .map(|j| format!("pub fn gadget_{i}_{j}(x: u64) -> u64 {{\n    x * {i} + {j}\n}}\n\n"))
            .collect();
        write(root, &format!("src/g{i:02}.rs"), text);
    }
}

/// Edits one file, removes one and adds one.
fn change(root: &Path) {
    write(
        root,
        "src/g03.rs",
        "pub fn gadget_changed(x: u64) -> u64 {\n    x + 42\n}\n",
    );
    std::fs::remove_file(root.join("src/g07.rs")).unwrap();
    write(
        root,
        "src/new.rs",
        "pub fn gadget_new() -> u32 {\n    7\n}\n",
    );
}

async fn database(s3: &S3, path: &str, local: &Path) -> Database {
    database_at(s3, s3.uri(path), local).await
}

async fn database_at(s3: &S3, uri: String, local: &Path) -> Database {
    Database::connect(
        uri,
        DatabaseOptions {
            storage_options: s3.storage_options(),
            local_dir: Some(local.to_path_buf()),
            ..DatabaseOptions::default()
        },
    )
    .await
    .unwrap()
}

async fn s3_table(s3: &S3, path: &str, local: &Path, encoder: &HashEncoder) -> ChunkTable {
    table_at(s3, s3.uri(path), local, encoder).await
}

async fn table_at(s3: &S3, uri: String, local: &Path, encoder: &HashEncoder) -> ChunkTable {
    let metadata = TableMetadata::new(
        encoder.identity().clone(),
        TableDims {
            full: 32,
            prefix: 8,
        },
    )
    .unwrap();
    database_at(s3, uri, local)
        .await
        .open_or_create_table("chunks", metadata)
        .await
        .unwrap()
}

async fn index(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
) -> lancet::engine::Result<IngestSummary> {
    index_directory(table, encoder, root, &options(), &mut |_| {}).await
}

/// `root` indexed by one local run: what every distributed job must end equal to.
async fn reference(dir: &Path, root: &Path) -> ChunkTable {
    let encoder = Arc::new(HashEncoder::new(32));
    let table = table_for(dir, &encoder).await;
    index(&table, encoder, root).await.unwrap();
    table
}

async fn shard(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    stage: &Stage,
    share: (u32, u32),
) -> lancet::engine::Result<lancet::engine::ingest::ShardManifest> {
    let inputs = [ShardInput {
        root: root.to_path_buf(),
        options: options(),
    }];
    index_shard(table, encoder, &inputs, stage, share, &mut |_| {}).await
}

#[test]
fn a_table_on_s3_is_indexed_searched_and_kept_incrementally() {
    let Some(s3) = S3::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    tree(&root);
    runtime().block_on(async {
        let encoder = Arc::new(HashEncoder::new(32));
        let local = dir.path().join("local");
        let table = s3_table(&s3, "db", &local, &encoder).await;
        let first = index(&table, encoder.clone(), &root).await.unwrap();
        assert_eq!(first.files_indexed, FILES);
        let expected = reference(&dir.path().join("reference"), &root).await;
        assert!(same_rows(&rows(&table).await, &rows(&expected).await));

        let query = encoder.vector("gadget_5_1 x");
        let request = SearchRequest::new(query, 3).filter(Filter::default());
        let lance_hits = table.search(&request).await.unwrap();
        assert_eq!(lance_hits[0].path, "src/g05.rs");
        let stats = table.stats().await.unwrap();
        assert_eq!(stats.files, FILES);
        // The hot index of a table on the store lives in the local folder.
        let hot = table
            .open_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
        assert_eq!(hot.rows as usize, stats.rows);
        assert!(local.join("chunks.hot").is_dir());
        let hot_hits = table.search(&request).await.unwrap();
        assert_eq!(hot_hits[0].chunk_id, lance_hits[0].chunk_id);

        // A second handle (another process) sees the same table; a second run reads
        // the file hashes back from the store and skips every file.
        let again = s3_table(&s3, "db", &dir.path().join("local2"), &encoder).await;
        let second = index(&again, encoder.clone(), &root).await.unwrap();
        assert_eq!((second.files_unchanged, second.commits), (FILES, 0));

        change(&root);
        let third = index(&again, encoder.clone(), &root).await.unwrap();
        assert_eq!((third.files_indexed, third.files_deleted), (2, 1));
        let expected = reference(&dir.path().join("reference2"), &root).await;
        assert!(same_rows(&rows(&again).await, &rows(&expected).await));
    });
}

#[test]
fn two_shards_and_one_commit_give_the_rows_of_a_single_run_and_a_second_commit_adds_nothing() {
    let Some(s3) = S3::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    tree(&root);
    runtime().block_on(async {
        let encoder = Arc::new(HashEncoder::new(32));
        let local = dir.path().join("local");
        let table = s3_table(&s3, "db", &local, &encoder).await;
        // A long-lived reader, opened before anything lands.
        let reader = s3_table(&s3, "db", &dir.path().join("reader"), &encoder).await;
        let stage = Stage::new(database(&s3, "stage-1", &local).await);
        let a = shard(&table, encoder.clone(), &root, &stage, (0, 2))
            .await
            .unwrap();
        let b = shard(&table, encoder.clone(), &root, &stage, (1, 2))
            .await
            .unwrap();
        assert_eq!(a.files.len() + b.files.len(), FILES, "disjoint, covering");
        assert!(a.files.len() >= 3 && b.files.len() >= 3, "{a:?} {b:?}");
        assert_eq!(table.stats().await.unwrap().rows, 0, "shards only stage");

        let commit = commit_stage(&table, &stage, false).await.unwrap();
        assert!(!commit.already_committed);
        assert_eq!(commit.inserted, a.rows + b.rows);
        let expected = reference(&dir.path().join("reference"), &root).await;
        assert!(same_rows(&rows(&table).await, &rows(&expected).await));

        let again = commit_stage(&table, &stage, false).await.unwrap();
        assert!(again.already_committed);
        assert_eq!((again.version, again.inserted), (commit.version, 0));
        assert_eq!(table.version().await.unwrap(), commit.version);

        // The reader sees the commit without reopening (read consistency: 5 s).
        let deadline = Instant::now() + Duration::from_secs(30);
        while reader.stats().await.unwrap().rows == 0 {
            assert!(Instant::now() < deadline, "reader never saw the commit");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        // The next job is incremental: an edit, a deletion and a new file, nothing else.
        change(&root);
        let stage = Stage::new(database(&s3, "stage-2", &local).await);
        let a = shard(&table, encoder.clone(), &root, &stage, (0, 2))
            .await
            .unwrap();
        let b = shard(&table, encoder.clone(), &root, &stage, (1, 2))
            .await
            .unwrap();
        assert_eq!(a.files.len() + b.files.len(), 3, "{a:?} {b:?}");
        commit_stage(&table, &stage, false).await.unwrap();
        let expected = reference(&dir.path().join("reference2"), &root).await;
        assert!(same_rows(&rows(&table).await, &rows(&expected).await));
    });
}

#[test]
fn a_commit_with_a_shard_missing_refuses_and_a_killed_shard_run_again_completes_the_job() {
    let Some(s3) = S3::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    tree(&root);
    runtime().block_on(async {
        let encoder = Arc::new(HashEncoder::new(32));
        let local = dir.path().join("local");
        let table = s3_table(&s3, "db", &local, &encoder).await;
        let stage = Stage::new(database(&s3, "stage", &local).await);
        shard(&table, encoder.clone(), &root, &stage, (0, 3))
            .await
            .unwrap();
        // Shard 1 dies midway: some of its groups are staged, its manifest is not.
        let dying = Arc::new(HashEncoder::new(32).failing_after(4));
        assert!(shard(&table, dying, &root, &stage, (1, 3)).await.is_err());
        shard(&table, encoder.clone(), &root, &stage, (2, 3))
            .await
            .unwrap();

        let refused = commit_stage(&table, &stage, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("1/3") && refused.contains("--allow-partial"),
            "{refused}"
        );
        assert_eq!(table.stats().await.unwrap().rows, 0);

        // Run again, shard 1 replaces its partial work; the job then equals one run.
        shard(&table, encoder.clone(), &root, &stage, (1, 3))
            .await
            .unwrap();
        commit_stage(&table, &stage, false).await.unwrap();
        let expected = reference(&dir.path().join("reference"), &root).await;
        assert!(same_rows(&rows(&table).await, &rows(&expected).await));
    });
}

#[test]
fn a_partial_commit_lands_the_finished_shards_only() {
    let Some(s3) = S3::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    tree(&root);
    runtime().block_on(async {
        let encoder = Arc::new(HashEncoder::new(32));
        let local = dir.path().join("local");
        let table = s3_table(&s3, "db", &local, &encoder).await;
        let stage = Stage::new(database(&s3, "stage", &local).await);
        let only = shard(&table, encoder.clone(), &root, &stage, (0, 2))
            .await
            .unwrap();
        let commit = commit_stage(&table, &stage, true).await.unwrap();
        assert_eq!(
            (commit.shards.clone(), commit.missing.clone()),
            (vec![0], vec![1])
        );
        assert_eq!(table.stats().await.unwrap().files, only.files.len());
    });
}

#[test]
fn a_store_that_goes_away_mid_job_fails_clearly_and_the_next_run_loses_nothing() {
    let Some(s3) = S3::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    tree(&root);
    runtime().block_on(async {
        let local = dir.path().join("local");
        let encoder = Arc::new(HashEncoder::new(32));
        let table = s3_table(&s3, "db", &local, &encoder).await;
        // The store goes away after the first groups were embedded.
        let cutting = Arc::new(HashEncoder::new(32).calling_after(8, s3.cutter()));
        let started = Instant::now();
        let error = index(&table, cutting, &root).await.unwrap_err().to_string();
        eprintln!(
            "the store gone away: {error} (after {:?})",
            started.elapsed()
        );
        assert!(
            error.contains("127.0.0.1") || error.to_lowercase().contains("connect"),
            "the error does not say the store could not be reached: {error}"
        );

        s3.restore();
        let table = s3_table(&s3, "db", &dir.path().join("local2"), &encoder).await;
        index(&table, encoder.clone(), &root).await.unwrap();
        let expected = reference(&dir.path().join("reference"), &root).await;
        assert!(same_rows(&rows(&table).await, &rows(&expected).await));
    });
}

#[test]
fn the_command_line_runs_a_sharded_job_on_s3_and_serves_it() {
    use crate::support::cli::{lancet, stderr, stdout};
    use crate::support::tiny_model::write_tiny_model;
    let Some(s3) = S3::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    for repo in ["alpha", "beta"] {
        for i in 0..6 {
            write(
                &work.path().join(repo),
                &format!("src/{repo}_{i}.rs"),
                format!("pub fn {repo}_handler_{i}(request: &str) -> usize {{\n    request.len() + {i}\n}}\n"),
            );
        }
    }
    let (db, stage) = (s3.uri("db"), s3.uri("stage"));
    let flags = s3.storage_flags();
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = vec!["--model", model.to_str().unwrap(), "--db", &db];
        all.extend(flags.iter().map(String::as_str));
        all.extend(args);
        lancet(&all, work.path())
    };

    let out = run(&["index", "alpha", "beta"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--shard"), "{}", stderr(&out));

    let out = run(&[
        "index", "alpha", "beta", "--shard", "0/2", "--stage", &stage, "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let out = run(&["commit", "--stage", &stage]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("1/2"), "{}", stderr(&out));

    let out = run(&[
        "index", "alpha", "beta", "--shard", "1/2", "--stage", &stage, "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let staged =
        first["files"].as_array().unwrap().len() + second["files"].as_array().unwrap().len();
    assert_eq!(staged, 12, "{first} {second}");

    let out = run(&["commit", "--stage", &stage, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let commit: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(commit["already_committed"], false, "{commit}");
    let out = run(&["commit", "--stage", &stage]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing added"), "{}", stdout(&out));

    let out = run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["files"], 12, "{status}");
    let out = run(&["search", "beta_handler_3", "--repo", "beta", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hits: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let hits = hits.as_array().unwrap();
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h["repo"] == "beta"),
        "{hits:?}"
    );

    let out = run(&[
        "sql",
        "SELECT count(*) AS n FROM chunks",
        "--no-model",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("12"), "{}", stdout(&out));
    let out = run(&["optimize"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = lancet(
        &["--db", &db, "--storage-option", "region", "status"],
        work.path(),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("KEY=VALUE"), "{}", stderr(&out));
}

#[test]
fn a_table_committed_through_dynamodb_is_indexed_and_kept_like_one_on_s3() {
    let Some(s3) = S3::start() else { return };
    s3.create_commit_table("lancet-commits");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    tree(&root);
    runtime().block_on(async {
        let encoder = Arc::new(HashEncoder::new(32));
        let uri = s3.ddb_uri("ddb", "lancet-commits");
        let table = table_at(&s3, uri.clone(), &dir.path().join("local"), &encoder).await;
        index(&table, encoder.clone(), &root).await.unwrap();
        change(&root);
        let again = table_at(&s3, uri, &dir.path().join("local2"), &encoder).await;
        let second = index(&again, encoder.clone(), &root).await.unwrap();
        assert_eq!((second.files_indexed, second.files_deleted), (2, 1));
        let expected = reference(&dir.path().join("reference"), &root).await;
        assert!(same_rows(&rows(&again).await, &rows(&expected).await));

        // The commits did go through DynamoDB: without its table there are none.
        let metadata = TableMetadata::new(
            encoder.identity().clone(),
            TableDims {
                full: 32,
                prefix: 8,
            },
        )
        .unwrap();
        let orphan = database_at(&s3, s3.ddb_uri("ddb2", "missing"), &dir.path().join("l3")).await;
        assert!(orphan
            .open_or_create_table("chunks", metadata)
            .await
            .is_err());
    });
}

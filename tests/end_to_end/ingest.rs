//! Ingestion: the walk's skip rules, incremental re-runs, and a job killed with
//! SIGKILL that resumes to the same rows as an uninterrupted one.

use crate::support::tiny_model::write_tiny_model;
use crate::support::{runtime, write, HashEncoder};
use arrow_array::{Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet::engine::ingest::{
    index_directory, read_source, walk, IngestOptions, IngestSummary, SkipReason, WalkItem,
    WalkOptions,
};
use lancet::engine::{ChunkTable, Database, HotIndexOptions, TableDims, TableMetadata};
use lancet::schemas::{columns as col, fp16_vectors};
use lancet::udf::Encoder;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

pub(crate) async fn table_for(dir: &Path, encoder: &HashEncoder) -> ChunkTable {
    let db = Database::open(dir).await.unwrap();
    let metadata = TableMetadata::new(
        encoder.identity().clone(),
        TableDims {
            full: 32,
            prefix: 8,
        },
    )
    .unwrap();
    db.open_or_create_table("chunks", metadata).await.unwrap()
}

pub(crate) async fn index(
    table: &ChunkTable,
    encoder: &Arc<HashEncoder>,
    root: &Path,
) -> IngestSummary {
    let options = IngestOptions {
        repo: "r".into(),
        commit_files: 2,
        threads: 2,
        // Chunks of 60 tokens: each test function is a chunk of its own.
        chunk_tokens: 92,
        ..IngestOptions::default()
    };
    let encoder: Arc<dyn Encoder> = encoder.clone();
    index_directory(table, encoder, root, &options, &mut |_| {})
        .await
        .unwrap()
}

/// One row as compared between runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RowKey {
    pub(crate) chunk_id: String,
    pub(crate) path: String,
    content_hash: String,
    embedding: Vec<u16>,
}

/// Whether two runs stored the same rows: ids, paths and content hashes equal, vectors
/// equal up to a rounding step of fp16. The encoder's f32 sums depend on which texts
/// share a batch (the readers finish files in any order, so groups differ between runs),
/// and one ulp of difference can round a value to the neighbouring fp16.
pub(crate) fn same_rows(a: &[RowKey], b: &[RowKey]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            (&x.chunk_id, &x.path, &x.content_hash) == (&y.chunk_id, &y.path, &y.content_hash)
                && x.embedding.len() == y.embedding.len()
                && x.embedding.iter().zip(&y.embedding).all(|(&p, &q)| {
                    let (p, q) = (
                        half::f16::from_bits(p).to_f32(),
                        half::f16::from_bits(q).to_f32(),
                    );
                    (p - q).abs() <= 1e-3
                })
        })
}

/// The `chunks` table of the database at `db`.
pub(crate) async fn open_chunks(db: &Path) -> ChunkTable {
    Database::open(db)
        .await
        .unwrap()
        .open_table("chunks")
        .await
        .unwrap()
}

pub(crate) async fn rows(table: &ChunkTable) -> Vec<RowKey> {
    let batches: Vec<RecordBatch> = table
        .lance()
        .query()
        .select(Select::columns(&[
            col::CHUNK_ID,
            col::PATH,
            col::CONTENT_HASH,
            col::EMBEDDING,
        ]))
        .execute()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let s = |i: usize| b.column(i).as_any().downcast_ref::<StringArray>().unwrap();
        let vectors = fp16_vectors(b.column(3).as_ref()).unwrap();
        for i in 0..b.num_rows() {
            out.push(RowKey {
                chunk_id: s(0).value(i).into(),
                path: s(1).value(i).into(),
                content_hash: s(2).value(i).into(),
                embedding: vectors.row(i).iter().map(|x| x.to_bits()).collect(),
            });
        }
    }
    out.sort();
    out
}

fn by_path(rows: &[RowKey]) -> BTreeMap<String, Vec<RowKey>> {
    let mut out: BTreeMap<String, Vec<RowKey>> = BTreeMap::new();
    for r in rows {
        out.entry(r.path.clone()).or_default().push(r.clone());
    }
    out
}

#[test]
fn gitignore_is_respected_and_every_skip_reason_is_counted() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        write(&repo, ".gitignore", "ignored/\n*.gen.rs\n");
        write(&repo, "src/lib.rs", "pub fn kept() -> u32 {\n    1\n}\n");
        write(&repo, "ignored/secret.rs", "fn secret() {}\n");
        write(&repo, "src/out.gen.rs", "fn generated() {}\n");
        write(&repo, ".hidden/h.rs", "fn hidden() {}\n");
        write(&repo, "src/blob.rs", b"fn a() {}\0\x01\x02");
        write(
            &repo,
            "src/huge.rs",
            format!("// {}\n", "x ".repeat(1_100_000)),
        );
        write(
            &repo,
            "web/app.min.js",
            format!("var a={};\n", "1+".repeat(5_000)),
        );
        write(&repo, "vendor/dep/lib.rs", "fn vendored() {}\n");
        write(&repo, "node_modules/pkg/index.js", "module.exports = 1;\n");
        write(&repo, "Cargo.lock", "# lock\n");
        write(&repo, "notes.unknownext", "text\n");
        write(&repo, "src/latin1.py", b"def caf\xe9():\n    return 1\n");
        write(&repo, "src/empty.rs", "");
        write(&repo, "src/blank.py", " \n\n\t\n");
        // UTF-16 text has NUL bytes: taken as binary, like git does.
        let utf16: Vec<u8> = "fn wide() {}"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        write(&repo, "src/wide.rs", utf16);
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            std::os::unix::fs::symlink(repo.join("src/lib.rs"), repo.join("src/link.rs")).unwrap();
            // A symlink loop is not followed either.
            std::os::unix::fs::symlink(repo.join("loop"), repo.join("loop")).unwrap();
            let name = std::ffi::OsStr::from_bytes(b"src/bad\xff.rs");
            std::fs::write(repo.join(name), "fn bad_name() {}\n").unwrap();
        }

        let encoder = Arc::new(HashEncoder::new(32));
        let table = table_for(&dir.path().join("db"), &encoder).await;
        let summary = index(&table, &encoder, &repo).await;

        let skipped = |r: SkipReason| summary.skipped.get(&r).copied().unwrap_or(0);
        assert_eq!(skipped(SkipReason::Binary), 2, "{summary}");
        assert_eq!(skipped(SkipReason::Empty), 2, "{summary}");
        assert_eq!(skipped(SkipReason::TooLarge), 1, "{summary}");
        assert_eq!(skipped(SkipReason::Generated), 1, "{summary}");
        assert_eq!(skipped(SkipReason::Vendored), 2, "{summary}");
        assert_eq!(skipped(SkipReason::LockFile), 1, "{summary}");
        assert_eq!(skipped(SkipReason::UnknownLanguage), 1, "{summary}");
        // `.gitignore` and `.hidden/` are hidden; `ignored/` (a folder, counted once) and
        // `src/out.gen.rs` are named by `.gitignore`.
        assert_eq!(skipped(SkipReason::Hidden), 2, "{summary}");
        assert_eq!(skipped(SkipReason::Ignored), 2, "{summary}");
        assert!(
            summary.to_string().contains("skipped (hidden): 2"),
            "{summary}"
        );
        #[cfg(unix)]
        assert_eq!(
            (
                skipped(SkipReason::Symlink),
                skipped(SkipReason::NonUtf8Name)
            ),
            (2, 1),
            "{summary}"
        );
        assert_eq!(summary.lossy_utf8, 1, "{summary}");
        assert_eq!(summary.files_indexed, 2, "{summary}");

        let paths: BTreeSet<String> = rows(&table).await.into_iter().map(|r| r.path).collect();
        let expected: BTreeSet<String> = ["src/latin1.py", "src/lib.rs"].map(String::from).into();
        assert_eq!(paths, expected);

        // Skipped files stay skipped: a re-run reads them again and commits nothing.
        let again = index(&table, &encoder, &repo).await;
        assert_eq!((again.files_indexed, again.commits), (0, 0), "{again}");
        assert_eq!(again.files_unchanged, 2, "{again}");
    });
}

#[test]
fn one_bad_option_does_not_empty_the_index() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        for name in ["a", "b", "c"] {
            write(
                &repo,
                &format!("src/{name}.rs"),
                format!("pub fn {name}() {{}}\n"),
            );
        }
        let encoder = Arc::new(HashEncoder::new(32));
        let table = table_for(&dir.path().join("db"), &encoder).await;
        index(&table, &encoder, &repo).await;
        let before = rows(&table).await;
        assert_eq!(before.len(), 3);

        // A size limit of one byte skips every file as too large: the run that would
        // remove all three refuses, says why, and removes nothing.
        let run = |max_file_bytes: u64, allow_remove_all: bool| {
            let options = IngestOptions {
                repo: "r".into(),
                walk: WalkOptions {
                    max_file_bytes,
                    ..WalkOptions::default()
                },
                allow_remove_all,
                ..IngestOptions::default()
            };
            let encoder: Arc<dyn Encoder> = encoder.clone();
            let table = &table;
            let repo = &repo;
            async move { index_directory(table, encoder, repo, &options, &mut |_| {}).await }
        };
        let err = run(1, false).await.unwrap_err().to_string();
        assert!(
            err.contains("refusing to remove all 3 indexed files")
                && err.contains("3 too large")
                && err.contains("--allow-remove-all"),
            "{err}"
        );
        assert_eq!(rows(&table).await, before);

        // Said on purpose, it goes through.
        let summary = run(1, true).await.unwrap();
        assert_eq!(summary.files_deleted, 3, "{summary}");
        assert!(rows(&table).await.is_empty());

        // Files really deleted from disk are removed without a word: nothing is left
        // on disk that the run could have skipped by mistake.
        index(&table, &encoder, &repo).await;
        std::fs::remove_dir_all(repo.join("src")).unwrap();
        let summary = run(1 << 20, false).await.unwrap();
        assert_eq!(summary.files_deleted, 3, "{summary}");
        assert!(rows(&table).await.is_empty());
    });
}

#[test]
fn a_job_whose_writer_fails_returns_the_error_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // The broken chunk comes first; many one-file groups follow, so the encoder is
    // still handing groups on when the writer refuses the first.
    write(&repo, "src/a.rs", "pub fn poison_nan() {}\n");
    for i in 0..30 {
        write(
            &repo,
            &format!("src/m{i:02}.rs"),
            format!("pub fn m{i}() {{}}\n"),
        );
    }
    let (done, outcome) = std::sync::mpsc::channel();
    let db = dir.path().join("db");
    std::thread::spawn(move || {
        let result = runtime().block_on(async {
            let encoder = Arc::new(HashEncoder::new(32));
            let table = table_for(&db, &encoder).await;
            let options = IngestOptions {
                repo: "r".into(),
                commit_files: 1,
                threads: 1,
                ..IngestOptions::default()
            };
            let encoder: Arc<dyn Encoder> = encoder;
            index_directory(&table, encoder, &repo, &options, &mut |_| {}).await
        });
        let _ = done.send(result.map(|s| s.to_string()).map_err(|e| e.to_string()));
    });
    let result = outcome
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the job hung after its writer failed");
    let err = result.unwrap_err();
    assert!(err.contains("NaN") && err.contains("src/a.rs"), "{err}");
}

#[test]
fn hostile_files_are_skipped_with_their_reason_and_nothing_else_is_affected() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        write(&repo, "src/ok.rs", "pub fn fine() -> u32 {\n    7\n}\n");
        // 100 MB (sparse): refused from its size, never read.
        let big = std::fs::File::create(repo.join("src/big.rs")).unwrap();
        big.set_len(100 << 20).unwrap();
        // One 10 MB line: minified or generated, not source to search.
        write(
            &repo,
            "src/oneline.js",
            format!("var x = [{}];\n", "1,".repeat(5 << 20)),
        );
        // 200 folders deep: indexed like any other file.
        let deep: String = (0..200).map(|i| format!("d{}/", i % 10)).collect();
        write(
            &repo,
            &format!("{deep}deep.py"),
            "def deep():\n    return 1\n",
        );
        #[cfg(unix)]
        {
            // A FIFO named like source: opening it for reading would wait for a writer forever.
            let status = std::process::Command::new("mkfifo")
                .arg(repo.join("src/pipe.rs"))
                .status()
                .unwrap();
            assert!(status.success());
        }

        let encoder = Arc::new(HashEncoder::new(32));
        let table = table_for(&dir.path().join("db"), &encoder).await;
        let options = IngestOptions {
            repo: "r".into(),
            walk: WalkOptions {
                max_file_bytes: 16 << 20,
                ..WalkOptions::default()
            },
            ..IngestOptions::default()
        };
        let dyn_encoder: Arc<dyn Encoder> = encoder.clone();
        let summary = index_directory(&table, dyn_encoder, &repo, &options, &mut |_| {})
            .await
            .unwrap();
        let skipped = |r: SkipReason| summary.skipped.get(&r).copied().unwrap_or(0);
        assert_eq!(skipped(SkipReason::TooLarge), 1, "{summary}");
        assert_eq!(skipped(SkipReason::Generated), 1, "{summary}");
        #[cfg(unix)]
        assert_eq!(skipped(SkipReason::Special), 1, "{summary}");
        assert_eq!(summary.files_indexed, 2, "{summary}");
        let paths: BTreeSet<String> = rows(&table).await.into_iter().map(|r| r.path).collect();
        let expected: BTreeSet<String> = [format!("{deep}deep.py"), "src/ok.rs".to_string()].into();
        assert_eq!(paths, expected);

        // Files that change between the walk and the read: deleted, emptied, or replaced
        // by a FIFO. Each is skipped with its reason; none blocks the reader.
        let walk_options = WalkOptions::default();
        let candidates: Vec<_> = walk(&repo, &walk_options, Vec::new())
            .filter_map(|item| match item {
                WalkItem::File(c) => Some(c),
                WalkItem::Skipped(..) => None,
            })
            .collect();
        let candidate = |name: &str| {
            candidates
                .iter()
                .find(|c| c.rel_path.ends_with(name))
                .cloned()
                .unwrap()
        };
        write(&repo, "src/ok.rs", "");
        assert_eq!(
            read_source(candidate("ok.rs"), &walk_options).err(),
            Some(SkipReason::Empty)
        );
        std::fs::remove_file(repo.join(format!("{deep}deep.py"))).unwrap();
        assert_eq!(
            read_source(candidate("deep.py"), &walk_options).err(),
            Some(SkipReason::Vanished)
        );
        #[cfg(unix)]
        {
            std::process::Command::new("mkfifo")
                .arg(repo.join(format!("{deep}deep.py")))
                .status()
                .unwrap();
            assert_eq!(
                read_source(candidate("deep.py"), &walk_options).err(),
                Some(SkipReason::Special)
            );
        }
    });
}

#[test]
fn reruns_embed_nothing_new_and_edits_change_exactly_their_rows() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let function = |name: &str, body: &str| {
            format!("pub fn {name}(x: u32) -> u32 {{\n    let y = x * 3 + 1;\n    {body}\n}}\n\n")
        };
        let a_v1: String = ["alpha", "beta", "gamma"]
            .map(|n| function(n, "y + 1"))
            .concat();
        write(&repo, "src/a.rs", &a_v1);
        write(&repo, "src/b.rs", function("delta", "y - 1"));
        write(&repo, "src/c.py", "def epsilon(x):\n    return x * 2\n");
        write(
            &repo,
            "src/d.go",
            "package d\n\nfunc Zeta() int { return 7 }\n",
        );
        // The same function in two files: two embedded texts, since the header names
        // each file's path.
        write(&repo, "src/e.rs", function("eta", "y"));
        write(&repo, "src/copy/e.rs", function("eta", "y"));

        let encoder = Arc::new(HashEncoder::new(32));
        let table = table_for(&dir.path().join("db"), &encoder).await;
        let first = index(&table, &encoder, &repo).await;
        assert_eq!(first.files_indexed, 6);
        // Three functions of a.rs, one chunk in each other file: eight texts, each sent to
        // the encoder once (the summary and the encoder's own count agree).
        assert_eq!(first.chunks_embedded, 8, "{first}");
        assert_eq!(encoder.texts_encoded(), 8);
        let before = rows(&table).await;
        let ids: BTreeSet<&str> = before.iter().map(|r| r.chunk_id.as_str()).collect();
        assert_eq!(ids.len(), before.len(), "duplicate chunk ids");
        // a.rs: one chunk per function.
        assert_eq!(by_path(&before)["src/a.rs"].len(), 3);

        // Unchanged tree: nothing read into chunks, nothing embedded, nothing written.
        let version = table.lance().version().await.unwrap();
        let embedded = encoder.texts_encoded();
        let second = index(&table, &encoder, &repo).await;
        assert_eq!(second.files_unchanged, 6, "{second}");
        assert_eq!((second.files_indexed, second.commits), (0, 0), "{second}");
        assert_eq!(encoder.texts_encoded(), embedded);
        assert_eq!(table.lance().version().await.unwrap(), version);

        // Edit one function of a.rs, delete b.rs, rename c.py.
        let a_v2 = a_v1.replace(
            "pub fn beta(x: u32) -> u32 {\n    let y = x * 3 + 1;\n    y + 1",
            "pub fn beta(x: u32) -> u32 {\n    let y = x * 3 + 1;\n    y + 100",
        );
        assert_ne!(a_v1, a_v2);
        write(&repo, "src/a.rs", &a_v2);
        std::fs::remove_file(repo.join("src/b.rs")).unwrap();
        std::fs::rename(repo.join("src/c.py"), repo.join("src/renamed.py")).unwrap();
        let embedded = encoder.texts_encoded();
        let third = index(&table, &encoder, &repo).await;
        let after = rows(&table).await;
        let (old, new) = (by_path(&before), by_path(&after));

        // Untouched files keep their rows exactly.
        for path in ["src/d.go", "src/e.rs", "src/copy/e.rs"] {
            assert_eq!(old[path], new[path], "{path}");
        }
        assert!(!new.contains_key("src/b.rs") && !new.contains_key("src/c.py"));
        assert_eq!(new["src/renamed.py"].len(), old["src/c.py"].len());
        // In a.rs only beta's chunk changed; alpha's and gamma's rows are kept.
        let kept: Vec<_> = new["src/a.rs"]
            .iter()
            .filter(|r| old["src/a.rs"].contains(r))
            .collect();
        assert_eq!((new["src/a.rs"].len(), kept.len()), (3, 2));
        // Embedded: beta's new text and the renamed file's chunk (its header names the path).
        assert_eq!(encoder.texts_encoded() - embedded, 2, "{third}");
        assert_eq!(third.files_deleted, 2, "{third}");
        assert_eq!(third.files_unchanged, 3, "{third}");
        let ids: BTreeSet<&str> = after.iter().map(|r| r.chunk_id.as_str()).collect();
        assert_eq!(ids.len(), after.len(), "duplicate chunk ids");
    });
}

#[test]
fn a_run_limited_to_some_paths_touches_only_their_files() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        for (path, name) in [
            ("src/a.rs", "alpha"),
            ("src/b.rs", "beta"),
            ("src/sub/c.rs", "gamma"),
            ("src/sub/d.rs", "delta"),
            ("docs/e.py", "epsilon"),
            ("ignored/f.rs", "zeta"),
        ] {
            write(&repo, path, format!("pub fn {name}() -> u32 {{ 1 }}\n"));
        }
        let encoder = Arc::new(HashEncoder::new(32));
        let table = table_for(&dir.path().join("db"), &encoder).await;
        assert_eq!(index(&table, &encoder, &repo).await.files_indexed, 6);
        let before = by_path(&rows(&table).await);

        // Edit a.rs and b.rs, delete d.rs and e.py, add g.rs in sub and h.rs beside it,
        // and ignore a folder: then index only a.rs, the sub folder and the ignored one.
        write(&repo, "src/a.rs", "pub fn alpha() -> u32 { 2 }\n");
        write(&repo, "src/b.rs", "pub fn beta() -> u32 { 2 }\n");
        std::fs::remove_file(repo.join("src/sub/d.rs")).unwrap();
        std::fs::remove_file(repo.join("docs/e.py")).unwrap();
        write(&repo, "src/sub/g.rs", "pub fn eta() -> u32 { 1 }\n");
        write(&repo, "src/h.rs", "pub fn theta() -> u32 { 1 }\n");
        write(&repo, ".ignore", "ignored/\n");
        let options = IngestOptions {
            repo: "r".into(),
            threads: 2,
            chunk_tokens: 92,
            walk: WalkOptions {
                only: vec!["src/a.rs".into(), "./src/sub/".into(), "ignored".into()],
                ..WalkOptions::default()
            },
            ..IngestOptions::default()
        };
        let dyn_encoder: Arc<dyn Encoder> = encoder.clone();
        let embedded = encoder.texts_encoded();
        let scoped = index_directory(&table, dyn_encoder, &repo, &options, &mut |_| {})
            .await
            .unwrap();
        let after = by_path(&rows(&table).await);

        // In scope: a.rs re-embedded, d.rs removed, g.rs added, c.rs unchanged, and the
        // ignored folder's file removed, as a whole-tree run would.
        assert_ne!(before["src/a.rs"], after["src/a.rs"]);
        assert_eq!(before["src/sub/c.rs"], after["src/sub/c.rs"]);
        assert!(after.contains_key("src/sub/g.rs"));
        assert!(!after.contains_key("src/sub/d.rs"));
        assert!(!after.contains_key("ignored/f.rs"));
        assert_eq!(encoder.texts_encoded() - embedded, 2, "{scoped}");
        // Changes and removals land in one commit.
        assert_eq!(
            (
                scoped.files_indexed,
                scoped.files_unchanged,
                scoped.files_deleted,
                scoped.commits
            ),
            (2, 1, 2, 1),
            "{scoped}"
        );
        // Out of scope: the edit, the deletion and the new file wait for a later run.
        assert_eq!(before["src/b.rs"], after["src/b.rs"]);
        assert_eq!(before["docs/e.py"], after["docs/e.py"]);
        assert!(!after.contains_key("src/h.rs"));

        // A whole-tree run then catches up with the rest.
        let full = index(&table, &encoder, &repo).await;
        let last = by_path(&rows(&table).await);
        assert_ne!(before["src/b.rs"], last["src/b.rs"]);
        assert!(!last.contains_key("docs/e.py") && last.contains_key("src/h.rs"));
        assert_eq!((full.files_indexed, full.files_deleted), (2, 1), "{full}");
    });
}

/// Runs `lancet index` and returns its exit status.
fn lancet_index(model: &Path, repo: &Path, db: &Path) -> std::process::ExitStatus {
    Command::new(env!("CARGO_BIN_EXE_lancet"))
        .args([
            "--model",
            model.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ])
        .args([
            "index",
            repo.to_str().unwrap(),
            "--commit-files",
            "4",
            "--threads",
            "2",
        ])
        .env("HF_HUB_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
}

#[test]
fn a_job_killed_with_sigkill_resumes_to_the_rows_of_an_uninterrupted_run() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 5);
    let repo = work.path().join("repo");
    let files = 160;
    for i in 0..files {
        let text: String = (0..3)
            .map(|j| format!("pub fn f{i}_{j}(x: u64) -> u64 {{\n    x * {i} + {j}\n}}\n\n"))
            .collect();
        write(&repo, &format!("src/m{i:03}.rs"), text);
    }

    let reference = work.path().join("reference");
    assert!(lancet_index(&model, &repo, &reference).success());

    // Kill the second job after its third commit.
    let resumed = work.path().join("resumed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lancet"))
        .args([
            "--model",
            model.to_str().unwrap(),
            "--db",
            resumed.to_str().unwrap(),
        ])
        .args([
            "index",
            repo.to_str().unwrap(),
            "--commit-files",
            "4",
            "--threads",
            "2",
        ])
        .env("HF_HUB_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains(" 3 commits") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();

    runtime().block_on(async {
        let open = |path: std::path::PathBuf| async move { open_chunks(&path).await };
        let expected = rows(&open(reference).await).await;
        let expected_files = by_path(&expected);
        assert_eq!(expected_files.len(), files);
        // The killed job's table opens and holds part of the tree, whole files only.
        let partial = rows(&open(resumed.clone()).await).await;
        let partial_files = by_path(&partial);
        assert!(
            !partial_files.is_empty() && partial_files.len() < files,
            "the job was not killed mid-way: {} files",
            partial_files.len()
        );
        for (path, rows) in &partial_files {
            assert!(
                same_rows(rows, &expected_files[path]),
                "{path} is partly written"
            );
        }

        assert!(lancet_index(&model, &repo, &resumed).success());
        let got = rows(&open(resumed).await).await;
        assert!(
            same_rows(&got, &expected),
            "the resumed run differs from a clean run"
        );
        let ids: BTreeSet<&str> = got.iter().map(|r| r.chunk_id.as_str()).collect();
        assert_eq!(ids.len(), got.len(), "duplicate chunk ids");
    });
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub(crate) fn index_command(model: &Path, repo: &Path, db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lancet"));
    command
        .args([
            "--model",
            model.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ])
        .args(["index", repo.to_str().unwrap(), "--repo", "r"])
        .args(["--commit-files", "3", "--threads", "2"])
        .env("HF_HUB_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// An update job (edits, deletions, additions) killed with SIGKILL at points spread over
/// its whole run (walk, embedding, commits, index building): after every kill the table
/// opens, has no duplicate ids, and holds every file fully at its old or fully at its
/// new state; a re-run then ends with the rows of a clean run. `LANCET_KILL_POINTS`
/// (default 6) sets how many points are tried.
#[test]
fn an_update_killed_at_many_points_leaves_every_file_old_or_new() {
    let kill_points: usize = std::env::var("LANCET_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 9);
    let function = |i: usize, j: usize, body: &str| {
        format!("pub fn g{i}_{j}(x: u64) -> u64 {{\n    {body} + {j}\n}}\n\n")
    };
    let (old_tree, new_tree) = (work.path().join("v1"), work.path().join("v2"));
    for i in 0..90 {
        let old: String = (0..3)
            .map(|j| function(i, j, &format!("x * {i}")))
            .collect();
        write(&old_tree, &format!("src/m{i:03}.rs"), &old);
        // v2: a third of the files edited, a sixth deleted, the rest unchanged.
        match i % 6 {
            0 | 1 => {
                let new: String = (0..3)
                    .map(|j| function(i, j, &format!("x / {}", i + 1)))
                    .collect();
                write(&new_tree, &format!("src/m{i:03}.rs"), new);
            }
            2 => {}
            _ => write(&new_tree, &format!("src/m{i:03}.rs"), &old),
        }
    }
    for i in 0..30 {
        write(
            &new_tree,
            &format!("src/added{i:03}.rs"),
            function(1000 + i, 0, "x"),
        );
    }

    let (old_db, new_db) = (work.path().join("old-db"), work.path().join("new-db"));
    assert!(index_command(&model, &old_tree, &old_db)
        .status()
        .unwrap()
        .success());
    assert!(index_command(&model, &new_tree, &new_db)
        .status()
        .unwrap()
        .success());
    // The old table has a saved hot index, so the update ends by catching it up and
    // saving a new snapshot: kills land in that phase too.
    runtime().block_on(async {
        let table = open_chunks(&old_db).await;
        table
            .build_hot_index(&HotIndexOptions::default())
            .await
            .unwrap();
    });
    // How long the update takes, to spread the kills over it.
    let probe = work.path().join("probe");
    copy_dir(&old_db, &probe);
    let started = std::time::Instant::now();
    assert!(index_command(&model, &new_tree, &probe)
        .status()
        .unwrap()
        .success());
    let duration = started.elapsed();

    let rt = runtime();
    let read = |db: std::path::PathBuf| rt.block_on(async { rows(&open_chunks(&db).await).await });
    let old_files = by_path(&read(old_db.clone()));
    let expected = read(new_db);
    let new_files = by_path(&expected);
    assert!(same_rows(&read(probe), &expected));

    for point in 0..kill_points {
        let db = work.path().join(format!("killed-{point}"));
        copy_dir(&old_db, &db);
        let mut child = index_command(&model, &new_tree, &db).spawn().unwrap();
        std::thread::sleep(duration.mul_f64((point as f64 + 0.5) / kill_points as f64));
        child.kill().unwrap();
        child.wait().unwrap();

        let after = read(db.clone());
        let ids: BTreeSet<&str> = after.iter().map(|r| r.chunk_id.as_str()).collect();
        assert_eq!(ids.len(), after.len(), "kill {point}: duplicate chunk ids");
        for (path, rows) in by_path(&after) {
            assert!(
                old_files
                    .get(&path)
                    .is_some_and(|old| same_rows(old, &rows))
                    || new_files
                        .get(&path)
                        .is_some_and(|new| same_rows(new, &rows)),
                "kill {point}: {path} is neither fully old nor fully new: {rows:?}, new {:?}",
                new_files.get(&path)
            );
        }
        // The hot index opens (a torn snapshot would be rebuilt) and answers for exactly
        // the table's rows.
        let hot_rows = rt.block_on(async {
            open_chunks(&db)
                .await
                .open_hot_index(&HotIndexOptions::default())
                .await
                .unwrap()
                .rows
        });
        assert_eq!(
            hot_rows as usize,
            after.len(),
            "kill {point}: hot index rows"
        );
        assert!(index_command(&model, &new_tree, &db)
            .status()
            .unwrap()
            .success());
        assert!(
            same_rows(&read(db), &expected),
            "kill {point}: the re-run differs from a clean run"
        );
    }
}

#[test]
fn a_writer_with_an_old_handle_reads_the_latest_commit_and_adds_no_duplicates() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        write(&repo, "src/a.rs", "pub fn alpha() -> u32 {\n    1\n}\n");
        let encoder = Arc::new(HashEncoder::new(32));
        let db = dir.path().join("db");
        // A long-lived handle (a service's), opened before another writer's commit.
        let old = table_for(&db, &encoder).await;
        let other = open_chunks(&db).await;
        index(&other, &encoder, &repo).await;
        write(&repo, "src/b.rs", "pub fn beta() -> u32 {\n    2\n}\n");
        // The old handle's job must see a.rs as already indexed, not append it again.
        let summary = index(&old, &encoder, &repo).await;
        assert_eq!(summary.files_unchanged, 1, "{summary}");
        assert_eq!(summary.files_indexed, 1, "{summary}");
        let stored = rows(&open_chunks(&db).await).await;
        let ids: BTreeSet<&str> = stored.iter().map(|r| r.chunk_id.as_str()).collect();
        assert_eq!(ids.len(), stored.len(), "duplicate chunk ids");
        assert_eq!(stored.len(), 2);
    });
}

//! The watcher: created, edited, renamed and deleted files reach the index; a burst of
//! 200 files (a branch switch) lands as one commit; another writer is refused while it
//! runs, naming it.

use crate::ingest::{open_chunks, table_for};
use crate::support::cli::{lancet, lancet_command, stderr};
use crate::support::tiny_model::write_tiny_model;
use crate::support::{runtime, write, HashEncoder};
use lancet::engine::ingest::{
    content_hash, watch_directory, IngestOptions, IngestSummary, WatchEvent, WatchOptions,
};
use lancet::udf::Encoder;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// What the watcher reported: the event's name, its paths, its run's summary and the
/// versions an optimization removed.
type Reported = (&'static str, Vec<String>, IngestSummary, u64);

fn next(events: &mpsc::Receiver<Reported>) -> Reported {
    events
        .recv_timeout(Duration::from_secs(120))
        .expect("the watcher reported nothing for two minutes")
}

/// Path to content hash of repository `r` in the database at `db`, read by a handle of
/// its own (as a searching process would).
fn indexed(db: &Path) -> BTreeMap<String, String> {
    runtime().block_on(async {
        let table = open_chunks(db).await;
        table.file_hashes("r").await.unwrap().into_iter().collect()
    })
}

/// A running watcher: what it reports, the switch that stops it, and its task.
type Running = (
    mpsc::Receiver<Reported>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<lancet::engine::Result<()>>,
);

/// Starts `watch_directory` over `repo` (repository `r`) on `rt`.
fn start_watcher(
    rt: &tokio::runtime::Runtime,
    table: lancet::engine::ChunkTable,
    encoder: Arc<dyn Encoder>,
    repo: &Path,
    watch: WatchOptions,
) -> Running {
    let (tell, events) = mpsc::channel::<Reported>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watched = repo.to_path_buf();
    let watcher = rt.spawn(async move {
        let options = IngestOptions {
            repo: "r".into(),
            threads: 2,
            chunk_tokens: 92,
            ..IngestOptions::default()
        };
        let mut report = |event: WatchEvent<'_>| {
            let reported = match event {
                WatchEvent::CaughtUp(s) => ("caught_up", Vec::new(), s.clone(), 0),
                WatchEvent::Indexed { paths, summary } => {
                    ("indexed", paths.to_vec(), summary.clone(), 0)
                }
                WatchEvent::Optimized(report) => (
                    "optimized",
                    Vec::new(),
                    IngestSummary::default(),
                    report.versions_removed,
                ),
                WatchEvent::Failed(e) => {
                    ("failed", vec![e.to_string()], IngestSummary::default(), 0)
                }
            };
            let _ = tell.send(reported);
        };
        let stop = async {
            let _ = stopped.await;
        };
        watch_directory(
            &table,
            encoder,
            &watched,
            &options,
            &watch,
            stop,
            &mut report,
        )
        .await
    });
    (events, stop, watcher)
}

/// Versions of table `chunks` kept on disk under the database folder `db`.
fn versions_on_disk(db: &Path) -> usize {
    std::fs::read_dir(db.join("chunks.lance/_versions"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "manifest"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_watcher_follows_every_kind_of_change_and_takes_a_burst_as_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, db) = (dir.path().join("repo"), dir.path().join("db"));
    for name in ["a", "b", "c"] {
        write(
            &repo,
            &format!("src/{name}.rs"),
            format!("pub fn {name}() {{}}\n"),
        );
    }
    let rt = runtime();
    let encoder = Arc::new(HashEncoder::new(32));
    let table = rt.block_on(table_for(&db, &encoder));
    // A long quiet time: the 200 files below must land in one burst however slow the
    // machine is at writing them.
    let watch = WatchOptions {
        quiet: Duration::from_millis(700),
        max_wait: Duration::from_secs(10),
        ..WatchOptions::default()
    };
    let (events, stop, watcher) = start_watcher(&rt, table, encoder, &repo, watch);

    let (event, _, summary, _) = next(&events);
    assert_eq!(
        (event, summary.files_indexed),
        ("caught_up", 3),
        "{summary}"
    );

    // Create, edit, rename and delete, then wait for the index to show all four.
    write(&repo, "src/new.rs", "pub fn new() {}\n");
    write(&repo, "src/a.rs", "pub fn a() -> u32 { 2 }\n");
    std::fs::rename(repo.join("src/b.rs"), repo.join("src/renamed.rs")).unwrap();
    std::fs::remove_file(repo.join("src/c.rs")).unwrap();
    let expected: BTreeMap<String, String> = ["src/a.rs", "src/new.rs", "src/renamed.rs"]
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(repo.join(path)).unwrap();
            (path.to_string(), content_hash(&bytes))
        })
        .collect();
    let mut bursts = 0;
    while indexed(&db) != expected {
        let (event, paths, summary, _) = next(&events);
        assert_eq!(event, "indexed", "{paths:?} {summary}");
        bursts += 1;
        assert!(bursts <= 4, "four changes took {bursts} bursts");
    }

    // A branch switch: 200 files in a new folder, one burst, one commit.
    for i in 0..200 {
        write(
            &repo,
            &format!("gen/f{i:03}.rs"),
            format!("pub fn f{i}() {{}}\n"),
        );
    }
    let (event, paths, summary, _) = next(&events);
    assert_eq!(event, "indexed", "{paths:?}");
    assert_eq!(
        (summary.files_indexed, summary.commits),
        (200, 1),
        "{summary}"
    );
    let files: BTreeSet<String> = indexed(&db).into_keys().collect();
    assert_eq!(files.len(), 203);

    stop.send(()).unwrap();
    rt.block_on(watcher).unwrap().unwrap();
}

#[test]
fn lancet_watch_holds_the_writer_lock_and_reports_each_burst() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let m = model.to_str().unwrap();
    let repo = work.path().join("repo");
    write(&repo, "src/lib.rs", "pub fn first() {}\n");
    let mut child = lancet_command(
        &["--model", m, "watch", "--json", repo.to_str().unwrap()],
        work.path(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut event = || -> serde_json::Value {
        let line = lines.next().expect("watch ended").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let caught_up = event();
    assert_eq!(caught_up["event"], "caught_up", "{caught_up}");
    assert_eq!(caught_up["summary"]["files_indexed"], 1, "{caught_up}");

    // Another writer fails at once and names the watcher.
    let out = lancet(
        &["--model", m, "index", repo.to_str().unwrap()],
        work.path(),
    );
    assert!(!out.status.success());
    let pid = child.id().to_string();
    assert!(stderr(&out).contains(&pid), "{}", stderr(&out));

    write(&repo, "src/second.rs", "pub fn second() {}\n");
    let indexed = event();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(indexed["event"], "indexed", "{indexed}");
    assert_eq!(indexed["paths"], serde_json::json!(["src/second.rs"]));
    assert_eq!(indexed["summary"]["files_indexed"], 1, "{indexed}");
}

#[test]
fn once_edits_pause_for_the_retention_old_versions_go_and_the_index_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, db) = (dir.path().join("repo"), dir.path().join("db"));
    write(&repo, "src/lib.rs", "pub fn zero() {}\n");
    let rt = runtime();
    let encoder = Arc::new(HashEncoder::new(32));
    let table = rt.block_on(table_for(&db, &encoder));
    let watch = WatchOptions {
        quiet: Duration::from_millis(100),
        retention: Duration::from_secs(1),
        ..WatchOptions::default()
    };
    let (events, stop, watcher) = start_watcher(&rt, table, encoder, &repo, watch);
    assert_eq!(next(&events).0, "caught_up");

    // Eight edits, each waited for: eight commits, eight more versions.
    let mut text = String::new();
    for edit in 1..=8 {
        text = format!("pub fn edit_{edit}() -> u32 {{ {edit} }}\n");
        write(&repo, "src/lib.rs", &text);
        loop {
            let (event, paths, summary, _) = next(&events);
            if event == "indexed" && summary.files_indexed == 1 {
                break;
            }
            assert_ne!(event, "failed", "{paths:?}");
        }
    }
    let before = versions_on_disk(&db);
    assert!(before >= 9, "{before} versions after eight edits");

    // No edit for the retention: the watcher compacts and prunes on its own, then
    // prunes the compaction's own versions once they are as old: one version is left.
    let mut removed = 0;
    while versions_on_disk(&db) > 1 {
        let (event, paths, _, versions) = next(&events);
        assert!(
            event == "optimized",
            "{event} {paths:?} with no edit going on"
        );
        removed += versions;
    }
    assert!(removed >= 8, "{before} versions before, {removed} removed");
    let fragments = std::fs::read_dir(db.join("chunks.lance/data"))
        .unwrap()
        .count();
    assert_eq!(fragments, 1, "data files left beside the compacted one");
    let expected: BTreeMap<String, String> =
        [("src/lib.rs".to_string(), content_hash(text.as_bytes()))].into();
    assert_eq!(indexed(&db), expected);

    stop.send(()).unwrap();
    rt.block_on(watcher).unwrap().unwrap();
}

//! What file permissions and table versions the process cannot get around: unreadable
//! sources, a read-only database, a table written by a newer Lancet. The `lancet` binary
//! runs without root's permission override, so these tests mean the same as root (as CI
//! runs them) and as an ordinary user.

use crate::support::cli::{lancet_command, stderr, stdout};
use crate::support::tiny_model::write_tiny_model;
use crate::support::{runtime, write};
use lancet::schemas::{chunk_schema, TableMetadata};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

/// Runs `lancet` as the current user but, for root, without `CAP_DAC_OVERRIDE` and
/// `CAP_DAC_READ_SEARCH`: file permission bits then bind it as they bind anyone else.
fn lancet_bound_by_permissions(args: &[&str], cwd: &Path) -> Output {
    use std::os::unix::process::CommandExt;
    // linux/capability.h; the libc crate does not export capability numbers.
    const CAP_DAC_OVERRIDE: libc::c_ulong = 1;
    const CAP_DAC_READ_SEARCH: libc::c_ulong = 2;
    let mut command = lancet_command(args, cwd);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl,
    // which is async-signal-safe; dropping a capability from the bounding set means
    // root's next exec starts without it.
    unsafe {
        command.pre_exec(|| {
            if libc::geteuid() == 0 {
                for cap in [CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH] {
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
    command
        .output()
        .expect("run lancet without the permission override")
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every path under `root` with its size and modification time: what "wrote nothing"
/// is checked against.
fn tree_state(root: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    let mut state = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap()
                .display()
                .to_string();
            state.insert(rel, (meta.len(), meta.modified().unwrap()));
        }
    }
    state
}

/// Sets the mode of every folder and file under `root` (folders get `dir_mode`).
fn set_tree_mode(root: &Path, dir_mode: u32, file_mode: u32) {
    for rel in tree_state(root).keys() {
        let path = root.join(rel);
        let mode = if path.is_dir() { dir_mode } else { file_mode };
        set_mode(&path, mode);
    }
    set_mode(root, dir_mode);
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

/// Paths the table holds, sorted.
fn indexed_paths(db: &Path, model: &str) -> Vec<String> {
    let out = lancet_bound_by_permissions(
        &[
            "--db",
            db.to_str().unwrap(),
            "--model",
            model,
            "sql",
            "SELECT DISTINCT path FROM chunks ORDER BY path",
            "--json",
        ],
        db.parent().unwrap(),
    );
    let rows: Vec<serde_json::Value> = serde_json::from_value(json(&out)).unwrap();
    rows.iter()
        .map(|row| row["path"].as_str().unwrap().to_string())
        .collect()
}

/// An unreadable file or folder is counted as unreadable; what the table already held
/// for it stays (nothing says it changed); everything else is indexed as usual.
#[test]
fn unreadable_files_and_folders_are_counted_and_keep_their_rows() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let m = model.to_str().unwrap();
    let repo = work.path().join("repo");
    write(&repo, "src/open.rs", "pub fn open() -> u8 {\n    1\n}\n");
    write(
        &repo,
        "src/locked.rs",
        "pub fn locked() -> u8 {\n    2\n}\n",
    );
    write(&repo, "private/a.py", "def a():\n    return 3\n");
    write(&repo, "private/deep/b.go", "package deep\n\nfunc B() {}\n");
    let r = repo.to_str().unwrap();
    // The database sits outside the tree, so that the tree's root can be made unreadable.
    let db = work.path().join("db");
    let d = db.to_str().unwrap();
    let all = [
        "private/a.py",
        "private/deep/b.go",
        "src/locked.rs",
        "src/open.rs",
    ];

    // First run, nothing readable but one file: the others are counted, not indexed.
    set_mode(&repo.join("src/locked.rs"), 0o000);
    set_mode(&repo.join("private"), 0o000);
    let first = json(&lancet_bound_by_permissions(
        &["--db", d, "--model", m, "index", r, "--json"],
        work.path(),
    ));
    assert_eq!(first["files_indexed"], 1, "{first}");
    assert_eq!(first["skipped"]["unreadable"], 2, "{first}");
    set_mode(&repo.join("private"), 0o755);
    assert_eq!(indexed_paths(&db, m), ["src/open.rs"]);

    // Everything readable: all four indexed.
    set_mode(&repo.join("src/locked.rs"), 0o644);
    let second = json(&lancet_bound_by_permissions(
        &["--db", d, "--model", m, "index", r, "--json"],
        work.path(),
    ));
    assert_eq!(second["files_indexed"], 3, "{second}");
    assert_eq!(indexed_paths(&db, m), all);

    // Unreadable again, one file edited, one deleted elsewhere: the unreadable ones keep
    // their rows, the edit lands, the deletion lands.
    set_mode(&repo.join("src/locked.rs"), 0o000);
    set_mode(&repo.join("private/deep"), 0o000);
    write(&repo, "src/open.rs", "pub fn open() -> u8 {\n    10\n}\n");
    std::fs::remove_file(repo.join("private/a.py")).unwrap();
    let third = json(&lancet_bound_by_permissions(
        &["--db", d, "--model", m, "index", r, "--json"],
        work.path(),
    ));
    set_mode(&repo.join("private/deep"), 0o755);
    set_mode(&repo.join("src/locked.rs"), 0o644);
    assert_eq!(third["skipped"]["unreadable"], 2, "{third}");
    assert_eq!(third["files_indexed"], 1, "{third}");
    assert_eq!(third["files_deleted"], 1, "{third}");
    assert_eq!(
        indexed_paths(&db, m),
        ["private/deep/b.go", "src/locked.rs", "src/open.rs"]
    );

    // The root itself unreadable: nothing can be told about any file, so nothing goes.
    set_mode(&repo, 0o000);
    let fourth = json(&lancet_bound_by_permissions(
        &["--db", d, "--model", m, "index", r, "--json"],
        work.path(),
    ));
    set_mode(&repo, 0o755);
    assert_eq!(fourth["skipped"]["unreadable"], 1, "{fourth}");
    assert_eq!(fourth["files_deleted"], 0, "{fourth}");
    assert_eq!(
        indexed_paths(&db, m),
        ["private/deep/b.go", "src/locked.rs", "src/open.rs"]
    );
}

/// A database the user may read but not write: searches, status and SQL work; index and
/// optimize fail with a message naming the folder, and nothing in it changes.
#[test]
fn a_read_only_database_answers_queries_and_refuses_writes_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let m = model.to_str().unwrap();
    let repo = work.path().join("repo");
    for i in 0..5 {
        write(
            &repo,
            &format!("src/f{i}.rs"),
            format!("pub fn f{i}() -> u32 {{\n    {i}\n}}\n"),
        );
    }
    let r = repo.to_str().unwrap();
    json(&lancet_bound_by_permissions(
        &["--model", m, "index", r, "--json"],
        work.path(),
    ));
    let db = repo.join(".lancet");
    write(&repo, "src/new.rs", "pub fn new() {}\n");
    set_tree_mode(&db, 0o555, 0o444);
    let before = tree_state(&db);

    let hits = lancet_bound_by_permissions(&["--model", m, "search", "f3", "--json"], &repo);
    let status = lancet_bound_by_permissions(&["status", "--json"], &repo);
    let sql = lancet_bound_by_permissions(
        &[
            "--model",
            m,
            "sql",
            "SELECT count(*) AS n FROM chunks",
            "--json",
        ],
        &repo,
    );
    let index = lancet_bound_by_permissions(&["--model", m, "index", r], work.path());
    let optimize = lancet_bound_by_permissions(&["optimize"], &repo);
    let after = tree_state(&db);
    set_tree_mode(&db, 0o755, 0o644);

    assert!(hits.status.success(), "{}", stderr(&hits));
    let found = json(&hits);
    let found = found.as_array().expect("a JSON array of hits");
    assert!(
        !found.is_empty(),
        "a read-only database still answers searches"
    );
    assert!(found.iter().all(|h| h["path"].is_string()), "{found:?}");
    assert_eq!(json(&status)["rows"], 5);
    assert!(sql.status.success(), "{}", stderr(&sql));
    assert!(
        stdout(&sql).contains('5'),
        "count(*) of 5 rows: {}",
        stdout(&sql)
    );
    for (what, out) in [("index", &index), ("optimize", &optimize)] {
        assert!(!out.status.success(), "{what} succeeded on a read-only db");
        let message = stderr(out);
        assert!(
            message.contains("read-only") && message.contains(".lancet"),
            "{what}: {message}"
        );
        assert!(!message.contains("panicked"), "{what}: {message}");
    }
    assert_eq!(after, before, "something in the read-only database changed");

    // Writable again, the same run succeeds: the refusal left nothing half-done.
    let summary = json(&lancet_bound_by_permissions(
        &["--model", m, "index", r, "--json"],
        work.path(),
    ));
    assert_eq!(summary["files_indexed"], 1, "{summary}");
}

/// A table whose schema version is newer than this build's is refused by every command
/// with a message saying so, and is left as it was.
#[test]
fn a_table_from_a_newer_lancet_is_refused_by_every_command() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let m = model.to_str().unwrap();
    let repo = work.path().join("repo");
    write(&repo, "src/lib.rs", "pub fn lib() {}\n");
    let r = repo.to_str().unwrap();
    json(&lancet_bound_by_permissions(
        &["--model", m, "index", r, "--json"],
        work.path(),
    ));

    // The same table as a future Lancet would write it: its schema version one ahead.
    let future = work.path().join("future");
    let version = runtime().block_on(async {
        let current = lancedb::connect(repo.join(".lancet").to_str().unwrap())
            .execute()
            .await
            .unwrap();
        let schema = current
            .open_table("chunks")
            .execute()
            .await
            .unwrap()
            .schema()
            .await
            .unwrap();
        let mut metadata = TableMetadata::from_schema(&schema).unwrap();
        metadata.schema_version += 1;
        let db = lancedb::connect(future.to_str().unwrap())
            .execute()
            .await
            .unwrap();
        let table = db
            .create_empty_table("chunks", std::sync::Arc::new(chunk_schema(&metadata)))
            .execute()
            .await
            .unwrap();
        table.version().await.unwrap()
    });
    let before = tree_state(&future);
    let f = future.to_str().unwrap();
    for args in [
        vec!["--db", f, "status"],
        vec!["--db", f, "--model", m, "search", "lib"],
        vec!["--db", f, "--model", m, "index", r],
        vec!["--db", f, "optimize"],
        vec![
            "--db",
            f,
            "--model",
            m,
            "sql",
            "SELECT count(*) FROM chunks",
        ],
    ] {
        let out = lancet_bound_by_permissions(&args, work.path());
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&out).contains("newer than this build"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(tree_state(&future), before, "the newer table was written");
    let after = runtime().block_on(async {
        let db = lancedb::connect(f).execute().await.unwrap();
        let table = db.open_table("chunks").execute().await.unwrap();
        table.version().await.unwrap()
    });
    assert_eq!(after, version);
}

//! The order in which rows committed without vectors are embedded: the files someone
//! is working on first. Uncommitted changes (by modification time), then files by their
//! last commit in the git history, then the rest by modification time. Without git (or
//! outside a repository) it is modification time alone.

use crate::store::PendingRow;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Commits of history read for the order: enough to rank the files being worked on,
/// bounded so that a huge history costs little.
const HISTORY_COMMITS: &str = "2000";

/// How soon a file's rows are embedded; smaller is sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// Changed in the work tree, not committed.
    Uncommitted(Reverse<Option<SystemTime>>),
    /// Last committed at this time (seconds since the epoch).
    Committed(Reverse<i64>),
    /// Not in the recent history.
    Other(Reverse<Option<SystemTime>>),
}

/// `rows` in the order they should get their vectors; rows of one file stay together in
/// the order given.
pub(super) fn most_recent_first(root: &Path, mut rows: Vec<PendingRow>) -> Vec<PendingRow> {
    let history = GitHistory::read(root);
    let mut ranks: HashMap<String, Rank> = HashMap::new();
    for row in &rows {
        if !ranks.contains_key(&row.path) {
            ranks.insert(row.path.clone(), history.rank(root, &row.path));
        }
    }
    // A stable sort keeps each file's rows in their given order.
    rows.sort_by(|a, b| {
        ranks[&a.path]
            .cmp(&ranks[&b.path])
            .then(a.path.cmp(&b.path))
    });
    rows
}

/// What git says about the files under a root: uncommitted changes and the time of each
/// path's last commit, paths relative to the root.
#[derive(Debug, Default)]
struct GitHistory {
    uncommitted: std::collections::HashSet<String>,
    last_commit: HashMap<String, i64>,
}

impl GitHistory {
    /// Reads it, or nothing when git is missing or the root is not in a repository.
    fn read(root: &Path) -> Self {
        let mut history = GitHistory::default();
        if let Some(out) = git(
            root,
            &[
                "log",
                "--relative",
                "--name-only",
                "--no-renames",
                "--format=%x00%ct",
                "-n",
                HISTORY_COMMITS,
            ],
        ) {
            let mut time = 0i64;
            for line in out.lines() {
                if let Some(stamp) = line.strip_prefix('\0') {
                    time = stamp.trim().parse().unwrap_or(0);
                } else if !line.is_empty() {
                    history.last_commit.entry(line.to_string()).or_insert(time);
                }
            }
        }
        let prefix = git(root, &["rev-parse", "--show-prefix"]).unwrap_or_default();
        let prefix = prefix.trim_end_matches('\n');
        if let Some(out) = git(
            root,
            &[
                "status",
                "--porcelain",
                "-z",
                "--no-renames",
                "--untracked-files=all",
                ".",
            ],
        ) {
            // `XY path` entries, paths relative to the repository's top folder.
            history.uncommitted.extend(
                out.split('\0')
                    .filter_map(|entry| entry.get(3..)?.strip_prefix(prefix))
                    .map(str::to_string),
            );
        }
        history
    }

    fn rank(&self, root: &Path, path: &str) -> Rank {
        let modified = || {
            std::fs::metadata(root.join(path))
                .and_then(|m| m.modified())
                .ok()
        };
        if self.uncommitted.contains(path) {
            Rank::Uncommitted(Reverse(modified()))
        } else if let Some(&time) = self.last_commit.get(path) {
            Rank::Committed(Reverse(time))
        } else {
            Rank::Other(Reverse(modified()))
        }
    }
}

/// The output of `git ARGS` run in `root`, when it succeeds.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(paths: &[&str]) -> Vec<PendingRow> {
        paths
            .iter()
            .enumerate()
            .map(|(i, path)| PendingRow {
                chunk_id: format!("c{i}"),
                path: path.to_string(),
            })
            .collect()
    }

    fn order(root: &Path, paths: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = most_recent_first(root, rows(paths))
            .into_iter()
            .map(|r| r.path)
            .collect();
        out.dedup();
        out
    }

    fn run_git(root: &Path, args: &[&str], date: &str) {
        let status = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    fn set_mtime(path: &Path, seconds_ago: u64) {
        let time = SystemTime::now() - std::time::Duration::from_secs(seconds_ago);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    #[test]
    fn without_git_the_newest_files_come_first_and_a_file_stays_together() {
        let dir = tempfile::tempdir().unwrap();
        for (name, age) in [("old.rs", 300), ("new.rs", 10), ("mid.rs", 100)] {
            std::fs::write(dir.path().join(name), "fn x() {}\n").unwrap();
            set_mtime(&dir.path().join(name), age);
        }
        let ordered = most_recent_first(
            dir.path(),
            rows(&["old.rs", "mid.rs", "new.rs", "old.rs", "gone.rs", "new.rs"]),
        );
        let paths: Vec<&str> = ordered.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["new.rs", "new.rs", "mid.rs", "old.rs", "old.rs", "gone.rs"]
        );
        // Rows of one file keep their order.
        let ids: Vec<&str> = ordered.iter().map(|r| r.chunk_id.as_str()).collect();
        assert_eq!(ids[..2], ["c2", "c5"]);
        assert_eq!(ids[3..5], ["c0", "c3"]);
    }

    #[test]
    fn with_git_uncommitted_changes_come_first_then_the_latest_commits() {
        if git(Path::new("."), &["--version"]).is_none() {
            eprintln!("git is not installed; skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        run_git(root, &["init", "-q"], "2026-01-01T00:00:00Z");
        for (name, date) in [
            ("src/first.rs", "2026-01-01T00:00:00Z"),
            ("src/second.rs", "2026-02-01T00:00:00Z"),
            ("src/third.rs", "2026-03-01T00:00:00Z"),
        ] {
            std::fs::create_dir_all(root.join("src")).unwrap();
            std::fs::write(root.join(name), format!("// {name}\n")).unwrap();
            run_git(root, &["add", name], date);
            run_git(root, &["commit", "-q", "-m", name], date);
        }
        // A fresh clone gives every file the same modification time: git decides.
        for name in ["src/first.rs", "src/second.rs", "src/third.rs"] {
            set_mtime(&root.join(name), 50);
        }
        std::fs::write(root.join("src/first.rs"), "// edited\n").unwrap();
        std::fs::write(root.join("src/untracked.rs"), "// new\n").unwrap();
        set_mtime(&root.join("src/untracked.rs"), 20);
        assert_eq!(
            order(
                root,
                &[
                    "src/second.rs",
                    "src/untracked.rs",
                    "src/third.rs",
                    "src/first.rs"
                ]
            ),
            [
                "src/first.rs",
                "src/untracked.rs",
                "src/third.rs",
                "src/second.rs"
            ]
        );
        // From a subfolder, paths are relative to it.
        assert_eq!(
            order(&root.join("src"), &["second.rs", "third.rs", "first.rs"]),
            ["first.rs", "third.rs", "second.rs"]
        );
    }
}

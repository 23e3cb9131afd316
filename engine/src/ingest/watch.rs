//! Keeping an index current while people edit: file-system notifications gathered into
//! bursts (a save, a branch switch), each burst indexed as one incremental run limited
//! to the paths it touched, committed at once.

use super::pipeline::run_locked;
use super::{IngestOptions, IngestSummary, VectorTiming};
use crate::error::{Error, Result};
use crate::store::{ChunkTable, IndexOptions, IndexReport, IndexUpdate};
use lancet_udf::Encoder;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How changes are gathered into bursts.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time that ends a burst.
    pub quiet: Duration,
    /// Longest a burst grows before it is indexed anyway (a build writing for minutes
    /// must not keep the index stale).
    pub max_wait: Duration,
    /// A burst touching more paths than this re-indexes the whole tree: one walk costs
    /// less than thousands of scopes.
    pub max_paths: usize,
    /// Compact the table, fold new rows into its indexes and remove old versions after
    /// this many commits: a commit per save would otherwise leave thousands of small
    /// fragments and versions.
    pub optimize_every: usize,
    /// Versions younger than this are kept: a reader of another process holds the
    /// version it opened for one query plus its consistency interval (5 s by default).
    /// Once no edit has come for this long, the table is compacted and older versions
    /// removed, and after as long again the compaction's own, so the folder settles
    /// back to about a fresh index's size.
    pub retention: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            quiet: Duration::from_millis(200),
            max_wait: Duration::from_secs(2),
            max_paths: 10_000,
            optimize_every: 64,
            retention: Duration::from_secs(30),
        }
    }
}

/// What the watcher reports.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// The tree was indexed once as the watch began (changes made while nobody
    /// watched).
    CaughtUp(&'a IngestSummary),
    /// A burst was indexed: the paths it touched (empty: the whole tree) and the run.
    Indexed {
        /// Paths re-indexed, relative to the root; empty when the whole tree was.
        paths: &'a [String],
        /// The run's summary.
        summary: &'a IngestSummary,
    },
    /// The table was tidied: compacted, its indexes brought up to date and versions
    /// older than the retention removed (after `optimize_every` commits, and once
    /// edits paused for the retention), or only old versions removed (once more after
    /// that, when the optimization's own versions have aged).
    Optimized(&'a IndexReport),
    /// A burst could not be indexed; its paths join the next burst's.
    Failed(&'a Error),
}

/// Indexes `root` into `table`, then keeps it current until `stop` completes: each
/// burst of changes becomes one incremental run over the paths it touched (deleted
/// files removed, renamed ones moved), usually one commit. The table's writer lock is
/// held throughout, so another writer fails at once, naming this process.
pub async fn watch_directory(
    table: &ChunkTable,
    encoder: Arc<dyn Encoder>,
    root: &Path,
    options: &IngestOptions,
    watch: &WatchOptions,
    stop: impl Future<Output = ()>,
    on_event: &mut (dyn FnMut(WatchEvent<'_>) + Send),
) -> Result<()> {
    table.check_encoder(encoder.identity())?;
    table.check_writable()?;
    let writer = table.lock_for_writing().await?;
    let root = root.canonicalize().map_err(|source| Error::Io {
        path: root.display().to_string(),
        source,
    })?;
    // Watching starts before the first run: what changes during it is not lost.
    let (events, mut inbox) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let _ = events.send(event);
    })
    .map_err(|e| watch_error(&root, e))?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|e| watch_error(&root, e))?;

    let exclude = options.excluded_folders();
    let summary = run_locked(table, encoder.clone(), &root, options, &mut |_| {}, &writer).await?;
    on_event(WatchEvent::CaughtUp(&summary));
    // Searches use the table's indexes: build what is due before the first edit.
    if let Err(e) = table.ensure_indexes(&IndexOptions::default()).await {
        on_event(WatchEvent::Failed(&e));
    }
    let mut commits_since_optimize = 0;
    // What the table needs once edits pause (from `quiet_since`, for the retention).
    let mut tidy = if summary.commits > 0 {
        Tidy::Optimize
    } else {
        Tidy::Nothing
    };
    let mut quiet_since = Instant::now();
    // Paths of a burst that failed, tried again with the next (empty: the whole tree).
    let mut retry: Option<Vec<String>> = None;

    tokio::pin!(stop);
    loop {
        let tidy_at = tokio::time::Instant::from_std(quiet_since + watch.retention + SETTLE_MARGIN);
        let first = tokio::select! {
            () = &mut stop => return Ok(()),
            first = inbox.recv() => first,
            () = tokio::time::sleep_until(tidy_at), if tidy != Tidy::Nothing => {
                commits_since_optimize = 0;
                tidy = match tidy {
                    Tidy::Optimize => {
                        optimize(table, watch, IndexUpdate::Merge, on_event).await;
                        Tidy::Prune
                    }
                    _ => {
                        prune(table, watch, on_event).await;
                        Tidy::Nothing
                    }
                };
                quiet_since = Instant::now();
                continue;
            }
        };
        let Some(first) = first else {
            return Err(Error::Ingest("the file-system watcher stopped".into()));
        };
        let mut burst = Burst::new(&root, &exclude, options.walk.include_hidden);
        burst.add(first);
        let started = Instant::now();
        loop {
            let left = watch.max_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(watch.quiet.min(left), inbox.recv()).await {
                Ok(Some(event)) => burst.add(event),
                Ok(None) => return Err(Error::Ingest("the file-system watcher stopped".into())),
                Err(_quiet) => break,
            }
        }
        let Some(paths) = merge(burst.scope(watch.max_paths), retry.take()) else {
            continue; // nothing the index holds or would hold
        };
        let mut scoped = options.clone();
        scoped.walk.only = paths.clone();
        // An edit is small: one commit with its vectors, rather than two.
        scoped.vectors = VectorTiming::WithText;
        match run_locked(table, encoder.clone(), &root, &scoped, &mut |_| {}, &writer).await {
            Ok(summary) => {
                commits_since_optimize += summary.commits;
                if summary.commits > 0 {
                    tidy = Tidy::Optimize;
                    quiet_since = Instant::now();
                }
                on_event(WatchEvent::Indexed {
                    paths: &paths,
                    summary: &summary,
                });
            }
            Err(e) => {
                on_event(WatchEvent::Failed(&e));
                retry = Some(paths);
            }
        }
        if commits_since_optimize >= watch.optimize_every.max(1) {
            commits_since_optimize = 0;
            optimize(table, watch, IndexUpdate::Append, on_event).await;
        }
    }
}

/// Past the retention, a little more: the versions it protects must be older than it
/// when the pruning looks.
const SETTLE_MARGIN: Duration = Duration::from_millis(500);

/// What the table needs once edits have paused for the retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tidy {
    /// Nothing: it is compact and holds no version but the latest.
    Nothing,
    /// Index segments merged, fragments compacted, versions older than the retention
    /// removed.
    Optimize,
    /// The versions that optimization wrote on its way, once they are as old as the
    /// retention.
    Prune,
}

/// Removes versions older than the retention, reporting what went or why it failed.
async fn prune(
    table: &ChunkTable,
    watch: &WatchOptions,
    on_event: &mut (dyn FnMut(WatchEvent<'_>) + Send),
) {
    match table.prune_versions(watch.retention).await {
        Ok((versions_removed, bytes_removed)) => on_event(WatchEvent::Optimized(&IndexReport {
            versions_removed,
            bytes_removed,
            ..IndexReport::default()
        })),
        Err(e) => on_event(WatchEvent::Failed(&e)),
    }
}

/// Compacts, updates the indexes and prunes versions older than the retention,
/// reporting what it did or why it failed (the watch goes on either way).
async fn optimize(
    table: &ChunkTable,
    watch: &WatchOptions,
    update: IndexUpdate,
    on_event: &mut (dyn FnMut(WatchEvent<'_>) + Send),
) {
    match table
        .optimize_with_retention(&IndexOptions::default(), watch.retention, update)
        .await
    {
        Ok(report) => on_event(WatchEvent::Optimized(&report)),
        Err(e) => on_event(WatchEvent::Failed(&e)),
    }
}

/// The union of two run scopes (`Some(empty)` is the whole tree).
fn merge(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    match (a, b) {
        (Some(a), Some(b)) if a.is_empty() || b.is_empty() => Some(Vec::new()),
        (Some(mut a), Some(b)) => {
            a.extend(b);
            a.sort();
            a.dedup();
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

fn watch_error(root: &Path, e: notify::Error) -> Error {
    Error::Ingest(format!(
        "cannot watch {}: {e} (on Linux, raise fs.inotify.max_user_watches for large trees)",
        root.display()
    ))
}

/// The paths one burst of notifications touched.
struct Burst<'a> {
    root: &'a Path,
    exclude: &'a [PathBuf],
    /// Whether the walk takes hidden files (else a change to one is nothing to index).
    include_hidden: bool,
    paths: BTreeSet<String>,
    /// Something only a whole-tree run answers: lost events, an ignore file edited,
    /// the root itself changed.
    whole_tree: bool,
}

impl<'a> Burst<'a> {
    fn new(root: &'a Path, exclude: &'a [PathBuf], include_hidden: bool) -> Self {
        Burst {
            root,
            exclude,
            include_hidden,
            paths: BTreeSet::new(),
            whole_tree: false,
        }
    }

    fn add(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("file-system watcher: {e}; re-indexing the whole tree");
                self.whole_tree = true;
                return;
            }
        };
        if event.need_rescan() {
            self.whole_tree = true;
        }
        // Opening and reading change nothing; a write ends with a close.
        if let EventKind::Access(access) = event.kind {
            if access != AccessKind::Close(AccessMode::Write) {
                return;
            }
        }
        for path in &event.paths {
            self.add_path(path);
        }
    }

    fn add_path(&mut self, path: &Path) {
        if self.exclude.iter().any(|folder| path.starts_with(folder)) {
            return; // the index's own writes
        }
        let Ok(rel) = path.strip_prefix(self.root) else {
            return;
        };
        let mut parts = Vec::new();
        for component in rel.components() {
            match component {
                Component::Normal(part) if part == ".git" => return,
                Component::Normal(part) => match part.to_str() {
                    Some(part) => parts.push(part),
                    None => return, // the walk skips names that are not UTF-8
                },
                _ => return,
            }
        }
        match parts.last() {
            None => self.whole_tree = true,
            Some(&(".gitignore" | ".ignore")) => self.whole_tree = true,
            Some(_) if !self.include_hidden && parts.iter().any(|p| p.starts_with('.')) => {}
            Some(_) => {
                self.paths.insert(parts.join("/"));
            }
        }
    }

    /// The scope of the run that indexes the burst: `Some(empty)` for the whole tree,
    /// `None` when nothing was touched.
    fn scope(self, max_paths: usize) -> Option<Vec<String>> {
        if self.whole_tree || self.paths.len() > max_paths {
            return Some(Vec::new());
        }
        (!self.paths.is_empty()).then(|| self.paths.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{merge, Burst};
    use std::path::{Path, PathBuf};

    fn event(paths: &[&str]) -> notify::Result<notify::Event> {
        let mut event = notify::Event::new(notify::EventKind::Any);
        event.paths = paths.iter().map(PathBuf::from).collect();
        Ok(event)
    }

    #[test]
    fn a_failed_burst_joins_the_next() {
        let paths = |p: &[&str]| Some(p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            merge(paths(&["b", "a"]), paths(&["a", "c"])),
            paths(&["a", "b", "c"])
        );
        assert_eq!(
            merge(paths(&["a"]), Some(vec![])),
            Some(vec![]),
            "the whole tree"
        );
        assert_eq!(merge(None, paths(&["a"])), paths(&["a"]));
        assert_eq!(merge(None, None), None);
    }

    #[test]
    fn a_burst_keeps_the_tree_paths_and_drops_the_rest() {
        let root = Path::new("/repo");
        let skipped = [PathBuf::from("/repo/.lancet"), PathBuf::from("/repo/cache")];
        let mut burst = Burst::new(root, &skipped, false);
        burst.add(event(&["/repo/src/a.rs", "/repo/src/b.rs"]));
        burst.add(event(&["/repo/src/a.rs"]));
        burst.add(event(&["/repo/.git/index", "/repo/.lancet/chunks.lance/x"]));
        burst.add(event(&["/repo/cache/0f/entry", "/repo/cache/model.json"]));
        burst.add(event(&["/repo/.cache/tmp.rs", "/repo/src/.hidden.rs"]));
        burst.add(event(&["/elsewhere/c.rs"]));
        assert_eq!(
            burst.scope(10),
            Some(vec!["src/a.rs".to_string(), "src/b.rs".to_string()])
        );

        let mut burst = Burst::new(root, &skipped, false);
        burst.add(event(&["/repo/.git/HEAD"]));
        assert_eq!(burst.scope(10), None, "nothing the index holds");

        let mut burst = Burst::new(root, &[], false);
        burst.add(event(&["/repo/sub/.gitignore"]));
        assert_eq!(burst.scope(10), Some(vec![]), "ignore rules changed");

        let mut burst = Burst::new(root, &[], false);
        burst.add(event(&["/repo/a.rs", "/repo/b.rs", "/repo/c.rs"]));
        assert_eq!(burst.scope(2), Some(vec![]), "too many paths");

        let mut burst = Burst::new(root, &[], false);
        burst.add(Err(notify::Error::generic("queue overflow")));
        assert_eq!(burst.scope(10), Some(vec![]), "lost events");
    }
}

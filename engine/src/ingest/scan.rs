//! The first stage of ingestion: walk the tree, then read, hash and chunk files on a
//! pool of threads, sending each file's outcome through a bounded queue.

use super::pending::{chunk_rows, PendingChunk};
use super::summary::SkipReason;
use super::walk::{read_source, relative_str, walk, Candidate, WalkItem, WalkOptions};
use lancet_chunk::{Chunker, Chunking};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::mpsc as queue;

/// A file read and chunked.
#[derive(Debug, Clone)]
pub struct ChunkedFile {
    /// Path relative to the root.
    pub rel_path: String,
    /// Hash of its bytes.
    pub hash: String,
    /// Bytes read.
    pub bytes: u64,
    /// Invalid UTF-8 was replaced.
    pub lossy: bool,
    /// The parser met syntax errors (the chunks are still usable).
    pub syntax_errors: bool,
    /// Its chunks.
    pub chunks: Vec<PendingChunk>,
}

/// What became of one file.
#[derive(Debug)]
pub enum FileOutcome {
    /// Not indexed, with the reason and the path relative to the root (`None` when it
    /// has no UTF-8 name there).
    Skipped(SkipReason, Option<String>),
    /// A file or folder that exists but could not be read (permissions, an I/O error):
    /// what the table holds for it is kept, since it is not known to have changed.
    /// `None` when the walk could not name the path (or it is the root): keep everything.
    Unreadable(Option<String>),
    /// Its hash matches the table: nothing to do.
    Unchanged(String),
    /// New or changed: chunked and ready to embed.
    Chunked(ChunkedFile),
}

/// A message of the scan.
#[derive(Debug)]
pub enum ScanEvent {
    /// The walk is complete and found this many files to read.
    Found(usize),
    /// One file's outcome.
    File(FileOutcome),
}

/// Settings of a scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Repository name stored with each chunk.
    pub repo: String,
    /// What the walk skips.
    pub walk: WalkOptions,
    /// Folder never walked.
    pub exclude: Vec<PathBuf>,
    /// Reader threads (0: one per core).
    pub threads: usize,
    /// How files are cut.
    pub chunker: Chunker,
    /// Outcomes buffered between the readers and the consumer.
    pub queue: usize,
}

/// Starts scanning `root` on background threads. Files whose hash equals `known[path]`
/// are reported unchanged without being chunked. Dropping the receiver stops the scan.
pub fn scan(
    root: PathBuf,
    options: ScanOptions,
    known: Arc<HashMap<String, String>>,
) -> queue::Receiver<ScanEvent> {
    let (events, receiver) = queue::channel(options.queue.max(1));
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    std::thread::Builder::new()
        .name("lancet-walk".into())
        .spawn(move || walk_and_dispatch(root, options, known, threads, events))
        .ok();
    receiver
}

fn walk_and_dispatch(
    root: PathBuf,
    options: ScanOptions,
    known: Arc<HashMap<String, String>>,
    threads: usize,
    events: queue::Sender<ScanEvent>,
) {
    // Listing first gives the total for progress and ETA; it holds paths only.
    let mut candidates = Vec::new();
    for item in walk(&root, &options.walk, options.exclude.clone()) {
        match item {
            WalkItem::File(candidate) => candidates.push(candidate),
            WalkItem::Skipped(reason, path) => {
                let outcome = match reason {
                    SkipReason::Unreadable => FileOutcome::Unreadable(relative(&root, &path)),
                    reason => FileOutcome::Skipped(reason, relative(&root, &path)),
                };
                if events.blocking_send(ScanEvent::File(outcome)).is_err() {
                    return;
                }
            }
        }
    }
    if events
        .blocking_send(ScanEvent::Found(candidates.len()))
        .is_err()
    {
        return;
    }
    let (work, inbox) = mpsc::sync_channel::<Candidate>(threads * 4);
    let inbox = Arc::new(Mutex::new(inbox));
    let options = Arc::new(options);
    let workers: Vec<_> = (0..threads)
        .filter_map(|i| {
            let inbox = inbox.clone();
            let events = events.clone();
            let options = options.clone();
            let known = known.clone();
            std::thread::Builder::new()
                .name(format!("lancet-read-{i}"))
                .spawn(move || read_and_chunk(&inbox, &events, &options, &known))
                .ok()
        })
        .collect();
    // Only the workers hold the inbox now: if they all stop (the consumer went away),
    // the sends below fail instead of blocking forever.
    drop(inbox);
    for candidate in candidates {
        if work.send(candidate).is_err() {
            break;
        }
    }
    drop(work);
    for worker in workers {
        let _ = worker.join();
    }
}

fn read_and_chunk(
    inbox: &Mutex<mpsc::Receiver<Candidate>>,
    events: &queue::Sender<ScanEvent>,
    options: &ScanOptions,
    known: &HashMap<String, String>,
) {
    loop {
        let next = match inbox.lock() {
            Ok(inbox) => inbox.recv(),
            Err(_) => return,
        };
        let Ok(candidate) = next else { return };
        let outcome = outcome_of(candidate, options, known);
        if events.blocking_send(ScanEvent::File(outcome)).is_err() {
            return;
        }
    }
}

fn outcome_of(
    candidate: Candidate,
    options: &ScanOptions,
    known: &HashMap<String, String>,
) -> FileOutcome {
    let rel_path = candidate.rel_path.clone();
    let file = match read_source(candidate, &options.walk) {
        Ok(file) => file,
        Err(SkipReason::Unreadable) => return FileOutcome::Unreadable(Some(rel_path)),
        Err(reason) => return FileOutcome::Skipped(reason, Some(rel_path)),
    };
    if known.get(&file.rel_path) == Some(&file.hash) {
        return FileOutcome::Unchanged(file.rel_path);
    }
    // A grammar bug must cost one file's syntax chunks, not the job.
    let chunking = std::panic::catch_unwind(AssertUnwindSafe(|| {
        options.chunker.chunk(&file.language, &file.text)
    }))
    .unwrap_or_else(|_| {
        let mut lines = options.chunker.options().clone();
        lines.syntax = false;
        Chunker::new(lines).chunk(&file.language, &file.text)
    });
    FileOutcome::Chunked(chunked_file(&options.repo, file, &chunking))
}

/// `path` relative to `root` with `/` separators; `None` for the root itself, a path
/// outside it or a name that is not UTF-8.
fn relative(root: &Path, path: &Path) -> Option<String> {
    relative_str(root, path).filter(|rel| !rel.is_empty())
}

fn chunked_file(repo: &str, file: super::SourceFile, chunking: &Chunking) -> ChunkedFile {
    let chunks = chunk_rows(repo, &file, chunking);
    ChunkedFile {
        rel_path: file.rel_path,
        hash: file.hash,
        bytes: file.bytes,
        lossy: file.lossy,
        syntax_errors: chunking.syntax_errors,
        chunks,
    }
}

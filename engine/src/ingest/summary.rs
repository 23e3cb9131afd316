//! What an indexing job did, for the final report.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Why a file was not indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Contains NUL bytes.
    Binary,
    /// Larger than the size limit.
    TooLarge,
    /// Has a line longer than the limit (minified or generated).
    Generated,
    /// Inside a vendored-dependency folder.
    Vendored,
    /// A lock file.
    LockFile,
    /// No known language for its name or extension.
    UnknownLanguage,
    /// Could not be read (permissions, an I/O error, a symlink loop): rows already
    /// indexed for it are kept.
    Unreadable,
    /// Deleted between the walk and the read: its rows are removed like any deleted file's.
    Vanished,
    /// A symbolic link (not followed).
    Symlink,
    /// Its path is not valid UTF-8.
    NonUtf8Name,
    /// Empty or only whitespace: nothing to search.
    Empty,
    /// Not a regular file (a FIFO, socket or device): opening one can block forever.
    Special,
    /// A hidden file or folder (its name starts with `.`), unless hidden files are walked.
    Hidden,
    /// A file or folder that a `.gitignore`, `.ignore` or `.git/info/exclude` names.
    Ignored,
}

impl SkipReason {
    /// Name used in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Binary => "binary",
            SkipReason::TooLarge => "too large",
            SkipReason::Generated => "generated/minified",
            SkipReason::Vendored => "vendored",
            SkipReason::LockFile => "lock file",
            SkipReason::UnknownLanguage => "unknown language",
            SkipReason::Unreadable => "unreadable",
            SkipReason::Vanished => "vanished",
            SkipReason::Symlink => "symlink",
            SkipReason::NonUtf8Name => "non-UTF-8 name",
            SkipReason::Empty => "empty",
            SkipReason::Special => "not a regular file",
            SkipReason::Hidden => "hidden",
            SkipReason::Ignored => "ignored",
        }
    }
}

/// Counters of one indexing job.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IngestSummary {
    /// Files the walk found with a known language (read or not yet).
    pub files_found: usize,
    /// Files of those read so far (chunked, unchanged, or skipped for their content).
    pub files_scanned: usize,
    /// Files new or changed, chunked and written.
    pub files_indexed: usize,
    /// Files whose content hash matched the table (not read further).
    pub files_unchanged: usize,
    /// Files gone from the tree whose chunks were removed.
    pub files_deleted: usize,
    /// Files skipped, by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
    /// Files with invalid UTF-8, decoded lossily.
    pub lossy_utf8: usize,
    /// Files the parser met syntax errors in (chunked anyway).
    pub syntax_errors: usize,
    /// Bytes of source read for indexed files.
    pub bytes_indexed: u64,
    /// Chunk rows inserted.
    pub chunks_added: u64,
    /// Chunk rows rewritten in place.
    pub chunks_updated: u64,
    /// Chunk rows removed.
    pub chunks_removed: u64,
    /// Chunks whose vectors were copied from a row with the same content.
    pub chunks_reused: usize,
    /// Chunks whose vectors came from the machine-wide embedding cache.
    pub chunks_cached: usize,
    /// Chunks sent to the encoder.
    pub chunks_embedded: usize,
    /// Tokens the encoder processed.
    pub tokens_embedded: usize,
    /// Chunks cut at the encoder's maximum length.
    pub truncated: usize,
    /// Rows committed earlier with their text only that got their vectors.
    pub chunks_vectors_added: u64,
    /// Seconds from the start until every changed file was committed with its text and
    /// the text index was ready, when the job committed text first (0 otherwise).
    pub text_pass_seconds: f64,
    /// Rows of the repository still without vectors when the job ended: found by text
    /// search only, embedded first by the next job.
    pub chunks_pending: usize,
    /// Commits written.
    pub commits: usize,
    /// Wall time.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl IngestSummary {
    /// Files skipped, all reasons.
    pub fn files_skipped(&self) -> usize {
        self.skipped.values().sum()
    }

    pub(crate) fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }
}

impl fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "files: {} indexed, {} unchanged, {} deleted, {} skipped",
            self.files_indexed,
            self.files_unchanged,
            self.files_deleted,
            self.files_skipped()
        )?;
        for (reason, n) in &self.skipped {
            writeln!(f, "  skipped ({}): {n}", reason.as_str())?;
        }
        if self.lossy_utf8 > 0 {
            writeln!(f, "  invalid UTF-8 decoded lossily: {}", self.lossy_utf8)?;
        }
        if self.syntax_errors > 0 {
            writeln!(f, "  chunked despite syntax errors: {}", self.syntax_errors)?;
        }
        writeln!(
            f,
            "chunks: {} added, {} updated, {} removed, {} reused by content",
            self.chunks_added, self.chunks_updated, self.chunks_removed, self.chunks_reused
        )?;
        if self.chunks_cached > 0 {
            writeln!(
                f,
                "from the machine-wide cache: {} chunks",
                self.chunks_cached
            )?;
        }
        writeln!(
            f,
            "embedded: {} chunks, {} tokens ({} truncated)",
            self.chunks_embedded, self.tokens_embedded, self.truncated
        )?;
        if self.text_pass_seconds > 0.0 {
            writeln!(
                f,
                "every changed file searchable by text after {:.1} s",
                self.text_pass_seconds
            )?;
        }
        if self.chunks_vectors_added > 0 {
            writeln!(
                f,
                "vectors added to {} chunks committed with their text first",
                self.chunks_vectors_added
            )?;
        }
        if self.chunks_pending > 0 {
            writeln!(
                f,
                "waiting for vectors: {} chunks (searchable by text; the next run embeds them)",
                self.chunks_pending
            )?;
        }
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "{:.1} MB in {:.2} s ({:.1} MB/s), {} commits",
            self.bytes_indexed as f64 / 1e6,
            secs,
            self.bytes_indexed as f64 / 1e6 / secs.max(1e-9),
            self.commits
        )
    }
}

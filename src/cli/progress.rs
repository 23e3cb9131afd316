//! Progress of `lancet index`: a bar on a terminal, plain log lines otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use lancet::engine::ingest::IngestSummary;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Log lines are printed at each commit, and at least this often while reading.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct ProgressReport {
    bar: Option<ProgressBar>,
    quiet: bool,
    last_commits: usize,
    last_line: Instant,
}

impl ProgressReport {
    /// A bar when stderr is a terminal; log lines otherwise (none at all when `quiet`).
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} files  {msg}  [{elapsed_precise}, ETA {eta}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        ProgressReport {
            bar,
            quiet,
            last_commits: 0,
            last_line: Instant::now(),
        }
    }

    pub fn update(&mut self, s: &IngestSummary) {
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        let mut message = format!(
            "{} chunks, {} tokens, {:.1} MB/s",
            s.chunks_added + s.chunks_updated,
            s.tokens_embedded,
            s.bytes_indexed as f64 / 1e6 / secs
        );
        if s.chunks_vectors_added > 0 {
            message.push_str(&format!(
                ", vectors added to {} chunks",
                s.chunks_vectors_added
            ));
        }
        if let Some(bar) = &self.bar {
            bar.set_length(s.files_found as u64);
            bar.set_position(s.files_scanned as u64);
            bar.set_message(message);
            return;
        }
        if self.quiet {
            return;
        }
        if s.commits != self.last_commits || self.last_line.elapsed() >= LOG_EVERY {
            errln!(
                "[{:.1}s] {}/{} files read, {} indexed, {} unchanged, {} skipped, {} commits, {message}",
                secs,
                s.files_scanned,
                s.files_found,
                s.files_indexed,
                s.files_unchanged,
                s.files_skipped(),
                s.commits,
            );
            self.last_commits = s.commits;
            self.last_line = Instant::now();
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

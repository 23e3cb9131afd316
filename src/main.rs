//! The `lancet` command-line tool.

mod cli;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

// Bulk ingestion allocates and frees Arrow buffers and chunk strings at a high rate;
// jemalloc made the whole `index` job 11% faster than glibc's allocator on two cores.
// The encoder's activation buffers of megabytes, though, came back from jemalloc as fresh
// pages every layer (30% fewer tokens per second): blocks of 1 MiB and more come from the
// system allocator (BENCHMARKS.md, "One quantization per input, and large buffers from
// the system allocator"). Only the binary picks it: the library leaves the choice to the
// program that embeds it.
#[cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: lancet_udf::allocator::SplitAllocator = lancet_udf::allocator::SplitAllocator;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANCET_LOG")
        // Lance warns on every full-text query that it will stop projecting `_score`
        // on its own: a note to Lance's API users, not to ours.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,lance::dataset::scanner=error")
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output closed it (`| head`): it has what it wanted.
        Err(err) if cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Nothing to do when stderr is gone too; the exit code still says it failed.
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

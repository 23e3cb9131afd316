//! Command-line arguments and the dispatch to one module per command.

/// `println!` that returns the write's error instead of panicking, so that output into a
/// closed pipe (`lancet status | head -1`) ends the command quietly (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `eprintln!` that never panics: a message stderr cannot take (closed, full) is
/// dropped, and the job goes on.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod cache;
mod embed;
mod index;
mod locate;
mod mcp;
mod output;
mod progress;
mod search;
mod shard;
mod sql;
mod status;
mod watch;

use anyhow::Result;
use clap::{Parser, Subcommand};
use locate::PrecisionArg;

use std::path::PathBuf;

/// Whether `err` is a write into a closed pipe: the reader has all it wanted.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|cause| {
        // serde_json's writer errors hide the io::Error from the chain.
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken
    })
}

/// Lancet: index source code into Lance tables and search it by meaning.
#[derive(Debug, Parser)]
#[command(name = "lancet", version, about)]
pub struct Args {
    /// Database: a folder, or an object-store URI (`s3://bucket/path`, `s3+ddb://`,
    /// `gs://`, `az://`) (default: `.lancet` in the indexed root; for other commands, the
    /// nearest `.lancet` above the current folder).
    #[arg(long, global = true, env = "LANCET_DB", value_name = "PATH|URI")]
    pub db: Option<String>,
    /// Object-store setting, repeatable: `region=us-east-1`, `endpoint=http://host:9000`,
    /// `allow_http=true`, `aws_access_key_id=...` (the environment's `AWS_*`,
    /// `GOOGLE_*` and `AZURE_*` variables apply too).
    #[arg(long = "storage-option", global = true, value_name = "KEY=VALUE")]
    pub storage_options: Vec<String>,
    /// Embedding model: a local directory in the Hugging Face layout, or a hub id.
    #[arg(long, global = true, env = "LANCET_MODEL", default_value = lancet::udf::DEFAULT_MODEL)]
    pub model: String,
    /// Device for the model: cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "cpu")]
    pub device: String,
    /// Arithmetic of the model's linear layers: f32, q8 (8-bit blocks, CPU only;
    /// interchangeable with f32 for searching), or auto (q8 on a CPU with AVX-512 VNNI
    /// or AVX-VNNI, else f32).
    #[arg(long, global = true, env = "LANCET_PRECISION", default_value = "auto")]
    pub precision: PrecisionArg,
    /// Table name.
    #[arg(long, global = true, default_value = lancet::engine::DEFAULT_TABLE)]
    pub table: String,
    /// How soon reads see other processes' commits: `strong` (every read checks) or
    /// `eventual:SECONDS` (a check when that long has passed since the last).
    #[arg(long, global = true, default_value_t = lancet::engine::Consistency::default())]
    pub consistency: lancet::engine::Consistency,
    /// The machine-wide embedding cache, shared by every database on this machine
    /// (default: `$XDG_CACHE_HOME/lancet/embeddings`, else `~/.cache/lancet/embeddings`).
    #[arg(long, global = true, env = "LANCET_CACHE_DIR", value_name = "PATH")]
    pub cache_dir: Option<PathBuf>,
    /// Size bound of the machine-wide embedding cache, in MB (least recently used
    /// entries go first).
    #[arg(
        long,
        global = true,
        env = "LANCET_CACHE_MAX_MB",
        default_value_t = 4096
    )]
    pub cache_max_mb: u64,
    /// Neither take vectors from the machine-wide embedding cache nor add to it, and
    /// with `--precision q8` quantize the weights at load instead of mapping the copy
    /// packed at the first q8 load (`$XDG_CACHE_HOME/lancet/weights`).
    #[arg(long, global = true)]
    pub no_cache: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Index a directory (incrementally: unchanged files are skipped).
    Index(index::IndexArgs),
    /// Search the index with a natural-language or code query.
    Search(search::SearchArgs),
    /// Show rows, files, model, dimensions, indexes, version and size of a table.
    Status(status::StatusArgs),
    /// Compact the table, fold new rows into its indexes and build due indexes.
    Optimize,
    /// Commit the shards of a distributed job (`index --shard I/N --stage URI`) into the
    /// table in one atomic commit.
    Commit(shard::CommitArgs),
    /// Print the embedding of each text as a JSON array.
    Embed(embed::EmbedArgs),
    /// Run SQL over the database (embed, vector_search, fts, hybrid_search).
    Sql(sql::SqlArgs),
    /// Index a directory, then keep the index current as files change.
    Watch(watch::WatchArgs),
    /// Serve the index to coding agents over the Model Context Protocol (stdio or HTTP).
    Mcp(mcp::McpArgs),
    /// Show or prune the machine-wide embedding cache.
    Cache(cache::CacheArgs),
}

/// Runs the parsed command.
pub fn run(args: Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match &args.command {
            Command::Index(a) => index::run(&args, a).await,
            Command::Search(a) => search::run(&args, a).await,
            Command::Status(a) => status::run(&args, a).await,
            Command::Optimize => status::optimize(&args).await,
            Command::Commit(a) => shard::commit(&args, a).await,
            Command::Embed(a) => embed::run(&args, a),
            Command::Sql(a) => sql::run(&args, a).await,
            Command::Watch(a) => watch::run(&args, a).await,
            Command::Mcp(a) => mcp::run(&args, a).await,
            Command::Cache(a) => cache::run(&args, a),
        }
    })
}

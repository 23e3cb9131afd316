//! End-to-end tests of Lancet's public surface: one test binary, so it links once.

mod support;

mod cache;
mod cli;
mod concurrency;
mod encoder;
mod hot_index;
mod ingest;
mod mcp;
mod packed_weights;
#[cfg(target_os = "linux")]
mod permissions;
mod scale_out;
mod search;
mod sql;
mod store;
mod text_first;
mod watch;

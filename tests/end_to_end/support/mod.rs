//! Shared helpers of the end-to-end tests.

pub mod hash_encoder;
pub mod rows;
pub mod tiny_model;

pub use hash_encoder::HashEncoder;

/// A multi-threaded runtime for async engine calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

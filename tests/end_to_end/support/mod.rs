//! Shared helpers of the end-to-end tests.

pub mod cli;
pub mod hash_encoder;
pub mod rows;
pub mod s3;
pub mod tiny_model;

pub use hash_encoder::HashEncoder;

/// Writes `bytes` to `root/rel`, creating its folders.
pub fn write(root: &std::path::Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A multi-threaded runtime for async engine calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

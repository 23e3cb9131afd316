//! The machine-wide embedding cache as an indexing job uses it: texts it holds are not
//! embedded again, texts embedded go in. A cache that cannot be written (a read-only or
//! full disk) is warned about once and left alone; the job goes on.

use crate::cache::{CacheNamespace, EmbeddingCache};
use lancet_udf::{Encoder, ModelIdentity};
use std::sync::Arc;

/// One job's view of the cache: its folder and the namespace of the job's encoder.
pub(super) struct MachineCache {
    cache: Arc<EmbeddingCache>,
    namespace: CacheNamespace,
    /// The model and numerics of the namespace, for its description.
    model: ModelIdentity,
    numerics: String,
    writable: bool,
    /// Whether the namespace's model description has been written.
    described: bool,
}

impl MachineCache {
    /// The cache's namespace for vectors of `encoder`.
    pub(super) fn new(cache: Arc<EmbeddingCache>, encoder: &dyn Encoder) -> Self {
        let numerics = encoder.numerics();
        let namespace = cache.namespace(encoder.identity(), &numerics);
        MachineCache {
            cache,
            namespace,
            model: encoder.identity().clone(),
            numerics,
            writable: true,
            described: false,
        }
    }

    /// The stored vector of `text`, if any.
    pub(super) fn get(&self, text: &str) -> Option<Vec<f32>> {
        self.cache.get(&self.namespace, text)
    }

    /// Whether the cache holds `text` (without reading it).
    pub(super) fn contains(&self, text: &str) -> bool {
        self.cache.contains(&self.namespace, text)
    }

    /// Stores the vector of `text`, unless an earlier write failed.
    pub(super) fn put(&mut self, text: &str, vector: &[f32]) {
        if !self.writable {
            return;
        }
        if let Err(e) = self.cache.put(&self.namespace, text, vector) {
            tracing::warn!(
                "embedding cache {}: {e}; this job stops adding to it",
                self.cache.root().display()
            );
            self.writable = false;
            return;
        }
        if !self.described {
            self.described = true;
            self.cache
                .describe(&self.namespace, &self.model, &self.numerics);
        }
    }

    /// Holds the cache to its size bound when that is due.
    pub(super) fn finish(&self) {
        if let Err(e) = self.cache.prune_if_due() {
            tracing::warn!(
                "embedding cache {}: pruning failed: {e}",
                self.cache.root().display()
            );
        }
    }
}

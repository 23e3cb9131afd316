//! One encoder over several devices (`--device cuda:0,1`): each call's texts are split
//! into contiguous parts of about equal length, one per replica of the same model, run
//! in parallel, and joined in input order.

use crate::{Embeddings, Encoder, Error, ModelIdentity, Result, TaskRole};
use std::sync::Arc;

/// Replicas of one model, each on its own device, behind one [`Encoder`].
pub struct ReplicatedEncoder {
    replicas: Vec<Arc<dyn Encoder>>,
}

impl ReplicatedEncoder {
    /// Joins `replicas`, which must be the same model with the same numerics (a vector
    /// must not depend on which device embedded it beyond what numerics record).
    pub fn new(replicas: Vec<Arc<dyn Encoder>>) -> Result<Self> {
        let Some(first) = replicas.first() else {
            return Err(Error::Model("no device to run the model on".into()));
        };
        for other in &replicas[1..] {
            if !first.identity().same_model(other.identity())
                || first.identity().prompt_set != other.identity().prompt_set
                || first.numerics() != other.numerics()
            {
                return Err(Error::Model(format!(
                    "replicas differ: {} ({}) and {} ({})",
                    first.identity(),
                    first.numerics(),
                    other.identity(),
                    other.numerics()
                )));
            }
        }
        Ok(ReplicatedEncoder { replicas })
    }

    /// Number of replicas.
    pub fn replicas(&self) -> usize {
        self.replicas.len()
    }
}

/// Splits `lengths` into at most `parts` contiguous ranges of about equal total length,
/// none empty.
fn balanced_ranges(lengths: &[usize], parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, lengths.len().max(1));
    let total: usize = lengths.iter().map(|&l| l.max(1)).sum();
    let mut ranges = Vec::with_capacity(parts);
    let (mut start, mut done) = (0, 0usize);
    for (i, &len) in lengths.iter().enumerate() {
        done += len.max(1);
        let cut = done * parts >= total * (ranges.len() + 1);
        let left = lengths.len() - (i + 1);
        let parts_left = parts - ranges.len() - 1;
        // Cut where the length says, or where each part left needs one of the texts left.
        let must = left == parts_left;
        if ((cut || must) && parts_left > 0 && left >= parts_left) || left == 0 {
            ranges.push(start..i + 1);
            start = i + 1;
        }
    }
    ranges
}

impl Encoder for ReplicatedEncoder {
    fn identity(&self) -> &ModelIdentity {
        self.replicas[0].identity()
    }

    fn max_tokens(&self) -> usize {
        self.replicas[0].max_tokens()
    }

    fn encode(&self, texts: &[&str], task: TaskRole) -> Result<Embeddings> {
        if self.replicas.len() == 1 || texts.len() < 2 {
            return self.replicas[0].encode(texts, task);
        }
        let lengths: Vec<usize> = texts.iter().map(|t| t.len()).collect();
        let ranges = balanced_ranges(&lengths, self.replicas.len());
        let parts: Vec<Result<Embeddings>> = std::thread::scope(|scope| {
            let running: Vec<_> = ranges
                .iter()
                .zip(&self.replicas)
                .map(|(range, replica)| {
                    let part = &texts[range.clone()];
                    scope.spawn(move || replica.encode(part, task))
                })
                .collect();
            running
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(Error::Model("a device's encoder panicked".into())))
                })
                .collect()
        });
        let mut out = Embeddings {
            dim: self.dim(),
            data: Vec::with_capacity(texts.len() * self.dim()),
            tokens: 0,
            truncated: 0,
        };
        for part in parts {
            let part = part?;
            out.data.extend_from_slice(&part.data);
            out.tokens += part.tokens;
            out.truncated += part.truncated;
        }
        Ok(out)
    }

    fn token_starts(&self, text: &str) -> Option<Vec<usize>> {
        self.replicas[0].token_starts(text)
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.replicas[0].count_tokens(text)
    }

    fn input_tokens(&self, texts: &[&str], task: TaskRole) -> Option<Vec<usize>> {
        self.replicas[0].input_tokens(texts, task)
    }

    fn numerics(&self) -> String {
        self.replicas[0].numerics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_contiguous_balanced_and_never_empty() {
        let check = |lengths: &[usize], parts: usize| {
            let ranges = balanced_ranges(lengths, parts);
            assert!(ranges.iter().all(|r| !r.is_empty()), "{ranges:?}");
            let joined: Vec<usize> = ranges.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(joined, (0..lengths.len()).collect::<Vec<_>>());
            ranges
        };
        assert_eq!(check(&[10, 10, 10, 10], 2), vec![0..2, 2..4]);
        assert_eq!(check(&[30, 1, 1, 1], 2), vec![0..1, 1..4]);
        assert_eq!(check(&[5, 5, 5], 4).len(), 3);
        assert_eq!(check(&[1], 2), vec![0..1]);
        assert_eq!(check(&[0, 0, 0, 0], 2), vec![0..2, 2..4]);
        assert_eq!(check(&[1, 1, 1, 1, 100], 2), vec![0..4, 4..5]);
        assert!(balanced_ranges(&[], 3).is_empty());
    }
}

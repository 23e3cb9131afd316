//! Matryoshka-like synthetic vectors for recall tests and benchmarks.
//!
//! Trained Matryoshka embeddings put most of their variance in the leading dimensions,
//! which is what makes a short prefix a usable coarse representation. The generator
//! imitates that: vectors are drawn around `clusters` random centres, and coordinate `j`
//! of both centres and noise is scaled by `exp(-j / decay)`, so that with the default
//! `decay = 200` the first 128 of 768 dimensions carry about 72% of the variance.
//! Queries come from the same distribution (a centre plus fresh noise): they are never
//! copies of stored vectors. Everything is seeded and deterministic.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Parameters of the generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatryoshkaSpec {
    /// Width of the vectors.
    pub dim: usize,
    /// Number of cluster centres.
    pub clusters: usize,
    /// Spread of points around their centre, relative to the spread of centres.
    pub noise: f32,
    /// Scale of the exponential decay of variance over coordinates.
    pub decay: f32,
    /// RNG seed.
    pub seed: u64,
}

impl Default for MatryoshkaSpec {
    fn default() -> Self {
        MatryoshkaSpec {
            dim: 768,
            clusters: 256,
            noise: 0.6,
            decay: 200.0,
            seed: 42,
        }
    }
}

/// A seeded source of Matryoshka-like vectors.
#[derive(Debug, Clone)]
pub struct MatryoshkaGenerator {
    spec: MatryoshkaSpec,
    scales: Vec<f32>,
    centres: Vec<Vec<f32>>,
}

impl MatryoshkaGenerator {
    /// Draws the cluster centres.
    pub fn new(spec: MatryoshkaSpec) -> Self {
        let scales: Vec<f32> = (0..spec.dim)
            .map(|j| (-(j as f32) / spec.decay).exp())
            .collect();
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let centres = (0..spec.clusters.max(1))
            .map(|_| gaussian(&mut rng, &scales, 1.0))
            .collect();
        MatryoshkaGenerator {
            spec,
            scales,
            centres,
        }
    }

    /// Fraction of the total variance held by the first `prefix` coordinates.
    pub fn variance_share(&self, prefix: usize) -> f32 {
        let total: f32 = self.scales.iter().map(|s| s * s).sum();
        self.scales[..prefix.min(self.spec.dim)]
            .iter()
            .map(|s| s * s)
            .sum::<f32>()
            / total
    }

    /// `n` vectors (unit length), drawn with the stream `stream` of the seed: different
    /// streams give independent samples (use one for the data, another for queries).
    pub fn sample(&self, n: usize, stream: u64) -> Vec<Vec<f32>> {
        let mut rng = StdRng::seed_from_u64(self.spec.seed ^ (stream.wrapping_add(1) << 32));
        (0..n)
            .map(|_| {
                let centre = &self.centres[rng.random_range(0..self.centres.len())];
                let noise = gaussian(&mut rng, &self.scales, self.spec.noise);
                let mut v: Vec<f32> = centre.iter().zip(&noise).map(|(c, e)| c + e).collect();
                lancet_udf::matryoshka::normalize_in_place(&mut v);
                v
            })
            .collect()
    }
}

fn gaussian(rng: &mut StdRng, scales: &[f32], sigma: f32) -> Vec<f32> {
    scales
        .iter()
        .map(|s| rng.sample::<f32, _>(StandardNormal) * s * sigma)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_dimensions_carry_most_variance() {
        let g = MatryoshkaGenerator::new(MatryoshkaSpec::default());
        let share = g.variance_share(128);
        assert!(share > 0.65 && share < 0.8, "{share}");
    }

    #[test]
    fn samples_are_deterministic_unit_vectors_and_streams_differ() {
        let g = MatryoshkaGenerator::new(MatryoshkaSpec {
            dim: 32,
            clusters: 4,
            ..MatryoshkaSpec::default()
        });
        let a = g.sample(3, 0);
        assert_eq!(a, g.sample(3, 0));
        assert_ne!(a, g.sample(3, 1));
        for v in &a {
            let norm: f32 = v.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-4);
        }
    }
}

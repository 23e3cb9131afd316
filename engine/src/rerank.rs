//! Exact cosine at full width over the shortlist: the second stage of the search.

use half::f16;

/// Cosine similarity of an f32 query (any norm) and a stored fp16 vector, in f32.
pub(crate) fn cosine(query: &[f32], stored: &[f16]) -> f32 {
    let (mut dot, mut qq, mut ss) = (0f32, 0f32, 0f32);
    for (&q, &s) in query.iter().zip(stored) {
        let s = s.to_f32();
        dot += q * s;
        qq += q * q;
        ss += s * s;
    }
    let denom = (qq * ss).sqrt();
    if denom > 0.0 {
        dot / denom
    } else {
        0.0
    }
}

/// Indices of the `k` highest scores, best first; ties keep the earlier index first.
pub(crate) fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_ignores_norms() {
        let q = [2.0, 0.0];
        let s = [f16::from_f32(0.5), f16::from_f32(0.5)];
        assert!((cosine(&q, &s) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-3);
        assert_eq!(cosine(&q, &[f16::ZERO, f16::ZERO]), 0.0);
    }

    #[test]
    fn top_k_orders_best_first() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.9], 3), vec![1, 3, 2]);
        assert_eq!(top_k(&[0.1], 5), vec![0]);
    }
}

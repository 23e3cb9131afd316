//! Exact cosine at full width over the shortlist: the second stage of the search.

/// Cosine similarity of an f32 query (any norm) and a stored vector of f32 or fp16, in f32.
pub(crate) fn cosine<T: Copy>(query: &[f32], stored: &[T]) -> f32
where
    f32: From<T>,
{
    let (mut dot, mut qq, mut ss) = (0f32, 0f32, 0f32);
    for (&q, &s) in query.iter().zip(stored) {
        let s = f32::from(s);
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
    use half::f16;

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

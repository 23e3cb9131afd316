//! Matryoshka truncation: a prefix of a pooled vector, L2-normalised again, is itself an
//! embedding. Everything here runs in f32 and converts to fp16 only for storage, as
//! sentence-transformers does (pool -> truncate -> normalise).

use crate::{Error, Result};
use half::f16;

/// The first `dim` values of `vector`, scaled to unit length.
///
/// A zero prefix stays zero (it has no direction); it never becomes NaN.
pub fn truncate_normalize(vector: &[f32], dim: usize) -> Result<Vec<f32>> {
    if dim == 0 || dim > vector.len() {
        return Err(Error::InvalidDims(format!(
            "cannot take a {dim}-d prefix of a {}-d vector",
            vector.len()
        )));
    }
    let mut prefix = vector[..dim].to_vec();
    normalize_in_place(&mut prefix);
    Ok(prefix)
}

/// Scales `vector` to unit length; a zero vector is left as it is.
pub fn normalize_in_place(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Converts to fp16 for storage.
pub fn to_f16(vector: &[f32]) -> Vec<f16> {
    vector.iter().map(|&x| f16::from_f32(x)).collect()
}

/// The two stored forms of one pooled vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVectors {
    /// Full-width vector, normalised.
    pub full: Vec<f32>,
    /// Prefix vector, normalised.
    pub prefix: Vec<f32>,
}

/// Derives the full-width and prefix vectors a table stores from one pooled vector.
pub fn stored_vectors(pooled: &[f32], full: usize, prefix: usize) -> Result<StoredVectors> {
    if prefix > full {
        return Err(Error::InvalidDims(format!(
            "prefix width {prefix} is wider than the full width {full}"
        )));
    }
    Ok(StoredVectors {
        full: truncate_normalize(pooled, full)?,
        prefix: truncate_normalize(pooled, prefix)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_renormalised() {
        let v = [3.0, 4.0, 12.0];
        let p = truncate_normalize(&v, 2).unwrap();
        assert!((p[0] - 0.6).abs() < 1e-6 && (p[1] - 0.8).abs() < 1e-6);
        let full = truncate_normalize(&v, 3).unwrap();
        assert!((full.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn zero_vector_stays_finite() {
        let p = truncate_normalize(&[0.0; 4], 4).unwrap();
        assert!(p.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn bad_widths_are_errors() {
        assert!(truncate_normalize(&[1.0; 4], 0).is_err());
        assert!(truncate_normalize(&[1.0; 4], 5).is_err());
        assert!(stored_vectors(&[1.0; 8], 4, 6).is_err());
    }

    #[test]
    fn fp16_conversion_keeps_values_close() {
        let v = truncate_normalize(&[0.1, -0.7, 0.3, 0.2], 4).unwrap();
        let h = to_f16(&v);
        for (a, b) in v.iter().zip(&h) {
            assert!((a - b.to_f32()).abs() < 1e-3);
        }
    }
}

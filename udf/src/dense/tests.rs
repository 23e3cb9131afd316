use super::{matmul, F32Panels, CHANNELS, TOKENS_PER_BLOCK};
use crate::quant::Kernel;
use crate::test_support::{exact_product, same_bits, values};

/// `x · wᵀ + bias` in f64, from the unpacked weights.
fn reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, bias: &[f32]) -> Vec<f64> {
    let mut out = exact_product(x, w, m, n, k);
    for (i, y) in out.iter_mut().enumerate() {
        *y += f64::from(bias.get(i % n.max(1)).copied().unwrap_or(0.0));
    }
    out
}

/// Shapes with ragged edges: tokens that leave every tile height as a remainder, and
/// channels that end mid-register and mid-panel.
const SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (11, 20, 16),
    (3, 7, 5),
    (13, 33, 64),
    (43, 96, 130),
    (25, 17, 9),
    (7, 100, 31),
    (TOKENS_PER_BLOCK + 5, 40, 24),
];

#[test]
fn packed_weights_read_back_as_the_matrix_they_were_packed_from() {
    let (rows, cols) = (37, 11);
    let w = values(rows * cols, 3, 1.0);
    let packed = F32Panels::pack(&w, rows, cols, None);
    for r in 0..rows {
        for c in 0..cols {
            assert_eq!(packed.weight(r, c), w[r * cols + c], "row {r} col {c}");
        }
    }
    assert_eq!((packed.rows(), packed.cols()), (rows, cols));
    assert_eq!(
        packed.bytes(),
        2 * CHANNELS * cols * 4 + 2 * CHANNELS * 4,
        "two tasks"
    );
}

#[test]
fn the_scalar_product_matches_a_plain_product_in_f64() {
    for (seed, &(m, n, k)) in SHAPES.iter().enumerate() {
        let x = values(m * k, seed as u64, 2.0);
        let w = values(n * k, 100 + seed as u64, 0.5);
        let bias = values(n, 200 + seed as u64, 1.0);
        for bias in [None, Some(&bias[..])] {
            let packed = F32Panels::pack(&w, n, k, bias);
            let got = matmul(&x, m, &packed, Kernel::Scalar);
            let want = reference(&x, m, &w, n, k, bias.unwrap_or(&[]));
            assert_eq!(got.len(), m * n);
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                let tolerance = 1e-5 * (1.0 + e.abs()) * (k as f64).sqrt();
                assert!(
                    (f64::from(*g) - e).abs() <= tolerance,
                    "{m}x{n}x{k} at {i}: {g} vs {e}"
                );
            }
        }
    }
}

#[test]
fn every_simd_kernel_gives_the_scalar_kernels_bits() {
    let simd: Vec<Kernel> = Kernel::available()
        .into_iter()
        .filter(|k| k.is_simd())
        .collect();
    for (seed, &(m, n, k)) in SHAPES.iter().enumerate() {
        let x = values(m * k, 10 + seed as u64, 3.0);
        let w = values(n * k, 20 + seed as u64, 0.7);
        let bias = values(n, 30 + seed as u64, 1.0);
        let packed = F32Panels::pack(&w, n, k, Some(&bias));
        let scalar = matmul(&x, m, &packed, Kernel::Scalar);
        for &kernel in &simd {
            let got = matmul(&x, m, &packed, kernel);
            assert!(same_bits(&got, &scalar), "{kernel:?} on {m}x{n}x{k}");
        }
    }
}

#[test]
fn a_row_alone_gets_the_bits_it_gets_in_a_batch() {
    let (m, n, k) = (29, 70, 48);
    let x = values(m * k, 5, 1.0);
    let packed = F32Panels::pack(&values(n * k, 6, 1.0), n, k, None);
    for kernel in Kernel::available() {
        let batch = matmul(&x, m, &packed, kernel);
        for r in [0, 11, m - 1] {
            let alone = matmul(&x[r * k..(r + 1) * k], 1, &packed, kernel);
            assert!(
                same_bits(&alone, &batch[r * n..(r + 1) * n]),
                "{kernel:?} row {r}"
            );
        }
    }
}

#[test]
fn no_rows_give_an_empty_product() {
    let packed = F32Panels::pack(&values(5 * 8, 1, 1.0), 5, 8, None);
    for kernel in Kernel::available() {
        assert!(matmul(&[], 0, &packed, kernel).is_empty());
    }
}

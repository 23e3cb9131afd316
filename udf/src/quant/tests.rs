use super::outliers::{outliers_of_row, outliers_of_row_on};
use super::{
    large_gain_columns, matmul, matmul_f32, quantize_row, Activations, ExactColumns, Kernel,
    Layout, Q8Rows, WeightColumns, BLOCK,
};
use crate::test_support::{exact_product, values};
use rayon::prelude::*;

fn simd_kernels() -> Vec<Kernel> {
    Kernel::available()
        .into_iter()
        .filter(|k| k.is_simd())
        .collect()
}

#[test]
fn quantized_values_stay_within_half_a_step_of_the_originals() {
    for cols in [1, 31, 32, 33, 100] {
        let data = values(3 * cols, cols as u64, 10.0);
        let q = Q8Rows::quantize(&data, 3, cols, Kernel::Scalar);
        let back = q.dequantize();
        for (r, (x, y)) in data.iter().zip(&back).enumerate() {
            let block = &data[(r / cols) * cols..][..cols][(r % cols) / BLOCK * BLOCK..]
                [..BLOCK.min(cols - (r % cols) / BLOCK * BLOCK)];
            let step = block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            assert!(
                (x - y).abs() <= step / 2.0 + 1e-6,
                "{x} vs {y}, step {step}"
            );
        }
    }
    let zeros = Q8Rows::quantize(&[0.0; 40], 1, 40, Kernel::Scalar);
    assert!(zeros.dequantize().iter().all(|&x| x == 0.0));
}

#[test]
fn a_row_quantized_with_zeroed_columns_equals_a_copy_with_zeros() {
    let (rows, cols) = (4, 100);
    let data = values(rows * cols, 9, 2.0);
    let zeroed = [vec![0, 31, 99], vec![], vec![64], vec![]];
    let mut copy = data.clone();
    for (r, columns) in zeroed.iter().enumerate() {
        for &j in columns {
            copy[r * cols + j] = 0.0;
        }
    }
    let zeroing = |kernel| {
        let mut got = Q8Rows::zeros(rows, cols);
        got.par_rows_mut()
            .zip(data.par_chunks_exact(cols))
            .zip(zeroed.par_iter())
            .for_each(|(((quants, scales), row), columns)| {
                quantize_row(row, columns, kernel, quants, scales)
            });
        got
    };
    for kernel in Kernel::available() {
        let (got, want) = (zeroing(kernel), Q8Rows::quantize(&copy, rows, cols, kernel));
        assert_eq!(got.quants(), want.quants(), "{kernel:?}");
        assert_eq!(got.scales(), want.scales(), "{kernel:?}");
    }
    assert_ne!(
        Q8Rows::quantize(&data, rows, cols, Kernel::Scalar).quants(),
        zeroing(Kernel::Scalar).quants()
    );
}

#[test]
fn every_simd_quantizer_gives_the_scalar_bytes() {
    for kernel in simd_kernels() {
        for (cols, scale) in [(32, 1.0), (100, 1e-3), (257, 3e4), (7, 0.5)] {
            let data = values(5 * cols, cols as u64 + 1, scale);
            let simd = Q8Rows::quantize(&data, 5, cols, kernel);
            let reference = Q8Rows::quantize(&data, 5, cols, Kernel::Scalar);
            assert_eq!(simd.quants(), reference.quants(), "{kernel:?} cols {cols}");
            assert_eq!(simd.scales(), reference.scales(), "{kernel:?} cols {cols}");
        }
    }
}

/// The norm of `got - want` relative to `want`'s.
fn relative_error(got: &[f32], want: &[f64]) -> f64 {
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(g, e)| (f64::from(*g) - e).powi(2))
        .sum();
    (diff / want.iter().map(|e| e * e).sum::<f64>()).sqrt()
}

/// The product of the dequantized matrices, in f64.
fn reference_product(a: &Q8Rows, w: &Q8Rows) -> Vec<f64> {
    let (da, dw) = (a.dequantize(), w.dequantize());
    exact_product(&da, &dw, a.rows(), w.rows(), a.cols())
}

#[test]
fn every_kernel_computes_the_product_of_the_quantized_matrices() {
    // Ragged shapes: partial tiles of tokens and channels, partial blocks.
    for (m, n, k) in [
        (1, 1, 1),
        (3, 5, 31),
        (4, 2, 32),
        (5, 3, 33),
        (9, 17, 96),
        (13, 35, 100),
        // Eight-channel tiles beside two-channel edges in one task.
        (6, 27, 64),
        (2, 8, 4864),
        // Long rows (66 blocks, the last partial) in 4-row tiles and a single-row edge.
        (6, 40, 2100),
        // Whole and partial 32-channel tasks, four-row tiles and single-row edges.
        (11, 70, 160),
        (4, 64, 896),
    ] {
        let a = Q8Rows::quantize(&values(m * k, 3, 2.0), m, k, Kernel::Scalar);
        let w = Q8Rows::quantize(&values(n * k, 5, 0.1), n, k, Kernel::Scalar);
        let expected = reference_product(&a, &w);
        let bound: Vec<f64> = {
            let (da, dw) = (a.dequantize(), w.dequantize());
            (0..m)
                .flat_map(|r| (0..n).map(move |c| (r, c)))
                .map(|(r, c)| {
                    (0..k)
                        .map(|i| f64::from((da[r * k + i] * dw[c * k + i]).abs()))
                        .sum::<f64>()
                })
                .collect()
        };
        for kernel in std::iter::once(Kernel::Scalar).chain(simd_kernels()) {
            let got = matmul(&a, &w, kernel);
            assert_eq!(got.len(), m * n);
            for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
                let tolerance = 1e-5 * bound[i] + 1e-7;
                assert!(
                    (f64::from(g) - e).abs() <= tolerance,
                    "{kernel:?} {m}x{n}x{k} at {i}: {g} vs {e}"
                );
            }
        }
    }
}

#[test]
fn the_quantized_product_stays_close_to_the_f32_one() {
    let (m, n, k) = (8, 64, 896);
    let x = values(m * k, 11, 1.0);
    let mut wf = values(n * k, 13, 0.05);
    // An outlier input channel: it coarsens its own blocks only.
    for c in 0..n {
        wf[c * k + 7] *= 30.0;
    }
    let exact = exact_product(&x, &wf, m, n, k);
    let kernel = Kernel::detect();
    let got = matmul(
        &Q8Rows::quantize(&x, m, k, kernel),
        &Q8Rows::quantize(&wf, n, k, kernel),
        kernel,
    );
    for r in 0..m {
        let (e, g) = (&exact[r * n..(r + 1) * n], &got[r * n..(r + 1) * n]);
        let dot: f64 = e.iter().zip(g).map(|(a, &b)| a * f64::from(b)).sum();
        let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
        let cosine =
            dot / (norm(&mut e.iter().copied()) * norm(&mut g.iter().map(|&x| f64::from(x))));
        assert!(cosine > 0.9999, "row {r}: cosine {cosine}");
    }
}

#[test]
fn outliers_are_multiplied_in_f32_and_keep_the_rest_precise() {
    let (m, n, k) = (6, 40, 256);
    let mut x = values(m * k, 21, 1.0);
    for r in 0..m {
        x[r * k + 9] = 60.0;
        x[r * k + 100] = -45.0;
    }
    for row in x.chunks_exact(k) {
        assert_eq!(outliers_of_row(row), vec![9, 100]);
    }
    assert!(values(k, 22, 1.0)
        .chunks_exact(k)
        .all(|row| outliers_of_row(row).is_empty()));
    let wf = values(n * k, 23, 0.1);
    let kernel = Kernel::detect();
    let w = Q8Rows::quantize(&wf, n, k, kernel);
    let exact = exact_product(&x, &wf, m, n, k);
    let error = |got: &[f32]| relative_error(got, &exact);
    let decomposed = error(&matmul_f32(&x, m, k, &w, None, kernel));
    let plain = error(&matmul(&Q8Rows::quantize(&x, m, k, kernel), &w, kernel));
    assert!(decomposed < 0.01, "relative error {decomposed}");
    assert!(
        decomposed * 3.0 < plain,
        "{decomposed} vs {plain} without the decomposition"
    );
}

#[test]
fn rows_with_different_outliers_give_alone_what_they_give_in_a_batch() {
    let (m, n, k) = (7, 70, 320);
    let mut x = values(m * k, 31, 1.0);
    // Row r has outliers in its own columns (row 3 none), some shared between rows.
    for r in 0..m {
        if r != 3 {
            x[r * k + 5 + 40 * r] = 50.0 + r as f32;
            x[r * k + 300] = -70.0;
        }
    }
    let wf = values(n * k, 32, 0.1);
    for kernel in Kernel::available() {
        let w = Q8Rows::quantize(&wf, n, k, kernel);
        let batch = matmul_f32(&x, m, k, &w, None, kernel);
        for r in 0..m {
            let alone = matmul_f32(&x[r * k..(r + 1) * k], 1, k, &w, None, kernel);
            assert_eq!(alone, batch[r * n..(r + 1) * n], "{kernel:?} row {r}");
        }
        // Each row's outlier part is its outliers times the dequantized weights: the
        // batch minus the product of the rest.
        let mut rest = x.clone();
        for r in 0..m {
            for j in outliers_of_row(&x[r * k..(r + 1) * k]) {
                rest[r * k + j] = 0.0;
            }
        }
        let inliers = matmul(&Q8Rows::quantize(&rest, m, k, kernel), &w, kernel);
        for r in 0..m {
            for c in 0..n {
                let expected: f32 = outliers_of_row(&x[r * k..(r + 1) * k])
                    .iter()
                    .map(|&j| x[r * k + j] * w.value(c, j))
                    .sum();
                let got = batch[r * n + c] - inliers[r * n + c];
                assert!(
                    (got - expected).abs() <= 1e-3 * (1.0 + expected.abs()),
                    "{kernel:?} row {r} channel {c}: {got} vs {expected}"
                );
            }
        }
    }
}

#[test]
fn outlier_products_read_by_column_equal_those_read_by_task_to_the_bit() {
    // Heavy tails: each row has tens of outliers, rows share some of them, one row none.
    let (m, n, k) = (9, 75, 1000);
    let mut x = values(m * k, 41, 1.0);
    for r in 0..m {
        if r == 4 {
            continue;
        }
        for j in (r..k).step_by(23 + r) {
            x[r * k + j] *= 40.0;
        }
    }
    assert!(outliers_of_row(&x[..k]).len() > 20);
    let wf = values(n * k, 42, 0.1);
    for kernel in Kernel::available() {
        let w = Q8Rows::quantize(&wf, n, k, kernel);
        let columns = WeightColumns::new(&w);
        let by_task = matmul_f32(&x, m, k, &w, None, kernel);
        let by_column = matmul_f32(&x, m, k, &w, Some(&columns), kernel);
        assert_eq!(by_task, by_column, "{kernel:?}");
        let alone = matmul_f32(&x[2 * k..3 * k], 1, k, &w, Some(&columns), kernel);
        assert_eq!(alone, by_column[2 * n..3 * n], "{kernel:?}");
    }
}

#[test]
fn weights_in_panels_hold_the_values_they_hold_in_rows() {
    // Ragged: a partial last panel and a partial last block.
    for (n, k) in [(1, 7), (33, 100), (64, 64), (70, 160)] {
        let rows = Q8Rows::quantize(&values(n * k, 51, 0.2), n, k, Kernel::Scalar);
        let panels = rows.clone().into_layout(Layout::Panels);
        assert_eq!(panels.layout(), Layout::Panels);
        assert_eq!(
            panels.quants().len(),
            n.div_ceil(32) * 32 * k.div_ceil(BLOCK) * BLOCK
        );
        assert_eq!(panels.dequantize(), rows.dequantize(), "{n}x{k}");
        let back = panels.clone().into_layout(Layout::Rows);
        assert_eq!(back.layout(), Layout::Rows);
        assert_eq!(back.quants(), rows.quants(), "{n}x{k}");
        assert_eq!(back.scales(), rows.scales(), "{n}x{k}");
        let (a, b) = (WeightColumns::new(&rows), WeightColumns::new(&panels));
        assert_eq!(a.bytes(), b.bytes());
    }
}

#[test]
fn the_panel_kernels_give_the_same_product_from_panels_as_from_rows() {
    let kernels: Vec<Kernel> = Kernel::available()
        .into_iter()
        .filter(|k| k.weight_layout() == Layout::Panels)
        .collect();
    if kernels.is_empty() {
        eprintln!("skipped: this CPU has no VNNI");
    }
    for kernel in kernels {
        for (m, n, k) in [(5, 70, 160), (1, 33, 896), (9, 64, 100)] {
            let mut x = values(m * k, 61, 1.0);
            x[3] = 80.0; // an outlier: the f32 side reads the weights in panels too
            let rows = Q8Rows::quantize(&values(n * k, 62, 0.1), n, k, kernel);
            let panels = rows.clone().into_layout(Layout::Panels);
            let a = Q8Rows::quantize(&x, m, k, kernel);
            assert_eq!(matmul(&a, &rows, kernel), matmul(&a, &panels, kernel));
            assert_eq!(
                matmul_f32(&x, m, k, &rows, None, kernel),
                matmul_f32(&x, m, k, &panels, None, kernel)
            );
        }
    }
}

#[test]
fn the_columns_kept_exact_are_the_few_largest_gains() {
    let mut gains: Vec<f32> = (0..896)
        .map(|j| 1.0 + 0.05 * ((j % 7) as f32 - 3.0))
        .collect();
    assert!(large_gain_columns(&gains).is_empty());
    for &j in &[500, 3, 77] {
        gains[j] *= 30.0;
    }
    gains[200] = -40.0; // a gain's sign does not matter
    assert_eq!(large_gain_columns(&gains), vec![3, 77, 200, 500]);
    // At most 1 in 64 (14 of 896): the largest, in column order.
    for j in 0..40 {
        gains[600 + j] = 10.0 + 0.1 * j as f32;
    }
    let kept = large_gain_columns(&gains);
    assert_eq!(kept.len(), 14);
    assert_eq!(
        kept,
        vec![3, 77, 200, 500, 630, 631, 632, 633, 634, 635, 636, 637, 638, 639]
    );
    // One block: nothing to keep apart.
    assert!(large_gain_columns(&[1.0, 100.0]).is_empty());
}

/// Activations with large-gain columns: every row's values there 30 times the rest.
fn rows_with_large_columns(m: usize, k: usize, columns: &[usize], seed: u64) -> Vec<f32> {
    let mut x = values(m * k, seed, 1.0);
    for r in 0..m {
        for &j in columns {
            x[r * k + j] *= 30.0;
        }
    }
    x
}

#[test]
fn exact_columns_take_the_weights_rounding_out_of_the_largest_terms() {
    let (m, n, k) = (8, 48, 896);
    let columns = [3, 77, 500];
    let x = rows_with_large_columns(m, k, &columns, 71);
    let wf = values(n * k, 72, 0.05);
    let want = exact_product(&x, &wf, m, n, k);
    let error = |got: &[f32]| relative_error(got, &want);
    let kernel = Kernel::detect();
    let w = Q8Rows::quantize(&wf, n, k, kernel);
    let exact = ExactColumns::of_rows(&wf, n, k, &columns);
    assert_eq!(exact.columns(), columns);
    assert_eq!(exact.bytes(), 4 * 3 * n);
    let with = error(&Activations::new(&x, m, k, &columns, kernel).matmul(&w, None, &exact));
    let without = error(&matmul_f32(&x, m, k, &w, None, kernel));
    // Measured 0.0029 against 0.0043: the three columns' weights were a third of the error.
    assert!(
        with * 1.3 < without,
        "{with} with exact columns vs {without}"
    );
    // The f32 part is the kept columns' values times their f32 weights and the row's
    // other outliers times their 8-bit weights.
    let mut rest = x.clone();
    for r in 0..m {
        for j in 0..k {
            let outlier = outliers_of_row(&x[r * k..(r + 1) * k]).contains(&j);
            if outlier || columns.contains(&j) {
                rest[r * k + j] = 0.0;
            }
        }
    }
    for kernel in Kernel::available() {
        let w = Q8Rows::quantize(&wf, n, k, kernel).into_layout(kernel.weight_layout());
        let inliers = matmul(&Q8Rows::quantize(&rest, m, k, kernel), &w, kernel);
        let got = Activations::new(&x, m, k, &columns, kernel).matmul(&w, None, &exact);
        for r in 0..m {
            let outliers = outliers_of_row(&x[r * k..(r + 1) * k]);
            for c in 0..n {
                let expected: f32 = (0..k)
                    .filter(|j| columns.contains(j) || outliers.contains(j))
                    .map(|j| match columns.contains(&j) {
                        true => x[r * k + j] * wf[c * k + j],
                        false => x[r * k + j] * w.value(c, j),
                    })
                    .sum();
                let part = got[r * n + c] - inliers[r * n + c];
                assert!(
                    (part - expected).abs() <= 1e-3 * (1.0 + expected.abs()),
                    "{kernel:?} row {r} channel {c}: {part} vs {expected}"
                );
            }
        }
    }
}

#[test]
fn exact_columns_give_the_same_bits_by_column_or_by_task_alone_or_in_a_batch() {
    let (m, n, k) = (6, 70, 320);
    let columns = [10, 64, 300];
    let mut x = rows_with_large_columns(m, k, &columns, 81);
    x[2 * k + 150] = 90.0; // and an outlier of one row's own
    x[4 * k + 64] = 0.01; // a kept column whose value is small in one row
    let wf = values(n * k, 82, 0.1);
    let exact = ExactColumns::of_rows(&wf, n, k, &columns);
    for kernel in Kernel::available() {
        let w = Q8Rows::quantize(&wf, n, k, kernel).into_layout(kernel.weight_layout());
        let by_column = WeightColumns::new(&w);
        let product = |x: &[f32], rows: usize, by_column: Option<&WeightColumns>| {
            Activations::new(x, rows, k, &columns, kernel).matmul(&w, by_column, &exact)
        };
        let batch = product(&x, m, None);
        assert_eq!(
            product(&x, m, Some(&by_column)),
            batch,
            "{kernel:?} by column"
        );
        for r in 0..m {
            let alone = product(&x[r * k..(r + 1) * k], 1, Some(&by_column));
            assert_eq!(alone, batch[r * n..(r + 1) * n], "{kernel:?} row {r}");
        }
    }
}

#[test]
#[should_panic(expected = "prepared for other exact columns")]
fn activations_refuse_weights_that_keep_other_columns() {
    let (n, k) = (4, 64);
    let wf = values(n * k, 91, 0.1);
    let w = Q8Rows::quantize(&wf, n, k, Kernel::Scalar);
    let x = values(k, 92, 1.0);
    let exact = ExactColumns::of_rows(&wf, n, k, &[5]);
    Activations::new(&x, 1, k, &[6], Kernel::Scalar).matmul(&w, None, &exact);
}

#[test]
fn exact_columns_from_parts_are_checked() {
    assert!(ExactColumns::from_parts(vec![1, 3], 2, 8, vec![0.0; 4]).is_ok());
    assert!(ExactColumns::from_parts(vec![3, 1], 2, 8, vec![0.0; 4]).is_err());
    assert!(ExactColumns::from_parts(vec![1, 8], 2, 8, vec![0.0; 4]).is_err());
    assert!(ExactColumns::from_parts(vec![1, 3], 2, 8, vec![0.0; 3]).is_err());
}

/// The outliers as the median's definition gives them: values above the ratio times the
/// magnitude at position k / 2 of the sorted magnitudes, at most k / 16, the largest.
fn outliers_by_sorting(row: &[f32]) -> Vec<usize> {
    let mut sorted: Vec<f32> = row.iter().map(|v| v.abs()).collect();
    sorted.sort_by(f32::total_cmp);
    let threshold = sorted[row.len() / 2] * 8.0;
    let mut found: Vec<usize> = (0..row.len())
        .filter(|&j| row[j].abs() > threshold)
        .collect();
    found.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()));
    found.truncate(row.len() / 16);
    found.sort_unstable();
    found
}

#[test]
fn the_outliers_found_without_a_selection_are_those_the_median_defines() {
    // Rows whose median reaches an eighth of their largest value (no selection needed),
    // rows with a heavy tail, one spike, zeros and tiny values.
    let k = 896;
    let smooth = values(k, 11, 1.0);
    let heavy: Vec<f32> = values(k, 12, 1.0)
        .iter()
        .map(|v| v * v * v * v * v)
        .collect();
    let mut spike = smooth.clone();
    spike[300] = 40.0;
    // Subnormals where an eighth of the largest rounds down: 251 units / 8 -> 31, and
    // 8 x 31 = 248 < 251, so the largest is an outlier of a row of 31s.
    let mut inexact_eighth = vec![f32::from_bits(31); k];
    inexact_eighth[7] = f32::from_bits(251);
    let tiny: Vec<f32> = smooth.iter().map(|v| v * 1e-38).collect();
    let mut tiny_spike = tiny.clone();
    tiny_spike[7] = 2e-38;
    for row in [
        &smooth,
        &heavy,
        &spike,
        &vec![0.0; k],
        &inexact_eighth,
        &tiny,
        &tiny_spike,
    ] {
        assert_eq!(outliers_of_row(row), outliers_by_sorting(row));
        for kernel in Kernel::available() {
            assert_eq!(outliers_of_row_on(row, kernel), outliers_by_sorting(row));
        }
    }
    assert!(
        !outliers_of_row(&heavy).is_empty(),
        "the heavy row has outliers"
    );
    assert_eq!(outliers_of_row(&inexact_eighth), vec![7]);
}

#[test]
fn activations_prepared_in_place_equal_those_of_the_prepared_rows() {
    let (m, k, n) = (6, 96, 40);
    let x = values(m * k, 11, 1.0);
    let weights = values(n * k, 12, 0.1);
    let w = Q8Rows::quantize(&weights, n, k, Kernel::Scalar);
    let columns = [3usize, 50];
    let exact = ExactColumns::of_rows(&weights, n, k, &columns);
    // Each row rewritten; row 2 gets an outlier, so one row is split and others are not.
    let prepare = |r: usize, row: &mut [f32]| {
        for (j, v) in row.iter_mut().enumerate() {
            *v = *v * 2.0 + (r * k + j) as f32 * 1e-3;
        }
        if r == 2 {
            row[7] = 300.0;
        }
    };
    let mut by_hand = x.clone();
    for (r, row) in by_hand.chunks_exact_mut(k).enumerate() {
        prepare(r, row);
    }
    for kernel in Kernel::available() {
        let plain = Activations::new(&by_hand, m, k, &columns, kernel);
        let mut in_place = x.clone();
        let prepared = Activations::prepared(&mut in_place, m, k, &columns, kernel, prepare);
        assert_eq!(prepared.values(), &by_hand[..], "{kernel:?}");
        let (got, want) = (
            prepared.matmul(&w, None, &exact),
            plain.matmul(&w, None, &exact),
        );
        assert!(crate::test_support::same_bits(&got, &want), "{kernel:?}");
    }
}

#[test]
fn errors_are_what_quantizing_lost_and_zero_where_values_stay_exact() {
    let (rows, cols) = (5, 70);
    let data = values(rows * cols, 81, 2.0);
    let q = Q8Rows::quantize(&data, rows, cols, Kernel::Scalar);
    let zeroed = [3, 40];
    let errors = q.errors(&data, |r| if r == 2 { &zeroed[..] } else { &[] });
    for r in 0..rows {
        for c in 0..cols {
            let (want, got) = (data[r * cols + c] - q.value(r, c), errors[r * cols + c]);
            match r == 2 && zeroed.contains(&c) {
                true => assert_eq!(got, 0.0, "row {r} column {c}"),
                false => assert_eq!(got, want, "row {r} column {c}"),
            }
        }
    }
}

/// The parts of a refined product of `x` (`m × k`, with `columns` kept exact) and `wf`
/// (`n × k`) for `kernel`: its refined and its plain product.
fn refined_and_plain(
    x: &[f32],
    wf: &[f32],
    (m, n, k): (usize, usize, usize),
    columns: &[usize],
    kernel: Kernel,
) -> (Vec<f32>, Vec<f32>) {
    let w = Q8Rows::quantize(wf, n, k, kernel);
    let refinement = Q8Rows::quantize(&w.errors(wf, |_| columns), n, k, kernel)
        .into_layout(kernel.weight_layout());
    let w = w.into_layout(kernel.weight_layout());
    let exact = ExactColumns::of_rows(wf, n, k, columns);
    let activations = Activations::new(x, m, k, columns, kernel);
    let errors = activations.errors();
    let errors = Activations::new(&errors, m, k, &[], kernel);
    (
        activations.refined_matmul(&errors, &w, None, &exact, &refinement),
        activations.matmul(&w, None, &exact),
    )
}

#[test]
fn refined_products_keep_only_second_order_errors() {
    let (m, n, k) = (6, 48, 896);
    let columns = [5, 300];
    let mut x = rows_with_large_columns(m, k, &columns, 91);
    x[2 * k + 17] = 80.0; // an outlier of one row, multiplied in f32
    let wf = values(n * k, 92, 0.05);
    let want = exact_product(&x, &wf, m, n, k);
    let error = |got: &[f32]| relative_error(got, &want);
    for kernel in Kernel::available() {
        let (refined, plain) = refined_and_plain(&x, &wf, (m, n, k), &columns, kernel);
        let (refined, plain) = (error(&refined), error(&plain));
        // Measured 1.7e-5 against 4.0e-3 (234 times less) with every kernel: what is
        // left is the product of two quantization errors and f32's own rounding.
        assert!(
            refined * 100.0 < plain,
            "{kernel:?}: {refined} refined vs {plain}"
        );
    }
}

#[test]
fn a_refined_row_gives_alone_what_it_gives_in_a_batch() {
    let (m, n, k) = (5, 40, 320);
    let columns = [11];
    let mut x = rows_with_large_columns(m, k, &columns, 93);
    x[3 * k + 200] = -70.0;
    let wf = values(n * k, 94, 0.05);
    for kernel in Kernel::available() {
        let (batch, _) = refined_and_plain(&x, &wf, (m, n, k), &columns, kernel);
        for r in 0..m {
            let row = &x[r * k..(r + 1) * k];
            let (alone, _) = refined_and_plain(row, &wf, (1, n, k), &columns, kernel);
            assert_eq!(alone, batch[r * n..(r + 1) * n], "{kernel:?} row {r}");
        }
    }
}

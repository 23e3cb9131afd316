//! The 8-bit product against candle's f32 product and Lancet's (`lancet_udf::dense`) on
//! the encoder's shapes, one thread pool, each timed over repeated runs after a warm-up:
//!
//!     RAYON_NUM_THREADS=2 cargo bench -p lancet-udf --bench q8_kernel -- [--tokens 64]
//!
//! Prints multiply-accumulates per second for each shape (the MLP's up projection and
//! its down projection at the 0.5B widths) and each kernel this CPU runs.

#[path = "support/args.rs"]
mod args;

use args::arg;
use candle_core::{Device, Tensor};
use lancet_udf::dense::{self, F32Panels};
use lancet_udf::quant::{matmul, matmul_f32, Kernel, Q8Rows};
use std::time::Instant;

/// Seconds per run of `f`, the best of `runs` after one warm-up.
fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let m = arg("--tokens", 64);
    let runs = arg("--runs", 5);
    let kernels: Vec<Kernel> = Kernel::available()
        .into_iter()
        .filter(|k| k.is_simd())
        .collect();
    println!("kernels {kernels:?}, {m} tokens, best of {runs}");
    for (name, k, n) in [("up 896->4864", 896, 4864), ("down 4864->896", 4864, 896)] {
        let mut seed = 7u64;
        let mut random = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect()
        };
        let x = random(m * k);
        let w = random(n * k);
        let macs = (m * k * n) as f64;
        let rate = |s: f64| macs / s / 1e9;
        for &kernel in &kernels {
            // In the order the encoder keeps them for this kernel.
            let wq = Q8Rows::quantize(&w, n, k, kernel).into_layout(kernel.weight_layout());
            let xq = Q8Rows::quantize(&x, m, k, kernel);
            let q8_product = time(runs, || {
                std::hint::black_box(matmul(&xq, &wq, kernel));
            });
            let q8_whole = time(runs, || {
                std::hint::black_box(matmul_f32(&x, m, k, &wq, None, kernel));
            });
            println!(
                "{name}: {kernel:?} q8 product {:.1} GMAC/s, with quantizing x {:.1} GMAC/s",
                rate(q8_product),
                rate(q8_whole),
            );
        }
        let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(w.clone(), (n, k), &Device::Cpu)
            .unwrap()
            .t()
            .unwrap();
        let f32_product = time(runs, || {
            std::hint::black_box(xt.matmul(&wt).unwrap());
        });
        println!("{name}: candle f32 {:.1} GMAC/s", rate(f32_product));
        let panels = F32Panels::pack(&w, n, k, None);
        for &kernel in &kernels {
            let f32_panels = time(runs, || {
                std::hint::black_box(dense::matmul(&x, m, &panels, kernel));
            });
            println!(
                "{name}: {kernel:?} f32 panels {:.1} GMAC/s",
                rate(f32_panels)
            );
        }
    }
}

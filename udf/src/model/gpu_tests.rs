//! The CUDA encoder against the CPU one, on the repository's tiny parity models (both
//! families). Built only with `--features cuda`; each test skips itself (passing, with a
//! note on stderr) when no CUDA device answers, as on a machine that only compiles the
//! feature.

use super::{DeviceSpec, EncoderOptions, QwenEncoder};
use crate::{Encoder, Task};
use std::path::{Path, PathBuf};

/// A parity model: under `LANCET_FIXTURES` (a test binary carried to a GPU machine runs
/// away from this checkout), else under the repository's fixtures.
fn fixture(name: &str) -> String {
    let root = std::env::var_os("LANCET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures"));
    root.join(name).display().to_string()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The model in `fixture` on CUDA in bf16 gives the CPU's f32 vectors within bf16
/// rounding, for queries and documents in a padded batch, and a batch equals its rows.
fn cuda_matches_cpu(fixture_name: &str) {
    let model = fixture(fixture_name);
    let cuda = match QwenEncoder::load(
        &model,
        EncoderOptions {
            device: DeviceSpec::Cuda(0),
            ..EncoderOptions::default()
        },
    ) {
        Ok(encoder) => encoder,
        Err(e) => {
            eprintln!("skipped: no CUDA device answers ({e})");
            return;
        }
    };
    let cpu = QwenEncoder::load(&model, EncoderOptions::default()).unwrap();
    let texts = [
        "fn main() { println!(\"hello\"); }",
        "def parse(line):\n    return [f.strip() for f in line.split(',')]",
        "x",
    ];
    for task in [Task::Nl2Code.query(), Task::Nl2Code.document()] {
        let on_gpu = cuda.encode(&texts, task).unwrap();
        let on_cpu = cpu.encode(&texts, task).unwrap();
        for (i, (g, c)) in on_gpu.rows().zip(on_cpu.rows()).enumerate() {
            let cos = cosine(g, c);
            eprintln!("{fixture_name} {task:?} text {i}: cosine {cos:.6}");
            assert!(cos >= 0.999, "{fixture_name} text {i}: cosine {cos}");
        }
        let single = cuda.encode(&texts[..1], task).unwrap();
        let cos = cosine(single.row(0), on_gpu.row(0));
        assert!(cos >= 0.9999, "{fixture_name}: alone vs batch {cos}");
    }
}

#[test]
fn cuda_bf16_qwen2_matches_the_cpu_within_bf16_rounding() {
    cuda_matches_cpu("tiny-qwen2");
}

#[test]
fn cuda_bf16_qwen3_matches_the_cpu_within_bf16_rounding() {
    cuda_matches_cpu("tiny-qwen3");
}

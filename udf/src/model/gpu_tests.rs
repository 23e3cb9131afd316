//! The CUDA encoder against the CPU one, on the repository's tiny parity model. Built
//! only with `--features cuda`; each test skips itself (passing, with a note on stderr)
//! when no CUDA device answers, as on a machine that only compiles the feature.

use super::{DeviceSpec, EncoderOptions, QwenEncoder};
use crate::{Encoder, Task};
use std::path::Path;

/// The parity model: `LANCET_TINY_MODEL` (a test binary carried to a GPU machine runs
/// away from this checkout), else the repository's fixture.
fn tiny_model() -> String {
    std::env::var("LANCET_TINY_MODEL").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tiny-qwen2")
            .display()
            .to_string()
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn cuda_bf16_embeddings_match_the_cpu_within_bf16_rounding() {
    let cuda = match QwenEncoder::load(
        &tiny_model(),
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
    let cpu = QwenEncoder::load(&tiny_model(), EncoderOptions::default()).unwrap();
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
            assert!(cos >= 0.999, "text {i}: cosine {cos}");
        }
        // A batch equals its rows one by one.
        let single = cuda.encode(&texts[..1], task).unwrap();
        assert!(cosine(single.row(0), on_gpu.row(0)) >= 0.9999);
    }
}

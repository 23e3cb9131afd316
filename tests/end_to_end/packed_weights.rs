//! q8 weights packed at a model's first load and memory-mapped at the next ones, and the
//! token embedding read from the mapped weights file.

use crate::support::tiny_model::write_tiny_model_as;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use lancet::udf::model::{Linears, Qwen2Config, Qwen2Model};
use lancet::udf::{Encoder, EncoderOptions, Precision, QwenEncoder, Task};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TEXTS: [&str; 3] = [
    "fn main() { println!(\"hello\"); }",
    "def quicksort(xs):\n    return sorted(xs)  # longer, so that the batch is padded",
    "SELECT * FROM t",
];

fn q8(model: &Path, cache: Option<&Path>) -> QwenEncoder {
    let options = EncoderOptions {
        precision: Precision::Q8,
        weights_cache: cache.map(Path::to_path_buf),
        ..EncoderOptions::default()
    };
    QwenEncoder::load(model.to_str().unwrap(), options).unwrap()
}

fn vectors(encoder: &QwenEncoder) -> Vec<f32> {
    encoder
        .encode(&TEXTS, Task::Nl2Code.document())
        .unwrap()
        .data
}

fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

/// The tensors a safetensors file's header names.
fn tensor_names(file: &[u8]) -> Vec<String> {
    let header = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&file[8..8 + header]).unwrap();
    header
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name != "__metadata__")
        .collect()
}

#[test]
fn q8_weights_are_packed_once_and_mapped_after_with_the_same_vectors() {
    let root = tempfile::tempdir().unwrap();
    let (model, cache) = (root.path().join("model"), root.path().join("weights"));
    write_tiny_model_as(&model, 5, DType::BF16);

    let quantized_at_load = q8(&model, None);
    assert!(!quantized_at_load.weights_mapped());
    let expected = vectors(&quantized_at_load);

    // The first load packs; what it maps gives the vectors of quantizing at load, bit
    // for bit.
    let first = q8(&model, Some(&cache));
    assert!(first.weights_mapped());
    assert_eq!(vectors(&first), expected);
    let packed = packs(&cache);
    assert_eq!(packed.len(), 1, "{packed:?}");
    let pack = packed[0].clone();
    assert!(pack.to_string_lossy().ends_with(".q8.safetensors"));
    let written = std::fs::read(&pack).unwrap();
    // The first layer's seven projections are packed with their refinements, and only
    // they.
    let refined: Vec<String> = tensor_names(&written)
        .into_iter()
        .filter(|name| name.ends_with(".refinement.q8"))
        .collect();
    assert_eq!(refined.len(), 7, "{refined:?}");
    assert!(
        refined.iter().all(|name| name.contains("layers.0.")),
        "{refined:?}"
    );

    // The next load maps the same file and writes nothing.
    let second = q8(&model, Some(&cache));
    assert!(second.weights_mapped());
    assert_eq!(vectors(&second), expected);
    assert_eq!(std::fs::read(&pack).unwrap(), written);

    // A damaged file (cut short, or not safetensors at all) is packed again.
    for damage in [&written[..written.len() / 2], b"not safetensors".as_slice()] {
        std::fs::write(&pack, damage).unwrap();
        let again = q8(&model, Some(&cache));
        assert!(again.weights_mapped());
        assert_eq!(vectors(&again), expected);
        // Packed whole again (its header's key order may differ).
        assert_eq!(
            std::fs::metadata(&pack).unwrap().len(),
            written.len() as u64
        );
    }

    // New weights in the same folder get their own pack, and the old one goes.
    write_tiny_model_as(&model, 6, DType::BF16);
    let retrained = q8(&model, Some(&cache));
    assert!(retrained.weights_mapped());
    assert_ne!(vectors(&retrained), expected);
    let now = packs(&cache);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0], pack);

    // A model folder of the same name elsewhere is another model: both packs stay.
    let elsewhere = root.path().join("other").join("model");
    write_tiny_model_as(&elsewhere, 7, DType::BF16);
    assert!(q8(&elsewhere, Some(&cache)).weights_mapped());
    assert_eq!(packs(&cache).len(), 2);
    assert!(q8(&model, Some(&cache)).weights_mapped());
    assert_eq!(packs(&cache).len(), 2);
    std::fs::remove_file(packs(&cache).into_iter().find(|p| *p != now[0]).unwrap()).unwrap();

    // f32 has nothing to pack.
    let f32_encoder = QwenEncoder::load(
        model.to_str().unwrap(),
        EncoderOptions {
            weights_cache: Some(cache.clone()),
            ..EncoderOptions::default()
        },
    )
    .unwrap();
    assert!(!f32_encoder.weights_mapped());
    assert_eq!(packs(&cache), now);
}

/// Multiplies one norm gain of each norm of the model in `dir` by 30: channels q8 keeps
/// exact in the projections reading them.
fn scale_norm_gains(dir: &Path) {
    let path = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    for (name, tensor) in tensors.iter_mut() {
        if name.ends_with("layernorm.weight") {
            let dtype = tensor.dtype();
            let mut gains = tensor
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            gains[5] *= 30.0;
            *tensor = Tensor::new(gains, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
        }
    }
    candle_core::safetensors::save(&tensors, &path).unwrap();
}

#[test]
fn the_exact_columns_of_large_norm_gains_are_packed_and_mapped_with_the_same_vectors() {
    let root = tempfile::tempdir().unwrap();
    let (model, cache) = (root.path().join("model"), root.path().join("weights"));
    write_tiny_model_as(&model, 5, DType::BF16);
    scale_norm_gains(&model);

    let expected = vectors(&q8(&model, None));
    let packed = q8(&model, Some(&cache));
    assert!(packed.weights_mapped());
    assert_eq!(vectors(&packed), expected);
    let pack = std::fs::read(&packs(&cache)[0]).unwrap();
    let header_len = u64::from_le_bytes(pack[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&pack[8..8 + header_len]).into_owned();
    for projection in ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"] {
        assert!(
            header.contains(&format!("{projection}.weight.exact_columns")),
            "{projection}: {header}"
        );
    }
    assert!(!header.contains("o_proj.weight.exact_columns"));
    assert!(!header.contains("down_proj.weight.exact_columns"));
    // The projections writing the residual stream keep the channels that the norm
    // reading it next amplifies in f32: both layers' attention outputs (each layer's
    // post-attention norm), the first layer's MLP (the second's input norm); not the
    // last MLP (the final norm's gains were left alone).
    for kept in [
        "layers.0.self_attn.o_proj.weight.exact_rows",
        "layers.1.self_attn.o_proj.weight.exact_rows",
        "layers.0.mlp.down_proj.weight.exact_rows",
    ] {
        assert!(header.contains(kept), "{kept}: {header}");
    }
    assert!(!header.contains("layers.1.mlp.down_proj.weight.exact_rows"));
    // Only the down projections' weights are rotated (their inputs, 128 wide, are).
    assert_eq!(header.matches(".rotation").count(), 2, "{header}");
    assert!(header.contains("layers.0.mlp.down_proj.weight.rotation"));
    // Mapped again at the next load.
    assert_eq!(vectors(&q8(&model, Some(&cache))), expected);
}

#[test]
fn a_cache_folder_that_cannot_be_written_still_loads_the_model() {
    let root = tempfile::tempdir().unwrap();
    let model = root.path().join("model");
    write_tiny_model_as(&model, 5, DType::BF16);
    // A file where the folder should be.
    let blocked = root.path().join("weights");
    std::fs::write(&blocked, b"a file").unwrap();
    let encoder = q8(&model, Some(&blocked));
    assert!(!encoder.weights_mapped());
    assert_eq!(vectors(&encoder), vectors(&q8(&model, None)));
}

#[test]
fn the_token_embedding_read_from_the_mapped_file_equals_the_table() {
    let root = tempfile::tempdir().unwrap();
    write_tiny_model_as(root.path(), 9, DType::BF16);
    let config = std::fs::read_to_string(root.path().join("config.json")).unwrap();
    let config = Qwen2Config::from_json(&config, "config.json").unwrap();
    let weights = [root.path().join("model.safetensors")];
    let vb = || unsafe {
        VarBuilder::from_mmaped_safetensors(&weights, DType::F32, &Device::Cpu).unwrap()
    };
    let mapped = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&weights) }.unwrap();
    let table = Qwen2Model::new(&config, vb(), 64).unwrap();
    let from_map = Qwen2Model::load(
        &config,
        vb(),
        64,
        &Linears::new(Precision::F32),
        Some(Arc::new(mapped)),
    )
    .unwrap();
    let ids = Tensor::new(&[[3u32, 17, 255, 0], [42, 7, 0, 0]], &Device::Cpu).unwrap();
    let run = |model: &Qwen2Model| {
        model
            .forward_last_token(&ids, &[4, 2], None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(run(&from_map), run(&table));
    // An id outside the vocabulary is an error, not a read past the table.
    let outside = Tensor::new(&[[3u32, 260]], &Device::Cpu).unwrap();
    let err = from_map
        .forward_last_token(&outside, &[2], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the vocabulary"), "{err}");
}

//! The candle Qwen2 encoder on a tiny random model in the real file formats.

use crate::support::tiny_model::{write_tiny_model, HIDDEN};
use lancet::udf::model::TextTokenizer;
use lancet::udf::{Encoder, EncoderOptions, ModelFiles, Precision, PromptStyle, QwenEncoder, Task};
use std::path::Path;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn a_text_alone_and_inside_a_padded_batch_gives_the_same_vector() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 7);
    let encoder =
        QwenEncoder::load(dir.path().to_str().unwrap(), EncoderOptions::default()).unwrap();
    assert_eq!(encoder.identity().dim, HIDDEN);
    let texts = [
        "fn main() { println!(\"hello\"); }",
        "x",
        "def quicksort(xs):\n    return sorted(xs)  # a much longer input than the others, to force padding",
        "SELECT * FROM t",
    ];
    let batch = encoder.encode(&texts, Task::Nl2Code.document()).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (i, text) in texts.iter().enumerate() {
        let alone = encoder.encode(&[text], Task::Nl2Code.document()).unwrap();
        let c = cosine(alone.row(0), batch.row(i));
        assert!(c >= 0.99999, "text {i}: cosine {c}");
        assert!(batch.row(i).iter().all(|x| x.is_finite()));
    }
    // Different texts and different prompts give different vectors.
    assert!(cosine(batch.row(0), batch.row(3)) < 0.999);
    let as_query = encoder.encode(&[texts[0]], Task::Nl2Code.query()).unwrap();
    assert!(cosine(as_query.row(0), batch.row(0)) < 0.999);
    // An empty text still has a vector.
    let empty = encoder.encode(&[""], Task::Qa.document()).unwrap();
    assert!(empty.row(0).iter().all(|x| x.is_finite()));
}

#[test]
fn long_inputs_are_truncated_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 7);
    let options = EncoderOptions {
        max_document_tokens: 48,
        ..EncoderOptions::default()
    };
    let encoder = QwenEncoder::load(dir.path().to_str().unwrap(), options).unwrap();
    let long = "a".repeat(500);
    let out = encoder
        .encode(&[long.as_str(), "short"], Task::Nl2Code.document())
        .unwrap();
    assert_eq!(out.truncated, 1);
    assert!(out.tokens <= 48 + 48);
    // A 1 MB query (more than a command line can carry) is cut at the query limit, with
    // control characters and non-ASCII text in it.
    let megabyte =
        "fn retry(request) { loop { send(request) } } \u{0}\u{1b}[31m 日本語 🎉 ".repeat(16_000);
    assert!(megabyte.len() > 1 << 20);
    let out = encoder
        .encode(&[megabyte.as_str()], Task::Nl2Code.query())
        .unwrap();
    assert_eq!(out.truncated, 1);
    assert!(out.data.iter().all(|x| x.is_finite()));
}

#[test]
fn identity_follows_the_weights_not_the_folder_name() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
    );
    write_tiny_model(&a, 1);
    write_tiny_model(&b, 1);
    write_tiny_model(&c, 2);
    let load = |p: &std::path::Path| {
        QwenEncoder::load(p.to_str().unwrap(), EncoderOptions::default()).unwrap()
    };
    let (ea, eb, ec) = (load(&a), load(&b), load(&c));
    assert!(ea.identity().same_model(eb.identity()));
    assert!(!ea.identity().same_model(ec.identity()));
}

#[test]
fn numerics_tell_apart_what_changes_a_vector_besides_the_weights() {
    let root = tempfile::tempdir().unwrap();
    write_tiny_model(root.path(), 1);
    let load = |options: EncoderOptions| {
        QwenEncoder::load(root.path().to_str().unwrap(), options).unwrap()
    };
    let f32_512 = load(EncoderOptions::default()).numerics();
    let q8_512 = load(EncoderOptions {
        precision: Precision::Q8,
        ..EncoderOptions::default()
    })
    .numerics();
    let f32_128 = load(EncoderOptions {
        max_document_tokens: 128,
        ..EncoderOptions::default()
    })
    .numerics();
    assert!(f32_512.starts_with("cpu-f32-"), "{f32_512}");
    assert!(q8_512.starts_with("cpu-q8-"), "{q8_512}");
    assert_ne!(
        f32_512, f32_128,
        "the length limit truncates, so it changes vectors"
    );
    assert_eq!(f32_512, load(EncoderOptions::default()).numerics());
}

#[test]
fn broken_models_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), 3);
    let path = dir.path().to_str().unwrap().to_string();
    // Another architecture.
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"qwen2\"", "\"llama\""),
    )
    .unwrap();
    let err = QwenEncoder::load(&path, EncoderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model_type is `llama`"), "{err}");
    // Weights that do not match the config.
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"hidden_size\": 64", "\"hidden_size\": 96"),
    )
    .unwrap();
    let err = QwenEncoder::load(&path, EncoderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("do not match its config.json"), "{err}");
    // Corrupt weights.
    std::fs::write(dir.path().join("config.json"), &config).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
    let err = QwenEncoder::load(&path, EncoderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot read weights"), "{err}");
    // Corrupt tokenizer.
    write_tiny_model(dir.path(), 3);
    std::fs::write(dir.path().join("tokenizer.json"), b"{").unwrap();
    let err = QwenEncoder::load(&path, EncoderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot load tokenizer"), "{err}");
}

/// Parity with Hugging Face transformers: `scripts/make_parity_fixture.py` built the tiny
/// model in `tests/fixtures/tiny-qwen2` and recorded its last-token embeddings for a
/// right-padded batch.
#[test]
fn matches_the_transformers_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-qwen2");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let texts: Vec<String> = serde_json::from_value(reference["texts"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(reference["ids"].clone()).unwrap();
    let expected: Vec<Vec<f32>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    assert_eq!(reference["prompt"], Task::Nl2Code.document().prompt());

    let files = ModelFiles::locate(dir.to_str().unwrap()).unwrap();
    let tokenizer = TextTokenizer::from_file(&files.tokenizer, 8192).unwrap();
    let prompted: Vec<String> = texts
        .iter()
        .map(|t| Task::Nl2Code.document().apply(t))
        .collect();
    let tokenized = tokenizer.encode_batch(prompted).unwrap();
    for (t, ids) in tokenized.iter().zip(&ids) {
        assert_eq!(&t.ids, ids);
    }

    let encoder = QwenEncoder::from_files(&files, EncoderOptions::default()).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let out = encoder.encode(&refs, Task::Nl2Code.document()).unwrap();
    for (i, want) in expected.iter().enumerate() {
        let c = cosine(out.row(i), want);
        let max_diff = out
            .row(i)
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(c >= 0.99999, "text {i}: cosine {c}");
        assert!(max_diff < 1e-3, "text {i}: max abs difference {max_diff}");
    }
}

/// Parity of the Qwen3 family with transformers: `scripts/make_qwen3_parity_fixture.py`
/// built the tiny Qwen3 in `tests/fixtures/tiny-qwen3` (head_dim != hidden / heads,
/// grouped-query attention, per-head q/k norms, no bias, weights without the `model.`
/// prefix) and recorded the last-token embeddings of instruction-prompted queries and
/// plain documents (each ending in the `<|endoftext|>` its tokenizer appends) for one
/// right-padded batch.
#[test]
fn qwen3_matches_the_transformers_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-qwen3");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let queries: Vec<String> = serde_json::from_value(reference["queries"].clone()).unwrap();
    let documents: Vec<String> = serde_json::from_value(reference["documents"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(reference["ids"].clone()).unwrap();
    let expected: Vec<Vec<f32>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    let style = PromptStyle::Qwen3Embedding;
    assert_eq!(
        reference["query_prefix"],
        style.prefix(Task::Nl2Code.query())
    );

    // The ids the encoder runs: the prompt as Qwen3-Embedding writes it, the end token
    // appended by the tokenizer's post-processor.
    let files = ModelFiles::locate(dir.to_str().unwrap()).unwrap();
    let tokenizer = TextTokenizer::from_file(&files.tokenizer, 8192).unwrap();
    let prompted: Vec<String> = queries
        .iter()
        .map(|q| style.apply(Task::Nl2Code.query(), q))
        .chain(
            documents
                .iter()
                .map(|d| style.apply(Task::Nl2Code.document(), d)),
        )
        .collect();
    let tokenized = tokenizer.encode_batch(prompted).unwrap();
    for (t, want) in tokenized.iter().zip(&ids) {
        assert_eq!(&t.ids, want);
    }

    let encoder = QwenEncoder::from_files(&files, EncoderOptions::default()).unwrap();
    assert_eq!(encoder.identity().prompt_set, "qwen3-embedding-v1");
    assert_eq!(encoder.dim(), 48);
    let q: Vec<&str> = queries.iter().map(String::as_str).collect();
    let d: Vec<&str> = documents.iter().map(String::as_str).collect();
    let by_query = encoder.encode(&q, Task::Nl2Code.query()).unwrap();
    let by_document = encoder.encode(&d, Task::Nl2Code.document()).unwrap();
    let got: Vec<&[f32]> = (0..q.len())
        .map(|i| by_query.row(i))
        .chain((0..d.len()).map(|i| by_document.row(i)))
        .collect();
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        let c = cosine(got, want);
        let max_diff = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(c >= 0.99999, "input {i}: cosine {c}");
        assert!(max_diff < 1e-3, "input {i}: max abs difference {max_diff}");
    }
    // A text alone gives what it gives inside the padded batch.
    for (i, text) in q.iter().enumerate() {
        let alone = encoder.encode(&[text], Task::Nl2Code.query()).unwrap();
        let c = cosine(alone.row(0), by_query.row(i));
        assert!(c >= 0.99999, "query {i} alone vs in the batch: {c}");
    }
    for (i, text) in d.iter().enumerate() {
        let alone = encoder.encode(&[text], Task::Nl2Code.document()).unwrap();
        let c = cosine(alone.row(0), by_document.row(i));
        assert!(c >= 0.99999, "document {i} alone vs in the batch: {c}");
    }
    // The 8-bit path runs this family too, within the bounds it keeps for Qwen2.
    let q8 = QwenEncoder::from_files(
        &files,
        EncoderOptions {
            precision: Precision::Q8,
            ..EncoderOptions::default()
        },
    )
    .unwrap();
    let q8_documents = q8.encode(&d, Task::Nl2Code.document()).unwrap();
    let cosines: Vec<f32> = (0..d.len())
        .map(|i| cosine(q8_documents.row(i), &expected[q.len() + i]))
        .collect();
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    assert!(
        mean >= 0.995 && cosines.iter().all(|&c| c >= 0.98),
        "{cosines:?}"
    );
}

/// `--precision q8` on the same fixture: 8-bit blocks stay within the fidelity bounds of
/// the transformers reference (mean cosine at least 0.995, none under 0.98), and a text
/// alone gives what it gives inside a padded batch.
#[test]
fn q8_stays_within_the_fidelity_bounds_of_the_transformers_reference() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-qwen2");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let texts: Vec<String> = serde_json::from_value(reference["texts"].clone()).unwrap();
    let expected: Vec<Vec<f32>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    let options = EncoderOptions {
        precision: Precision::Q8,
        ..EncoderOptions::default()
    };
    let encoder = QwenEncoder::load(dir.to_str().unwrap(), options).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let out = encoder.encode(&refs, Task::Nl2Code.document()).unwrap();
    let cosines: Vec<f32> = (0..texts.len())
        .map(|i| cosine(out.row(i), &expected[i]))
        .collect();
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    assert!(mean >= 0.995, "{cosines:?}");
    assert!(cosines.iter().all(|&c| c >= 0.98), "{cosines:?}");
    for (i, text) in refs.iter().enumerate() {
        let alone = encoder.encode(&[text], Task::Nl2Code.document()).unwrap();
        let c = cosine(alone.row(0), out.row(i));
        assert!(c >= 0.99999, "text {i} alone vs in the batch: {c}");
    }
    // q8 is a CPU path: asking for it on a GPU fails with a clear message.
    let gpu = EncoderOptions {
        precision: Precision::Q8,
        device: "cuda:0".parse().unwrap(),
        ..EncoderOptions::default()
    };
    let error = QwenEncoder::load(dir.to_str().unwrap(), gpu).err().unwrap();
    assert!(error.to_string().contains("--precision f32"), "{error}");
}

/// The real Qwen BPE tokenizer (the Apache-2.0 Qwen3 `tokenizer.json`; Qwen2.5 shares its
/// vocabulary, merges and pre-tokenizer) gives the ids of the Python reference, prompt
/// included, and the chunker's token offsets count the same tokens.
#[test]
fn the_real_qwen_tokenizer_matches_the_python_reference() {
    use lancet::udf::model::TextTokenizer;
    use std::io::Read;
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen-tokenizer");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixtures.join("tokenizer.json.gz")).unwrap())
        .read_to_end(&mut json)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    let tokenizer = TextTokenizer::from_file(&path, 8192).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("reference.json")).unwrap())
            .unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let prompted = lancet::udf::Task::Nl2Code.document().apply(text);
        assert_eq!(prompted, case["prompted"].as_str().unwrap());
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tokenizer.encode_batch(vec![prompted.clone()]).unwrap();
        assert_eq!(got[0].ids, expected, "{text:?}");
        assert!(!got[0].truncated);
        assert_eq!(
            tokenizer.token_starts(&prompted).unwrap().len(),
            expected.len(),
            "{text:?}"
        );
    }
    assert_eq!(tokenizer.pad_id(), 151643);
}

/// `--device cuda:0,1` splits each call's texts across one replica per device; here two
/// CPU replicas stand in for two GPUs: the vectors, their order and the token counts
/// are those of one device, and replicas of different models are refused.
#[test]
fn replicas_on_several_devices_give_the_vectors_of_one() {
    use lancet::udf::{DeviceSpec, ReplicatedEncoder};
    use std::sync::Arc;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-qwen2");
    let spec = dir.to_str().unwrap();
    let one = QwenEncoder::load(spec, EncoderOptions::default()).unwrap();
    let two = QwenEncoder::load_on(
        spec,
        EncoderOptions::default(),
        &[DeviceSpec::Cpu, DeviceSpec::Cpu],
    )
    .unwrap();
    let texts: Vec<String> = (0..7)
        .map(|i| format!("fn f{i}() -> u32 {{ {} }}", "1 + ".repeat(i * 3) + "0"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for task in [Task::Nl2Code.document(), Task::Nl2Code.query()] {
        let a = one.encode(&refs, task).unwrap();
        let b = two.encode(&refs, task).unwrap();
        assert_eq!((a.len(), a.tokens), (b.len(), b.tokens));
        for i in 0..refs.len() {
            let c = cosine(a.row(i), b.row(i));
            assert!(c >= 0.99999, "text {i}: {c}");
        }
    }
    assert_eq!(two.identity(), one.identity());
    assert_eq!(two.numerics(), one.numerics());

    let other = work_model(9);
    let foreign: Arc<dyn Encoder> = Arc::new(
        QwenEncoder::load(other.path().to_str().unwrap(), EncoderOptions::default()).unwrap(),
    );
    let err = ReplicatedEncoder::new(vec![Arc::new(one), foreign])
        .err()
        .unwrap();
    assert!(err.to_string().contains("replicas differ"), "{err}");
}

fn work_model(seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), seed);
    dir
}

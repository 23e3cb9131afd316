//! Finding a model's files: a local directory in the Hugging Face layout, or a hub id
//! resolved through the standard Hugging Face cache (downloading what is missing unless
//! `HF_HUB_OFFLINE` is set).

use crate::{Error, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The model used when none is given.
pub const DEFAULT_MODEL: &str = "jinaai/jina-code-embeddings-0.5b";

const CONFIG: &str = "config.json";
const TOKENIZER: &str = "tokenizer.json";
const SINGLE_WEIGHTS: &str = "model.safetensors";
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// The files of one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// Name of the model: the hub id, or the directory's name.
    pub id: String,
    /// `config.json`.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// Safetensors files holding the weights.
    pub weights: Vec<PathBuf>,
}

fn how_to_provide(spec: &str) -> String {
    format!(
        "download the model on a machine with network access \
         (e.g. `huggingface-cli download {id} --local-dir ./jina-code-embeddings-0.5b`), \
         copy it here and pass its directory with --model DIR (or LANCET_MODEL=DIR); \
         the directory needs config.json, tokenizer.json and model.safetensors \
         (or model-*.safetensors with model.safetensors.index.json)",
        id = if spec.contains('/') && !Path::new(spec).exists() {
            spec
        } else {
            DEFAULT_MODEL
        }
    )
}

impl ModelFiles {
    /// Resolves `spec`: an existing directory is used as it is; anything shaped like
    /// `owner/name` that is not a directory is a hub id.
    pub fn locate(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::from_dir(path);
        }
        if path.exists() {
            return Err(Error::Model(format!(
                "--model {spec} is a file; it must be a model directory or a hub id"
            )));
        }
        if is_hub_id(spec) {
            return Self::from_hub(spec);
        }
        Err(Error::Model(format!(
            "model directory {spec} does not exist; {}",
            how_to_provide(spec)
        )))
    }

    /// The files of a local model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let id = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        let need = |name: &str| -> Result<PathBuf> {
            let file = dir.join(name);
            if file.is_file() {
                Ok(file)
            } else {
                Err(Error::Model(format!(
                    "{} is missing from model directory {}; {}",
                    name,
                    dir.display(),
                    how_to_provide(&dir.display().to_string())
                )))
            }
        };
        let config = need(CONFIG)?;
        let tokenizer = need(TOKENIZER)?;
        let weights = if dir.join(SINGLE_WEIGHTS).is_file() {
            vec![dir.join(SINGLE_WEIGHTS)]
        } else if dir.join(WEIGHTS_INDEX).is_file() {
            shards_of(&dir.join(WEIGHTS_INDEX))?
                .into_iter()
                .map(|shard| need(&shard))
                .collect::<Result<Vec<_>>>()?
        } else {
            return Err(Error::Model(format!(
                "no weights in {}: looked for {SINGLE_WEIGHTS} and {WEIGHTS_INDEX}; {}",
                dir.display(),
                how_to_provide(&dir.display().to_string())
            )));
        };
        Ok(ModelFiles {
            id,
            config,
            tokenizer,
            weights,
        })
    }

    /// The files of a hub model, from the Hugging Face cache, downloading what is missing
    /// unless `HF_HUB_OFFLINE` is set.
    pub fn from_hub(id: &str) -> Result<Self> {
        if let Some(files) = Self::from_cache(id) {
            return Ok(files);
        }
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        if offline {
            return Err(Error::Model(format!(
                "{id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; {}",
                how_to_provide(id)
            )));
        }
        Self::download(id).map_err(|e| {
            Error::Model(format!(
                "could not fetch {id} from the Hugging Face hub ({e}); {}",
                how_to_provide(id)
            ))
        })
    }

    fn from_cache(id: &str) -> Option<Self> {
        if std::env::var_os("HF_HOME").is_none() && std::env::var_os("HOME").is_none() {
            return None;
        }
        Self::from_cache_in(&hf_hub::Cache::from_env(), id)
    }

    /// The files of `id` in one Hugging Face cache (`models--owner--name/refs/main` names
    /// the snapshot folder holding them); `None` when any is missing.
    fn from_cache_in(cache: &hf_hub::Cache, id: &str) -> Option<Self> {
        let repo = cache.model(id.to_string());
        let config = repo.get(CONFIG)?;
        let tokenizer = repo.get(TOKENIZER)?;
        let weights = match repo.get(SINGLE_WEIGHTS) {
            Some(single) => vec![single],
            None => {
                let index = repo.get(WEIGHTS_INDEX)?;
                shards_of(&index)
                    .ok()?
                    .iter()
                    .map(|s| repo.get(s))
                    .collect::<Option<Vec<_>>>()?
            }
        };
        Some(ModelFiles {
            id: id.to_string(),
            config,
            tokenizer,
            weights,
        })
    }

    fn download(id: &str) -> std::result::Result<Self, hf_hub::api::sync::ApiError> {
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(true)
            .build()?;
        let repo = api.model(id.to_string());
        let config = repo.get(CONFIG)?;
        let tokenizer = repo.get(TOKENIZER)?;
        let weights = match repo.get(SINGLE_WEIGHTS) {
            Ok(single) => vec![single],
            Err(single_error) => {
                let index = repo.get(WEIGHTS_INDEX).map_err(|_| single_error)?;
                let shards = shards_of(&index).unwrap_or_default();
                shards
                    .iter()
                    .map(|s| repo.get(s))
                    .collect::<std::result::Result<Vec<_>, _>>()?
            }
        };
        Ok(ModelFiles {
            id: id.to_string(),
            config,
            tokenizer,
            weights,
        })
    }

    /// A fingerprint of the model's content: config, tokenizer, and each weight file's
    /// size, header and 64 evenly spread 64 KiB samples. Fine-tuned weights of the same
    /// shapes change every sample, so they get another fingerprint, while hashing a
    /// gigabyte on every start is avoided.
    pub fn fingerprint(&self) -> Result<String> {
        let mut hasher = blake3::Hasher::new();
        for small in [&self.config, &self.tokenizer] {
            hasher.update(&read_file(small)?);
        }
        for weights in &self.weights {
            sample_file(weights, &mut hasher)?;
        }
        Ok(hasher.finalize().to_hex()[..16].to_string())
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

fn sample_file(path: &Path, hasher: &mut blake3::Hasher) -> Result<()> {
    const SAMPLES: u64 = 64;
    const SAMPLE: usize = 64 * 1024;
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    hasher.update(&size.to_le_bytes());
    let mut buffer = vec![0u8; SAMPLE];
    for i in 0..SAMPLES {
        let offset = size.saturating_sub(SAMPLE as u64) * i / (SAMPLES - 1);
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let n = file.read(&mut buffer).map_err(io)?;
        hasher.update(&buffer[..n]);
    }
    Ok(())
}

/// Shard file names listed by a `model.safetensors.index.json`, in order, once each.
fn shards_of(index: &Path) -> Result<Vec<String>> {
    let text = String::from_utf8(read_file(index)?)
        .map_err(|_| Error::Model(format!("{} is not UTF-8", index.display())))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Model(format!("{}: {e}", index.display())))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::Model(format!("{} has no weight_map", index.display())))?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    shards.sort();
    shards.dedup();
    if shards
        .iter()
        .any(|s| s.contains("..") || s.starts_with('/'))
    {
        return Err(Error::Model(format!(
            "{} names a shard outside the model directory",
            index.display()
        )));
    }
    Ok(shards)
}

fn is_hub_id(spec: &str) -> bool {
    let mut parts = spec.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` into a Hugging Face cache snapshot of `id`, as the hub client does.
    fn cached(hub: &Path, id: &str, files: &[(&str, &str)]) -> PathBuf {
        let repo = hub.join(format!("models--{}", id.replace('/', "--")));
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        let snapshot = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot).unwrap();
        for (name, text) in files {
            std::fs::write(snapshot.join(name), text).unwrap();
        }
        snapshot
    }

    #[test]
    fn a_hub_model_is_found_in_the_cache_with_single_or_sharded_weights() {
        let hub = tempfile::tempdir().unwrap();
        let cache = hf_hub::Cache::new(hub.path().to_path_buf());
        let single = cached(
            hub.path(),
            "org/single",
            &[(CONFIG, "{}"), (TOKENIZER, "{}"), (SINGLE_WEIGHTS, "")],
        );
        let files = ModelFiles::from_cache_in(&cache, "org/single").unwrap();
        assert_eq!(files.id, "org/single");
        assert_eq!(files.config, single.join(CONFIG));
        assert_eq!(files.tokenizer, single.join(TOKENIZER));
        assert_eq!(files.weights, vec![single.join(SINGLE_WEIGHTS)]);

        let index = r#"{"weight_map": {"a": "model-00002-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}"#;
        let sharded = cached(
            hub.path(),
            "org/sharded",
            &[(CONFIG, "{}"), (TOKENIZER, "{}"), (WEIGHTS_INDEX, index)],
        );
        // One shard missing: not in the cache (the hub would be asked for it).
        std::fs::write(sharded.join("model-00001-of-00002.safetensors"), "").unwrap();
        assert_eq!(ModelFiles::from_cache_in(&cache, "org/sharded"), None);
        std::fs::write(sharded.join("model-00002-of-00002.safetensors"), "").unwrap();
        let files = ModelFiles::from_cache_in(&cache, "org/sharded").unwrap();
        assert_eq!(
            files.weights,
            vec![
                sharded.join("model-00001-of-00002.safetensors"),
                sharded.join("model-00002-of-00002.safetensors"),
            ]
        );

        // No tokenizer, or a model never fetched: not in the cache.
        cached(
            hub.path(),
            "org/partial",
            &[(CONFIG, "{}"), (SINGLE_WEIGHTS, "")],
        );
        assert_eq!(ModelFiles::from_cache_in(&cache, "org/partial"), None);
        assert_eq!(ModelFiles::from_cache_in(&cache, "org/absent"), None);
    }

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        assert!(is_hub_id("jinaai/jina-code-embeddings-0.5b"));
        assert!(!is_hub_id("./models/x"));
        assert!(!is_hub_id("/abs/path"));
        assert!(!is_hub_id("single"));
        assert!(!is_hub_id("a/b/c"));
    }

    #[test]
    fn missing_directory_and_files_say_what_to_do() {
        let err = ModelFiles::locate("./no/such/model/dir")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not exist") && err.contains("--model"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = ModelFiles::locate(dir.path().to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.json is missing"), "{err}");
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        let err = ModelFiles::locate(dir.path().to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no weights"), "{err}");
    }

    #[test]
    fn sharded_weights_are_found_through_the_index() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "config.json",
            "tokenizer.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ] {
            std::fs::write(dir.path().join(f), f).unwrap();
        }
        std::fs::write(
            dir.path().join(WEIGHTS_INDEX),
            r#"{"weight_map": {"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let files = ModelFiles::from_dir(dir.path()).unwrap();
        assert_eq!(files.weights.len(), 2);
        assert!(files.weights[0].ends_with("model-00001-of-00002.safetensors"));
        let before = files.fingerprint().unwrap();
        std::fs::write(&files.weights[1], "changed").unwrap();
        assert_ne!(before, files.fingerprint().unwrap());
    }

    #[test]
    fn offline_hub_miss_fails_at_once_with_instructions() {
        let cache = tempfile::tempdir().unwrap();
        // SAFETY: this test is the only one in the crate that touches these variables.
        unsafe {
            std::env::set_var("HF_HOME", cache.path());
            std::env::set_var("HF_HUB_OFFLINE", "1");
        }
        let err = ModelFiles::locate("someone/some-model")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("HF_HUB_OFFLINE") && err.contains("--model DIR"),
            "{err}"
        );
    }
}

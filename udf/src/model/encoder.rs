//! [`QwenEncoder`]: the candle Qwen2 model behind the [`Encoder`] trait.

use super::batching::token_budget_batches;
use super::config::Qwen2Config;
use super::device::DeviceSpec;
use super::files::ModelFiles;
use super::packed::PackedWeights;
use super::precision::Precision;
use super::projection::Linears;
use super::qwen2::{PrefixCache, Qwen2Model};
use super::tokenizer::{TextTokenizer, Tokenized};
use crate::{
    Embeddings, Encoder, Error, ModelIdentity, Pooling, PromptStyle, ReplicatedEncoder, Result,
    Role, TaskRole,
};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How a [`QwenEncoder`] is loaded and run.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderOptions {
    /// Device to run on.
    pub device: DeviceSpec,
    /// Precision; `None` picks the device's default (f32 on CPU, bf16 on CUDA).
    pub dtype: Option<DType>,
    /// Longest query, in tokens (prompt included).
    pub max_query_tokens: usize,
    /// Longest document, in tokens (prompt included): the chunk budget.
    pub max_document_tokens: usize,
    /// Tokens per forward pass, padding included (`max_len * rows`); `None` picks the
    /// device's default (small on CPU, where activations that stay in cache win; large
    /// on CUDA, where bigger matrix products fill the GPU).
    pub batch_tokens: Option<usize>,
    /// Arithmetic of the linear layers (`q8`: 8-bit blocks, CPU only).
    pub precision: Precision,
    /// Folder where q8 weights are packed at the first load of a model and
    /// memory-mapped at later ones ([`PackedWeights`]); `None` quantizes at each load.
    pub weights_cache: Option<PathBuf>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            device: DeviceSpec::Cpu,
            dtype: None,
            max_query_tokens: 8192,
            max_document_tokens: 512,
            batch_tokens: None,
            precision: Precision::F32,
            weights_cache: None,
        }
    }
}

/// jina-code-embeddings, Qwen3-Embedding (or any Qwen2/Qwen3 decoder embedder with
/// last-token pooling) on candle.
pub struct QwenEncoder {
    model: Qwen2Model,
    query_tokenizer: TextTokenizer,
    document_tokenizer: TextTokenizer,
    pad_id: u32,
    identity: ModelIdentity,
    /// How the model family prompts its inputs.
    prompts: PromptStyle,
    options: EncoderOptions,
    /// Keys and values of each task prompt, computed at its first use (`None`: the
    /// prompt has no tokens of its own to reuse).
    prefixes: Mutex<HashMap<TaskRole, Option<Arc<PrefixCache>>>>,
}

impl QwenEncoder {
    /// Loads the model named by `spec` (a directory or a hub id).
    pub fn load(spec: &str, options: EncoderOptions) -> Result<Self> {
        Self::from_files(&ModelFiles::locate(spec)?, options)
    }

    /// Loads the model named by `spec` once per device in `devices` (`cuda:0,1`: see
    /// [`DeviceSpec::parse_list`]); with more than one, each call's texts are split
    /// across them ([`ReplicatedEncoder`]). `options.device` is ignored.
    pub fn load_on(
        spec: &str,
        options: EncoderOptions,
        devices: &[DeviceSpec],
    ) -> Result<Arc<dyn Encoder>> {
        let files = ModelFiles::locate(spec)?;
        let mut replicas: Vec<Arc<dyn Encoder>> = Vec::with_capacity(devices.len());
        for &device in devices {
            let options = EncoderOptions {
                device,
                ..options.clone()
            };
            replicas.push(Arc::new(Self::from_files(&files, options)?));
        }
        if replicas.len() == 1 {
            return Ok(replicas.remove(0));
        }
        Ok(Arc::new(ReplicatedEncoder::new(replicas)?))
    }

    /// Loads a model from its located files.
    pub fn from_files(files: &ModelFiles, options: EncoderOptions) -> Result<Self> {
        let config_text = std::fs::read_to_string(&files.config).map_err(|source| Error::Io {
            path: files.config.display().to_string(),
            source,
        })?;
        let config = Qwen2Config::from_json(&config_text, &files.config.display().to_string())?;
        if options.precision == Precision::Q8 && options.device != DeviceSpec::Cpu {
            return Err(Error::Model(
                "q8 runs on the CPU: use --precision f32 with a GPU".into(),
            ));
        }
        let device = options.device.open()?;
        let dtype = options.dtype.unwrap_or(options.device.default_dtype());
        let fingerprint = files.fingerprint()?;
        let load_model = || -> Result<Qwen2Model> {
            let unreadable = |e: candle_core::Error| {
                Error::Model(format!("cannot read weights of {}: {e}", files.id))
            };
            // SAFETY: the files are memory-mapped read-only; Lancet never writes them,
            // and a concurrent writer of model files is outside what any loader can
            // guard against.
            let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files.weights, dtype, &device) }
                .map_err(unreadable)?;
            // SAFETY: as above.
            let mapped = unsafe { MmapedSafetensors::multi(&files.weights) }.map_err(unreadable)?;
            let linears = Linears {
                precision: options.precision,
                packed: Self::packed(files, &fingerprint, &options),
            };
            let max_positions = options.max_query_tokens.max(options.max_document_tokens);
            Qwen2Model::load(&config, vb, max_positions, &linears, Some(Arc::new(mapped))).map_err(
                |e| {
                    Error::Model(format!(
                        "weights of {} do not match its config.json: {e}",
                        files.id
                    ))
                },
            )
        };
        // The tokenizer parses while the weights load: a real tokenizer.json takes about
        // 0.4 s, most of a start whose weights are mapped.
        let (model, tokenizer) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| TextTokenizer::from_file(&files.tokenizer, 1));
            let model = load_model();
            let tokenizer = tokenizer
                .join()
                .map_err(|_| Error::Tokenizer("loading the tokenizer panicked".into()));
            (model, tokenizer)
        });
        let (model, tokenizer) = (model?, tokenizer??);
        let limit = |n: usize| n.min(model.max_positions());
        let query_tokenizer = tokenizer.with_max_tokens(limit(options.max_query_tokens))?;
        let document_tokenizer = tokenizer.with_max_tokens(limit(options.max_document_tokens))?;
        let identity = ModelIdentity {
            id: files.id.clone(),
            revision: fingerprint,
            pooling: Pooling::LastToken,
            prompt_set: config.prompt_style().prompt_set().to_string(),
            dim: config.hidden_size,
        };
        Ok(QwenEncoder {
            pad_id: query_tokenizer.pad_id(),
            model,
            query_tokenizer,
            document_tokenizer,
            identity,
            prompts: config.prompt_style(),
            options,
            prefixes: Mutex::default(),
        })
    }

    /// The q8 weights packed in `options.weights_cache` (packed now if they are not
    /// there yet); `None` where they are not wanted or cannot be written, and the
    /// projections are then quantized at load.
    fn packed(
        files: &ModelFiles,
        fingerprint: &str,
        options: &EncoderOptions,
    ) -> Option<Arc<PackedWeights>> {
        let dir = options.weights_cache.as_ref()?;
        if options.precision != Precision::Q8 {
            return None;
        }
        match PackedWeights::open_or_pack(dir, files, fingerprint, Precision::kernel()) {
            Ok(packed) => Some(Arc::new(packed)),
            Err(e) => {
                tracing::warn!("q8 weights not packed ({e}); quantizing them at load");
                None
            }
        }
    }

    /// Whether the q8 projections are mapped from packed weights.
    pub fn weights_mapped(&self) -> bool {
        self.options.precision == Precision::Q8 && self.model.projections_mapped()
    }

    fn tokenizer(&self, role: Role) -> &TextTokenizer {
        match role {
            Role::Query => &self.query_tokenizer,
            Role::Document => &self.document_tokenizer,
        }
    }

    /// The task prompt's keys and values, computed once per task and role.
    fn prefix(&self, task: TaskRole) -> Result<Option<Arc<PrefixCache>>> {
        let mut prefixes = self.prefixes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = prefixes.get(&task) {
            return Ok(cached.clone());
        }
        let ids = self
            .tokenizer(task.role)
            .bare_ids(&self.prompts.prefix(task))?;
        let cache = if ids.is_empty() || ids.len() >= self.model.max_positions() {
            None
        } else {
            Some(Arc::new(self.model.prefix_cache(&ids)?))
        };
        prefixes.insert(task, cache.clone());
        Ok(cache)
    }

    /// Pooled vectors of `inputs` (token ids; with `prefix`, the ids after it).
    fn run_batch(&self, inputs: &[&[u32]], prefix: Option<&PrefixCache>) -> Result<Vec<f32>> {
        let max_len = inputs.iter().map(|t| t.len()).max().unwrap_or(1);
        let mut ids = Vec::with_capacity(inputs.len() * max_len);
        for t in inputs {
            ids.extend_from_slice(t);
            ids.extend(std::iter::repeat_n(self.pad_id, max_len - t.len()));
        }
        let lengths: Vec<usize> = inputs.iter().map(|t| t.len()).collect();
        let ids = Tensor::from_vec(ids, (inputs.len(), max_len), self.model.device())?;
        let pooled = self.model.forward_last_token(&ids, &lengths, prefix)?;
        Ok(pooled.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Encodes `rows` (indices into `tokenized`) into `data`, in token-budget batches;
    /// with `prefix`, every row starts with it and only the ids after it are run.
    fn encode_rows(
        &self,
        tokenized: &[Tokenized],
        rows: &[usize],
        prefix: Option<&PrefixCache>,
        data: &mut [f32],
    ) -> Result<()> {
        let dim = self.identity.dim;
        let skip = prefix.map_or(0, |p| p.ids().len());
        let inputs: Vec<&[u32]> = rows.iter().map(|&i| &tokenized[i].ids[skip..]).collect();
        let lengths: Vec<usize> = inputs.iter().map(|ids| ids.len()).collect();
        let budget = self
            .options
            .batch_tokens
            .unwrap_or(self.options.device.default_batch_tokens());
        for batch in token_budget_batches(&lengths, budget) {
            let batch_inputs: Vec<&[u32]> = batch.iter().map(|&j| inputs[j]).collect();
            let pooled = self.run_batch(&batch_inputs, prefix)?;
            for (row, &j) in batch.iter().enumerate() {
                let i = rows[j];
                data[i * dim..(i + 1) * dim].copy_from_slice(&pooled[row * dim..(row + 1) * dim]);
            }
        }
        Ok(())
    }
}

impl Encoder for QwenEncoder {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn max_tokens(&self) -> usize {
        self.document_tokenizer.max_tokens()
    }

    fn encode(&self, texts: &[&str], task: TaskRole) -> Result<Embeddings> {
        let dim = self.identity.dim;
        let prompted: Vec<String> = texts.iter().map(|t| self.prompts.apply(task, t)).collect();
        let mut tokenized = self.tokenizer(task.role).encode_batch(prompted)?;
        for t in &mut tokenized {
            // An empty encoding has no last token: give it the pad token to pool on.
            if t.ids.is_empty() {
                t.ids.push(self.pad_id);
            }
        }
        let lengths: Vec<usize> = tokenized.iter().map(|t| t.ids.len()).collect();
        let mut data = vec![0f32; texts.len() * dim];
        // Rows that open with the prompt's own tokens reuse its keys and values; the
        // rest (a prompt whose last token merged with the text's first) run whole.
        let prefix = self.prefix(task)?;
        let (after_prefix, whole): (Vec<usize>, Vec<usize>) = (0..texts.len())
            .partition(|&i| prefix.as_ref().is_some_and(|p| p.opens(&tokenized[i].ids)));
        self.encode_rows(&tokenized, &after_prefix, prefix.as_deref(), &mut data)?;
        self.encode_rows(&tokenized, &whole, None, &mut data)?;
        Ok(Embeddings {
            dim,
            data,
            tokens: lengths.iter().sum(),
            truncated: tokenized.iter().filter(|t| t.truncated).count(),
        })
    }

    fn token_starts(&self, text: &str) -> Option<Vec<usize>> {
        self.document_tokenizer.token_starts(text).ok()
    }

    fn numerics(&self) -> String {
        let device = match self.options.device {
            DeviceSpec::Cpu => "cpu",
            DeviceSpec::Cuda(_) => "cuda",
        };
        let arithmetic = match self.options.precision {
            Precision::Q8 => "q8".to_string(),
            Precision::F32 => {
                let dtype = self
                    .options
                    .dtype
                    .unwrap_or(self.options.device.default_dtype());
                format!("{dtype:?}").to_ascii_lowercase()
            }
        };
        format!(
            "{device}-{arithmetic}-{}",
            self.document_tokenizer.max_tokens()
        )
    }

    fn input_tokens(&self, texts: &[&str], task: TaskRole) -> Option<Vec<usize>> {
        let prompted: Vec<String> = texts.iter().map(|t| self.prompts.apply(task, t)).collect();
        let tokenized = self.tokenizer(task.role).encode_batch(prompted).ok()?;
        // As `encode` counts them: an empty encoding runs as one pad token.
        Some(tokenized.iter().map(|t| t.ids.len().max(1)).collect())
    }
}

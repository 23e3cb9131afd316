//! A deterministic test encoder: a text's vector is the sum of seeded random vectors of
//! its words, so texts that share words are close. It exists in test code only.

use lancet::udf::{Embeddings, Encoder, ModelIdentity, Pooling, TaskRole};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct HashEncoder {
    identity: ModelIdentity,
    encoded: AtomicUsize,
    /// Fail any call that would take the texts encoded past this many (a job stopped
    /// midway).
    fail_after: Option<usize>,
    /// Called once, when the texts encoded reach this many (the store going away
    /// midway through a job).
    hook: Option<(usize, Hook)>,
}

type Hook = std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>;

impl HashEncoder {
    pub fn new(dim: usize) -> Self {
        HashEncoder {
            identity: ModelIdentity {
                id: "test/hash-encoder".into(),
                revision: "1".into(),
                pooling: Pooling::Mean,
                prompt_set: lancet::udf::PROMPT_SET.into(),
                dim,
            },
            encoded: AtomicUsize::new(0),
            fail_after: None,
            hook: None,
        }
    }

    /// An encoder that calls `hook` once it has encoded `texts` texts.
    pub fn calling_after(mut self, texts: usize, hook: impl FnOnce() + Send + 'static) -> Self {
        self.hook = Some((texts, std::sync::Mutex::new(Some(Box::new(hook)))));
        self
    }

    /// An encoder that fails once it has encoded `texts` texts.
    pub fn failing_after(mut self, texts: usize) -> Self {
        self.fail_after = Some(texts);
        self
    }

    /// Texts encoded so far.
    pub fn texts_encoded(&self) -> usize {
        self.encoded.load(Ordering::SeqCst)
    }

    pub fn with_id(mut self, id: &str) -> Self {
        self.identity.id = id.into();
        self.identity.revision = format!("rev-of-{id}");
        self
    }

    /// The vector of `text`; NaN throughout when the text holds the word `poison_nan`,
    /// as a broken model might give.
    pub fn vector(&self, text: &str) -> Vec<f32> {
        if text.contains("poison_nan") {
            return vec![f32::NAN; self.identity.dim];
        }
        let mut out = vec![0f32; self.identity.dim];
        for word in text
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
        {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            word.to_lowercase().hash(&mut hasher);
            let mut rng = StdRng::seed_from_u64(hasher.finish());
            for x in out.iter_mut() {
                *x += rng.random_range(-1.0f32..1.0);
            }
        }
        out
    }
}

impl Encoder for HashEncoder {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn max_tokens(&self) -> usize {
        512
    }

    fn encode(&self, texts: &[&str], _task: TaskRole) -> lancet::udf::Result<Embeddings> {
        if let Some(limit) = self.fail_after {
            if self.texts_encoded() + texts.len() > limit {
                return Err(lancet::udf::Error::Model(format!(
                    "stopped after {limit} texts"
                )));
            }
        }
        let encoded = self.encoded.fetch_add(texts.len(), Ordering::SeqCst) + texts.len();
        if let Some((after, hook)) = &self.hook {
            if encoded >= *after {
                if let Some(hook) = hook.lock().unwrap().take() {
                    hook();
                }
            }
        }
        let mut data = Vec::with_capacity(texts.len() * self.identity.dim);
        let mut tokens = 0;
        for text in texts {
            data.extend(self.vector(text));
            tokens += text.split_whitespace().count();
        }
        Ok(Embeddings {
            dim: self.identity.dim,
            data,
            tokens,
            truncated: 0,
        })
    }

    fn input_tokens(&self, texts: &[&str], _task: TaskRole) -> Option<Vec<usize>> {
        Some(texts.iter().map(|t| t.split_whitespace().count()).collect())
    }
}

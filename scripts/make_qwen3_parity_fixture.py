#!/usr/bin/env python3
"""Builds the Qwen3 encoder parity fixture with Hugging Face transformers.

Writes tests/fixtures/tiny-qwen3/: a tiny randomly initialised Qwen3 model (fixed seed;
2 layers, grouped-query attention, head_dim 16 != hidden 48 / 4 heads, per-head q/k
RMSNorm, no q/k/v bias, tied embeddings, saved as Qwen3Model does: without the `model.`
prefix) in the real file formats, a byte-level BPE tokenizer.json whose post-processor
appends <|endoftext|> (as Qwen3-Embedding's does), and reference.json: queries in
Qwen3-Embedding's instruction format and plain documents, their token ids, and the
last-token embeddings (after the final RMSNorm) transformers computes for them as one
right-padded batch in float32.

Run once, commit the output:
    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers tokenizers safetensors
    /tmp/ref/bin/python scripts/make_qwen3_parity_fixture.py
"""

import json
import pathlib

import torch
from tokenizers import Tokenizer, processors
from transformers import Qwen3Config, Qwen3Model

# Its own folder is on the path when the script runs: the Qwen2 fixture's helpers.
from make_parity_fixture import build_tokenizer as build_byte_tokenizer
from make_parity_fixture import last_token_embeddings, randomise

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny-qwen3"
# Task::Nl2Code.instruction() in udf/src/task.rs.
INSTRUCTION = "Given a natural language query, retrieve the code snippets that answer it"
QUERY_PREFIX = f"Instruct: {INSTRUCTION}\nQuery:"
QUERIES = ["sort a list of numbers", "where is the config file parsed", "x"]
DOCUMENTS = [
    "fn main() { println!(\"hello, world\"); }",
    "def add(a, b):\n    return a + b",
    "// ünïcödé comment\nconst π = 3.14159;",
]


def build_tokenizer() -> Tokenizer:
    """The Qwen2 fixture's byte-level tokenizer, appending <|endoftext|> to every input."""
    tok = build_byte_tokenizer()
    eos = tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>",
        pair="$A <|endoftext|> $B <|endoftext|>",
        special_tokens=[("<|endoftext|>", eos)],
    )
    return tok


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(4321)
    config = Qwen3Config(
        vocab_size=260,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        attention_bias=False,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "eager"
    model = Qwen3Model(config).eval()
    randomise(model)  # the q/k norms too; Qwen3 has no biases
    model.save_pretrained(OUT, safe_serialization=True)
    tokenizer = build_tokenizer()
    tokenizer.save(str(OUT / "tokenizer.json"))

    inputs = [QUERY_PREFIX + q for q in QUERIES] + DOCUMENTS
    ids = [tokenizer.encode(t).ids for t in inputs]
    pooled = last_token_embeddings(model, tokenizer, ids)
    reference = {
        "query_prefix": QUERY_PREFIX,
        "queries": QUERIES,
        "documents": DOCUMENTS,
        "ids": ids,
        "embeddings": pooled,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
    }
    (OUT / "reference.json").write_text(json.dumps(reference, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

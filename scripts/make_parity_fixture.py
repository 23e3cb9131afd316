#!/usr/bin/env python3
"""Builds the encoder parity fixture with Hugging Face transformers.

Writes tests/fixtures/tiny-qwen2/: a tiny randomly initialised Qwen2 model (fixed seed;
2 layers, grouped-query attention, q/k/v bias, tied embeddings) in the real file formats
(config.json, model.safetensors, a byte-level BPE tokenizer.json), and reference.json:
the texts, their token ids, and the last-token embeddings (after the final RMSNorm) that
transformers computes for them as one right-padded batch in float32.

Run once, commit the output:
    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers tokenizers safetensors
    /tmp/ref/bin/python scripts/make_parity_fixture.py
"""

import json
import pathlib

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tokenizers.pre_tokenizers import ByteLevel
from transformers import Qwen2Config, Qwen2Model

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny-qwen2"
PROMPT = "Candidate code snippet:\n"
TEXTS = [
    "fn main() { println!(\"hello, world\"); }",
    "def add(a, b):\n    return a + b",
    "x",
    "SELECT name, count(*) FROM users GROUP BY name ORDER BY 2 DESC LIMIT 10;",
    "// ünïcödé comment\nconst π = 3.14159;",
]


def build_tokenizer() -> Tokenizer:
    alphabet = sorted(ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def randomise(model) -> None:
    """Default init leaves norms at 1 and biases at 0: randomise them so parity checks them."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))


def last_token_embeddings(model, tokenizer, ids):
    """The final hidden state at each row's last token, for one right-padded batch."""
    longest = max(len(i) for i in ids)
    pad = tokenizer.token_to_id("<|endoftext|>")
    input_ids = torch.tensor([i + [pad] * (longest - len(i)) for i in ids])
    mask = torch.tensor([[1] * len(i) + [0] * (longest - len(i)) for i in ids])
    with torch.no_grad():
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    return [hidden[b, len(i) - 1].tolist() for b, i in enumerate(ids)]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1234)
    config = Qwen2Config(
        vocab_size=260,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        attn_implementation="eager",
        torch_dtype="float32",
    )
    model = Qwen2Model(config).eval()
    randomise(model)
    model.save_pretrained(OUT, safe_serialization=True)
    tokenizer = build_tokenizer()
    tokenizer.save(str(OUT / "tokenizer.json"))

    ids = [tokenizer.encode(PROMPT + t).ids for t in TEXTS]
    pooled = last_token_embeddings(model, tokenizer, ids)
    reference = {
        "prompt": PROMPT,
        "texts": TEXTS,
        "ids": ids,
        "embeddings": pooled,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
    }
    (OUT / "reference.json").write_text(json.dumps(reference, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

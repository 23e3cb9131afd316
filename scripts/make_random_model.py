#!/usr/bin/env python3
"""Writes a randomly initialised model directory at the real jina-code-embeddings-0.5b
shapes, in the real file formats: config.json, model.safetensors (bf16, ~1 GB) and the
real Qwen tokenizer (tests/fixtures/qwen-tokenizer). Standard library only, seconds to
run: for measuring what depends on size (start-up, load time, memory), not quality.

    python3 scripts/make_random_model.py /tmp/random-0.5b
    lancet --model /tmp/random-0.5b mcp .
"""

import gzip
import json
import os
import pathlib
import shutil
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = {
    "architectures": ["Qwen2Model"],
    "model_type": "qwen2",
    "hidden_act": "silu",
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}


def shapes(c):
    h, i, hd = c["hidden_size"], c["intermediate_size"], c["hidden_size"] // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    yield "embed_tokens.weight", [c["vocab_size"], h]
    yield "norm.weight", [h]
    for l in range(c["num_hidden_layers"]):
        p = f"layers.{l}."
        yield p + "input_layernorm.weight", [h]
        yield p + "post_attention_layernorm.weight", [h]
        for name, shape in [
            ("self_attn.q_proj", [h, h]),
            ("self_attn.k_proj", [kv, h]),
            ("self_attn.v_proj", [kv, h]),
        ]:
            yield p + name + ".weight", shape
            yield p + name + ".bias", [shape[0]]
        yield p + "self_attn.o_proj.weight", [h, h]
        yield p + "mlp.gate_proj.weight", [i, h]
        yield p + "mlp.up_proj.weight", [i, h]
        yield p + "mlp.down_proj.weight", [h, i]


# bf16 high bytes: keep the random sign, set the exponent near 2^-7 (|w| ~ 0.01).
SMALL = bytes((b & 0x80) | 0x3C for b in range(256))


def tensor_bytes(name, count):
    if name.endswith("norm.weight"):
        return b"\x80\x3f" * count  # 1.0
    data = bytearray(os.urandom(2 * count))
    data[1::2] = data[1::2].translate(SMALL)
    return bytes(data)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2))
    header, offset, entries = {}, 0, list(shapes(CONFIG))
    for name, shape in entries:
        size = 2
        for d in shape:
            size *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for name, shape in entries:
            count = 1
            for d in shape:
                count *= d
            f.write(tensor_bytes(name, count))
    with gzip.open(ROOT / "tests/fixtures/qwen-tokenizer/tokenizer.json.gz") as src:
        with open(out / "tokenizer.json", "wb") as dst:
            shutil.copyfileobj(src, dst)
    print(f"wrote {out}: {offset / 1e9:.2f} GB of bf16 weights")


if __name__ == "__main__":
    main()

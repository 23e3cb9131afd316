#!/usr/bin/env python3
"""Where does q8's error come from? Lancet's q8 arithmetic simulated in PyTorch (fake
quantization) on a model, one variant per run, against the model in f32.

Every linear layer's weights are cut into blocks of 32 inputs, each scaled by its largest
magnitude to -127..127 and rounded (Lancet's Q8_0 blocks); so is every token's input to
it; the MLP's down projection rotates both by block Walsh-Hadamard transforms first, as
Lancet does. (Lancet's outlier split and exact columns are not simulated: on a model
without outlier channels they rarely act; on the random 0.5B model this simulation gives
1 - cosine 4.49e-4 where Lancet's q8 gives 4.41e-4.) Variants keep layers in f32 or refine
them (weights and inputs quantized twice, three 8-bit products summed, as
`quant::Activations::refined_matmul`). Prints one JSON line: the mean 1 - cosine and the
least cosine of the documents' pooled vectors against f32's.

    python3 scripts/simulate_q8_errors.py --model /tmp/random-0.5b --documents docs.json
    python3 scripts/simulate_q8_errors.py ... --f32 layers.0.          # layer 0 in f32
    python3 scripts/simulate_q8_errors.py ... --f32w layers.0.         # its weights only
    python3 scripts/simulate_q8_errors.py ... --refine layers.0.       # layer 0 refined
    python3 scripts/simulate_q8_errors.py ... --w 0                    # weights in f32

`--documents`: a JSON list of texts (the peers' bench writes one:
`scripts/bench_cpu_peers.py`'s `make_documents`). Needs torch and transformers.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

DOCUMENT_PROMPT = "Candidate code snippet:\n"


def names(arg: str) -> list[str]:
    return [n for n in arg.split(",") if n]


def hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


def rotation_block(width: int) -> int:
    block = 256
    while width % block:
        block //= 2
    return block


def rotate(x: torch.Tensor, block: int) -> torch.Tensor:
    s = x.shape
    return (x.reshape(*s[:-1], s[-1] // block, block) @ hadamard(block)).reshape(s)


def quantized(x: torch.Tensor, bits: int) -> torch.Tensor:
    """`x` through blocks of 32 along its last dimension (`bits` 0: unchanged)."""
    if bits == 0:
        return x
    qmax = 2 ** (bits - 1) - 1
    s = x.shape
    blocks = x.reshape(*s[:-1], s[-1] // 32, 32)
    scale = blocks.abs().amax(-1, keepdim=True).clamp_min(1e-30) / qmax
    return ((blocks / scale).round().clamp(-qmax, qmax) * scale).reshape(s)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--documents", required=True)
    p.add_argument("--w", type=int, default=8, help="weight bits (0: f32)")
    p.add_argument("--a", type=int, default=8, help="activation bits (0: f32)")
    p.add_argument("--f32", default="", help="layers (name parts, commas) kept in f32")
    p.add_argument("--f32w", default="", help="... whose weights stay f32")
    p.add_argument("--f32a", default="", help="... whose inputs stay f32")
    p.add_argument("--refine", default="", help="... whose products are refined")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModel.from_pretrained(a.model, dtype=torch.float32).eval()
    docs = json.load(open(a.documents))
    ids = [tok(DOCUMENT_PROMPT + d, add_special_tokens=False)["input_ids"] for d in docs]

    def pooled() -> np.ndarray:
        with torch.inference_mode():
            return np.array([model(input_ids=torch.tensor([x])).last_hidden_state[0, -1]
                             .double().numpy() for x in ids])

    reference = pooled()
    started = time.time()
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear) or any(k in name for k in names(a.f32)):
            continue
        block = rotation_block(mod.in_features) if name.endswith("down_proj") else 0
        w = rotate(mod.weight.data, block) if block else mod.weight.data
        refined = any(k in name for k in names(a.refine))
        w_bits = 0 if any(k in name for k in names(a.f32w)) else a.w
        a_bits = 0 if any(k in name for k in names(a.f32a)) else a.a
        first = quantized(w, 8 if refined else w_bits)
        second = quantized(w - first, 8) if refined else None

        def forward(x, mod=mod, block=block, first=first, second=second, a_bits=a_bits):
            if block:
                x = rotate(x, block)
            bias = mod.bias if mod.bias is not None else 0
            if second is None:
                return torch.nn.functional.linear(quantized(x, a_bits), first) + bias
            xa = quantized(x, 8)
            xb = quantized(x - xa, 8)
            linear = torch.nn.functional.linear
            return linear(xa, first) + linear(xa, second) + linear(xb, first) + bias

        mod.forward = forward
    got = pooled()
    cos = (reference * got).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(got, axis=1)
    print(json.dumps({"variant": {k: v for k, v in vars(a).items() if k not in ("model", "documents")},
                      "one_minus_mean_cosine": float(1 - cos.mean()), "least_cosine": float(cos.min()),
                      "documents": len(docs), "seconds": round(time.time() - started, 1)}))


if __name__ == "__main__":
    main()

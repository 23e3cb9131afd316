#!/usr/bin/env python3
"""Reference throughput: HF transformers (PyTorch, sdpa attention) at the
jina-code-embeddings-0.5b shapes with random weights, on the same chunk lengths and
batching as udf/benches/encoder_throughput.rs. Prints one JSON line.

    python3 scripts/bench_encoder_torch.py --chunks 64 --threads 2
    python3 scripts/bench_encoder_torch.py --device cuda --dtype bf16 --chunks 512 --batch-tokens 16384
"""

import argparse
import json
import time

import torch
from transformers import Qwen2Config, Qwen2Model

from bench_inputs import batches, chunk_lengths


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--chunks", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    # Lancet's CPU default (DeviceSpec::default_batch_tokens); sweep it for both engines.
    # Several budgets separated by commas run one after another on the same model, one
    # JSON line each.
    p.add_argument("--batch-tokens", default="1024")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--repeats", type=int, default=1, help="timed passes; the best counts")
    a = p.parse_args()
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    cfg = Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True,
        attn_implementation="sdpa", torch_dtype="float32",
    )
    model = Qwen2Model(cfg).eval().to(device=a.device, dtype=dtype)
    lengths = chunk_lengths(a.chunks, 42)

    def run(lens):
        m = max(lens)
        ids = torch.tensor([[(r * m + j) * 7919 % 151000 for j in range(m)] for r in range(len(lens))])
        mask = torch.tensor([[1] * n + [0] * (m - n) for n in lens])
        ids, mask = ids.to(a.device), mask.to(a.device)
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            return h[torch.arange(len(lens), device=a.device), torch.tensor(lens, device=a.device) - 1].float().cpu()

    run([64])
    for budget in [int(b) for b in a.batch_tokens.split(",")]:
        plan = batches(lengths, budget)
        secs = float("inf")
        for _ in range(max(1, a.repeats)):
            start = time.perf_counter()
            for b in plan:
                run([lengths[i] for i in b])
            secs = min(secs, time.perf_counter() - start)
        tokens = sum(lengths)
        print(json.dumps({
            "engine": "transformers-pytorch", "torch": torch.__version__, "dtype": a.dtype,
            "attention": model.config._attn_implementation, "device": a.device,
            "threads": a.threads, "chunks": a.chunks, "tokens": tokens, "batch_tokens": budget,
            "batches": len(plan), "seconds": secs, "tokens_per_second": tokens / secs,
        }), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The GPU's bf16 matrix-product rate at the encoder's own shapes: what model FLOP
utilisation can reach at all. The 0.5B model's linear layers multiply a batch of
tokens (M) by weights of K inputs and N outputs: q/o 896x896, k/v 896x128, gate/up
896x4864, down 4864x896; an 8192^3 product is the GPU's large-shape reference. Each
shape: CUDA events around 20 products after 5 warm-ups, the mean. Prints one JSON line.

    python3 scripts/bench_gemm_ceiling.py --tokens 16384
"""

import argparse
import json

import torch


def rate(m: int, k: int, n: int, runs: int = 20) -> float:
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(runs):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3 / runs
    return 2 * m * k * n / seconds / 1e12


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=16384)
    a = p.parse_args()
    shapes = {"q_o": (896, 896), "k_v": (896, 128), "gate_up": (896, 4864), "down": (4864, 896)}
    tflops = {name: rate(a.tokens, k, n) for name, (k, n) in shapes.items()}
    # The layer's mix of products, weighted by their multiply-adds (q, k, v, o, gate, up,
    # down): the rate a perfect engine would see over the linear layers.
    work = {"q_o": 2 * 896 * 896, "k_v": 2 * 896 * 128, "gate_up": 2 * 896 * 4864, "down": 4864 * 896}
    seconds = sum(w / tflops[name] for name, w in work.items())
    tflops["linear_mix"] = sum(work.values()) / seconds
    tflops["square_8192"] = rate(8192, 8192, 8192, runs=10)
    print(json.dumps({"device": torch.cuda.get_device_name(), "tokens": a.tokens,
                      "bf16_tflops": {k: round(v, 1) for k, v in tflops.items()}}))


if __name__ == "__main__":
    main()

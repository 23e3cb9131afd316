#!/usr/bin/env bash
# One GPU check, run on a machine with an NVIDIA GPU (the device tool), from the
# repository root with gpu-check/ carried (scripts/prepare-gpu-check.sh builds it):
#   1. parity: the CUDA bf16 encoder against the CPU f32 one on the tiny parity model
#      (cosine >= 0.999 per input, batch == single);
#   2. tokens/s at the jina-code-embeddings-0.5b shapes (random weights) for batches of
#      realistic chunk lengths, with model FLOP utilisation;
#   3. the same inputs through HF transformers in bf16 with sdpa on the same GPU;
#   4. the CPU path on the host's cores (a second CPU class for the encoder issue).
# Writes $OUT/gpu-check.json (or ./gpu-check.json) and prints it. Without a GPU it stops
# at once, saying so.
#
#   bash scripts/gpu-check.sh [--chunks 512]
set -euo pipefail
chunks=512
[ "${1:-}" = "--chunks" ] && chunks=$2
bin=gpu-check/bin
out=${OUT:-.}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: no NVIDIA GPU answers on this machine (nvidia-smi); run it where the device tool lends one" >&2
    exit 2
fi
if [ ! -x "$bin/encoder_throughput" ] || [ ! -x "$bin/udf_tests" ]; then
    echo "gpu-check: $bin is missing; run scripts/prepare-gpu-check.sh here and carry gpu-check/" >&2
    exit 2
fi
nvidia-smi -L
# The CUDA 13 libraries the binaries link against (cublas, curand, nvrtc): the toolkit's,
# else any copy installed with Python packages.
LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    if [ -d "$dir" ]; then LD_LIBRARY_PATH=$dir:$LD_LIBRARY_PATH; fi
done
for lib in libcublas.so.13 libcurand.so.10 libnvrtc.so.13; do
    found=$(find / -name "$lib" -not -path '*/stubs/*' 2>/dev/null | head -1 || true)
    if [ -n "$found" ]; then LD_LIBRARY_PATH=$(dirname "$found"):$LD_LIBRARY_PATH; fi
done
export LD_LIBRARY_PATH

echo "== parity (tiny model, CUDA bf16 vs CPU f32)"
parity=pass
LANCET_TINY_MODEL=tests/fixtures/tiny-qwen2 "$bin/udf_tests" gpu_tests --nocapture \
    > "$out/parity.log" 2>&1 || parity=fail
cat "$out/parity.log"
if grep -q "skipped" "$out/parity.log"; then parity=skipped; fi

echo "== Lancet on the GPU"
CARGO_TARGET_DIR=$out "$bin/encoder_throughput" --device cuda --chunks "$chunks" --query-runs 30 \
    > "$out/lancet-gpu.json"
cat "$out/lancet-gpu.json"
echo "== HF transformers bf16 sdpa on the GPU"
python3 scripts/bench_encoder_torch.py --device cuda --dtype bf16 --chunks "$chunks" \
    --batch-tokens 16384 --repeats 2 > "$out/transformers-gpu.json"
cat "$out/transformers-gpu.json"
echo "== Lancet on the host CPU ($(nproc) cores)"
RAYON_NUM_THREADS=$(nproc) CARGO_TARGET_DIR=$out "$bin/encoder_throughput" --chunks 32 \
    --query-runs 10 > "$out/lancet-cpu.json"
cat "$out/lancet-cpu.json"

python3 - "$out" "$parity" <<'PY'
import json, sys, platform
out, parity = sys.argv[1], sys.argv[2]
gpu = json.loads(open(f"{out}/lancet-gpu.json").read().splitlines()[-1])
hf = json.loads(open(f"{out}/transformers-gpu.json").read().splitlines()[-1])
cpu = json.loads(open(f"{out}/lancet-cpu.json").read().splitlines()[-1])
lancet_tps = gpu["documents"]["pooled_tokens_per_second"]
report = {
    "parity": parity,
    "lancet_gpu_tokens_per_second": lancet_tps,
    "lancet_gpu_full_tokens_per_second": gpu["documents"]["full_tokens_per_second"],
    "mfu_full": gpu["documents"]["mfu_full_vs_peak"],
    "transformers_bf16_tokens_per_second": hf["tokens_per_second"],
    "ratio_to_transformers": lancet_tps / hf["tokens_per_second"],
    "query_32_tokens_p50_ms": gpu["query_32_tokens"]["pooled_p50_ms"],
    "host_cpu": platform.processor() or platform.machine(),
    "host_cpu_tokens_per_second": cpu["documents"]["pooled_tokens_per_second"],
    "lancet_gpu": gpu, "transformers_gpu": hf, "lancet_cpu": cpu,
}
open(f"{out}/gpu-check.json", "w").write(json.dumps(report, indent=1))
print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}, indent=1))
PY

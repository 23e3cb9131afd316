#!/usr/bin/env bash
# One GPU check, run on a machine with an NVIDIA GPU (the device tool), from the
# repository root with gpu-check/ carried (scripts/prepare-gpu-check.sh builds it).
# In order of what matters most, each stage on its own (one that fails is reported and
# the rest still run), each result one JSON line in results.jsonl:
#   1. parity: the CUDA bf16 encoder against the CPU f32 one on the tiny parity models of
#      both families (cosine >= 0.999 per input, batch == single);
#   2. tokens/s at the jina-code-embeddings-0.5b shapes (random weights) for batches of
#      realistic chunk lengths, with model FLOP utilisation, at the default token budget
#      per pass and beside it (what the default should be);
#   3. the same inputs through HF transformers in bf16 with sdpa on the same GPU;
#   4. the GPU's bf16 product rate at the model's own shapes (the ceiling of MFU);
#   5. the CPU path on the host's cores, f32 and q8, and PyTorch f32 there (a second CPU
#      class for the encoder issue).
# Writes $OUT/results.jsonl and $OUT/gpu-check.log (or ./gpu-check-out/ without $OUT).
# Without a GPU it stops at once, saying so.
#
#   bash scripts/gpu-check.sh [--chunks 512]
set -uo pipefail
chunks=512
[ "${1:-}" = "--chunks" ] && chunks=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
packed=$repo/gpu-check/bin
out=${OUT:-$repo/gpu-check-out}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: no NVIDIA GPU answers on this machine (nvidia-smi); run it where the device tool lends one" >&2
    exit 2
fi
if [ ! -f "$packed/encoder_throughput.xz" ] || [ ! -f "$packed/udf_tests.xz" ]; then
    echo "gpu-check: $packed is missing; run scripts/prepare-gpu-check.sh here and carry gpu-check/" >&2
    exit 2
fi
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
results=$out/results.jsonl
scratch=$(mktemp -d)
bin=$scratch/bin
mkdir -p "$bin"
# Python's lzma: xz itself need not be installed there.
for name in encoder_throughput udf_tests; do
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$packed/$name.xz" "$bin/$name"
    chmod +x "$bin/$name"
done
started=$(date +%s)
stage() { echo "== $(( $(date +%s) - started )) s: $*"; }
# Runs a command that prints JSON lines; each gets {"stage": NAME} and goes to results.
record() {
    local name=$1 limit=$2
    shift 2
    timeout "$limit" "$@" > "$scratch/stage.out" 2> "$scratch/stage.err"
    local status=$?
    tail -5 "$scratch/stage.err"
    grep '^{' "$scratch/stage.out" | python3 -c '
import json, sys
for line in sys.stdin:
    row = json.loads(line); row["stage"] = sys.argv[1]; print(json.dumps(row))' "$name" \
        | tee -a "$results"
    [ "$status" -eq 0 ] || echo "{\"stage\": \"$name\", \"failed\": $status}" | tee -a "$results"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
lscpu | grep -E '^(Model name|CPU\(s\)|Flags)' | cut -c1-400
# The CUDA 13 libraries the binaries link against (cublas, curand, nvrtc): the toolkit's,
# else any copy installed with Python packages.
LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    if [ -d "$dir" ]; then LD_LIBRARY_PATH=$dir:$LD_LIBRARY_PATH; fi
done
for lib in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
    found=$(find / -xdev -name "$lib" -not -path '*/stubs/*' 2>/dev/null | head -1 || true)
    if [ -n "$found" ]; then LD_LIBRARY_PATH=$(dirname "$found"):$LD_LIBRARY_PATH; fi
done
export LD_LIBRARY_PATH
ldd "$bin/encoder_throughput" | grep -E 'not found|cuda|cublas|curand|nvrtc'

stage "parity (tiny models, CUDA bf16 vs CPU f32)"
LANCET_FIXTURES=$repo/tests/fixtures timeout 120 "$bin/udf_tests" gpu_tests --nocapture \
    --test-threads 1 > "$scratch/parity.log" 2>&1
parity=$?
cat "$scratch/parity.log"
if grep -q "skipped" "$scratch/parity.log"; then parity=skipped; fi
echo "{\"stage\": \"parity\", \"exit\": \"$parity\"}" | tee -a "$results"

export CARGO_TARGET_DIR=$scratch
stage "Lancet on the GPU, default token budget"
record lancet-gpu 180 "$bin/encoder_throughput" --device cuda --chunks "$chunks" --query-runs 30
stage "HF transformers bf16 sdpa on the GPU"
record transformers-gpu 240 python3 "$repo/scripts/bench_encoder_torch.py" --device cuda \
    --dtype bf16 --chunks "$chunks" --batch-tokens 16384,4096,65536 --repeats 2
stage "bf16 product rate at the model's shapes"
record gemm-ceiling 60 python3 "$repo/scripts/bench_gemm_ceiling.py" --tokens 16384
for budget in 4096 65536; do
    stage "Lancet on the GPU, $budget tokens per pass"
    record "lancet-gpu-$budget" 120 "$bin/encoder_throughput" --device cuda --chunks "$chunks" \
        --query-runs 5 --batch-tokens "$budget"
done
stage "Lancet on the host CPU ($(nproc) cores), f32 and q8"
record lancet-cpu-f32 180 "$bin/encoder_throughput" --chunks 32 --query-runs 10
record lancet-cpu-q8 300 "$bin/encoder_throughput" --chunks 32 --query-runs 10 --precision q8
stage "PyTorch f32 on the host CPU"
record torch-cpu-f32 120 python3 "$repo/scripts/bench_encoder_torch.py" --chunks 32 \
    --threads "$(nproc)" --batch-tokens 1024
stage "done"

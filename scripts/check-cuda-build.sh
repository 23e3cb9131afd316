#!/usr/bin/env bash
# Proves that `--features cuda` compiles, links and starts on a machine without a GPU or
# a CUDA install (facts: ../shared/docs/cuda.md, README "Building for CUDA"):
#   1. the CUDA 13 compiler from PyPI wheels into the user cache (once, ~105 MB);
#   2. stub libcuda/cublas/cublasLt/curand/nvrtc (their SONAMEs, every function an error);
#   3. `cargo build --features cuda` of the `lancet` binary and the encoder crate's tests;
#   4. the encoder crate's unit tests with `--features cuda` (GPU tests skip themselves);
#   5. the binary started with `--device cuda` on the stubs: it must fail at once, saying
#      that no CUDA device answers, not crash.
#
#   scripts/check-cuda-build.sh            # CUDA_COMPUTE_CAP=90 (H100/H200) by default
#
# Environment: LANCET_CUDA_TOOLKIT (toolkit folder, default ~/.cache/lancet/cuda-13.0),
# LANCET_CUDA_TARGET_DIR (default ~/.cache/lancet/target-cuda: a target directory of its
# own, kept between runs so the kernels compile once; the feature changes the features of
# dependencies Lance shares, so nothing of a CPU target would be reused, and one target
# directory would block the CPU builds for the whole run), CUDA_COMPUTE_CAP.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/lancet
toolkit=${LANCET_CUDA_TOOLKIT:-$cache/cuda-13.0}
export CARGO_TARGET_DIR=${LANCET_CUDA_TARGET_DIR:-$cache/target-cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CUDA_HOME=$toolkit/nvidia/cu13
started=$(date +%s)
step() { echo "== $(( $(date +%s) - started )) s: $*"; }

# 1. The compiler.
if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
    step "installing the CUDA 13 compiler into $toolkit"
    python3 -m pip install --quiet --no-deps --target "$toolkit" \
        nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
fi
# The wheels ship versioned names only.
for lib in "$CUDA_HOME"/lib/lib*.so.*; do
    [ -e "$lib" ] || continue
    base=${lib%%.so.*}.so
    [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
done
export PATH=$CUDA_HOME/bin:$PATH
nvcc --version | tail -2

# 2. Stubs, generated from the cudarc sources cargo fetched.
step "stub libraries"
cd "$repo"
cargo fetch --locked --quiet
cudarc_version=$(awk '/^name = "cudarc"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$cudarc_version" | head -1)
python3 scripts/cuda_stubs.py "$cudarc" "$CUDA_HOME/lib/stubs"

# 3. and 4. Build, and the encoder's tests with the feature on.
step "cargo build --features cuda (target $CARGO_TARGET_DIR)"
CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)} \
    cargo build --locked --features cuda --bin lancet
step "encoder tests with --features cuda"
LD_LIBRARY_PATH=$CUDA_HOME/lib/stubs:$CUDA_HOME/lib \
    cargo test --locked -p lancet-udf --features cuda --lib -- --test-threads 2

# 5. The binary starts and says there is no device.
step "the cuda binary without a GPU"
set +e
answer=$(LD_LIBRARY_PATH=$CUDA_HOME/lib/stubs:$CUDA_HOME/lib \
    "$CARGO_TARGET_DIR/debug/lancet" --model tests/fixtures/tiny-qwen2 --device cuda \
    embed "fn main() {}" 2>&1)
status=$?
set -e
echo "$answer"
if [ "$status" -eq 0 ] || [ "$status" -ge 101 ]; then
    echo "FAIL: expected a clean error (exit 1), got exit $status" >&2
    exit 1
fi
if ! grep -q "no CUDA device answers" <<<"$answer" || grep -q "panicked" <<<"$answer"; then
    echo "FAIL: the error does not say that no CUDA device answers" >&2
    exit 1
fi
step "ok: --features cuda compiles, links, and fails cleanly without a GPU"

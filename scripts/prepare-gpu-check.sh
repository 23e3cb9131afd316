#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh runs on a GPU machine and puts it in gpu-check/
# (ignored by git; carry it with the device tool: carry ["gpu-check"]): the encoder
# bench in release with --features cuda (and jemalloc, as the CPU numbers here are
# measured), and the encoder crate's test binary (its CUDA-vs-CPU parity tests), both
# stripped and xz-compressed: the kernels' PTX makes them ~100 MB, over the 64 MiB that
# travels, and ~16 MB compressed. Needs the toolchain and target directory
# scripts/check-cuda-build.sh sets up; run that first.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/lancet
export CARGO_TARGET_DIR=${LANCET_CUDA_TARGET_DIR:-$cache/target-cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CUDA_HOME=${LANCET_CUDA_TOOLKIT:-$cache/cuda-13.0}/nvidia/cu13
export PATH=$CUDA_HOME/bin:$PATH
[ -x "$CUDA_HOME/bin/nvcc" ] || { echo "run scripts/check-cuda-build.sh first" >&2; exit 1; }
cd "$repo"
out=$repo/gpu-check
mkdir -p "$out/bin"
json_executable() { # the executable cargo reports for the given target kind and name
    python3 -c 'import json,sys
kind, name = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and m.get("executable") and t.get("name") == name and kind in t.get("kind", []):
        print(m["executable"])' "$1" "$2" | tail -1
}
bench=$(cargo bench --locked -p lancet-udf --features cuda,jemalloc --bench encoder_throughput --no-run \
    --message-format json 2>/dev/null | json_executable bench encoder_throughput)
tests=$(cargo test --locked -p lancet-udf --features cuda --lib --no-run \
    --message-format json 2>/dev/null | json_executable lib lancet_udf)
rm -f "$out"/bin/*
strip -o "$out/bin/encoder_throughput" "$bench"
strip -o "$out/bin/udf_tests" "$tests"
xz -6 -T0 "$out/bin/encoder_throughput" "$out/bin/udf_tests"
ls -la "$out/bin"
du -sh "$out"

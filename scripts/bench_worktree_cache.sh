#!/usr/bin/env bash
# A second worktree with and without the machine-wide embedding cache: indexes a copy of
# some of this repository's sources three times into three databases, with one cache:
# the first run embeds, the second (a fresh copy: another worktree) takes every vector
# from the cache, the third (another copy, --no-cache) embeds everything again. Prints
# one JSON line per run. The model is the 0.5B-shaped random model (real cost per token).
#
#   scripts/bench_worktree_cache.sh [LANCET_BINARY] [SOURCE_FOLDER]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
lancet=${1:-${CARGO_TARGET_DIR:-$repo/target}/release/lancet}
source=${2:-$repo/engine/src/cache}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$repo/scripts/make_random_model.py" "$work/model" >/dev/null
for tree in first second third; do
    mkdir -p "$work/$tree"
    cp -r "$source" "$work/$tree/src"
done
run() { # label, tree, extra flags
    local started ended
    started=$(date +%s.%N)
    summary=$("$lancet" --model "$work/model" --cache-dir "$work/cache" index "$work/$2" \
        --json "${@:3}")
    ended=$(date +%s.%N)
    python3 -c 'import json,sys
s = json.loads(sys.argv[2])
print(json.dumps({"run": sys.argv[1], "wall_seconds": round(float(sys.argv[3]), 2),
    "files": s["files_indexed"], "chunks_embedded": s["chunks_embedded"],
    "chunks_cached": s["chunks_cached"], "tokens_embedded": s["tokens_embedded"]}))' \
        "$1" "$summary" "$(echo "$ended - $started" | bc)"
}
run "first worktree" first
run "second worktree, cache" second
run "third worktree, --no-cache" third --no-cache

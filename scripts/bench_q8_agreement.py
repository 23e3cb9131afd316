"""Does q8 find what f32 finds? Top-k agreement of searches over chunks embedded each way.

Cuts this repository's Rust sources into `--chunks` code chunks (seeded lengths of
`--min-tokens`..`--max-tokens` tokens, prompt included) and draws `--queries` queries
(seeded snippets of 6..24 tokens from random chunks, as someone pasting a fragment would
search). Lancet embeds both in f32 and in q8 (udf/benches/model_start.rs, one process per
precision, same model directory); vectors are cut to `--dims` (Lancet's stored width) and
normalised, and each query's exact top `--top` by cosine is compared:

- q8 queries over q8 chunks against f32 over f32 (an index built and searched in q8);
- q8 queries over f32 chunks (a q8 searcher on an index built in f32: precisions mix);
- each chunk's and query's cosine between its f32 and q8 vector.

Agreement of one query = |top-k(q8) ∩ top-k(f32)| / k. Writes `--work`/agreement.json.
`--reuse-f32` keeps the texts and f32 vectors an earlier run left in `--work` (to measure
a new q8 against the same f32 run; the f32 side is most of the time).

    python3 scripts/make_random_model.py /tmp/random-0.5b
    cargo bench -p lancet-udf --features jemalloc --bench model_start --no-run
    python3 scripts/bench_q8_agreement.py --model /tmp/random-0.5b --work /tmp/agreement \\
        --lancet "$(ls -t $CARGO_TARGET_DIR/release/deps/model_start-* | grep -v '\\.d$' | head -1)"

Needs: transformers (the tokenizer, to cut chunks at token counts) and numpy.
"""

import argparse
import json
import os
import pathlib
import random
import subprocess
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent


def make_texts(tokenizer, chunks: int, queries: int, lo: int, hi: int) -> tuple[list[str], list[str]]:
    """Chunks cut in order from the repository's sources (wrapping around when they run
    out), and query snippets drawn from them; both seeded."""
    sources = sorted(p for p in REPO.rglob("*.rs") if "target" not in p.parts)
    ids = tokenizer("".join(p.read_text() for p in sources), add_special_tokens=False)["input_ids"]
    rng = random.Random(42)
    docs, at = [], 0
    for _ in range(chunks):
        take = rng.randint(lo, hi)
        if at + take > len(ids):
            at = rng.randrange(0, 64)
        docs.append(tokenizer.decode(ids[at:at + take]))
        at += take
    doc_ids = [tokenizer(d, add_special_tokens=False)["input_ids"] for d in docs]
    out = []
    for _ in range(queries):
        source = doc_ids[rng.randrange(len(doc_ids))]
        length = rng.randint(6, 24)
        start = rng.randrange(0, max(1, len(source) - length))
        out.append(tokenizer.decode(source[start:start + length]))
    return docs, out


def embed(a, precision: str, work: pathlib.Path) -> dict:
    out = work / f"vectors-{precision}.json"
    cmd = [a.lancet, "--model", a.model, "--precision", precision, "--repeats", "1",
           "--documents", str(work / "documents.json"), "--queries", str(work / "queries.json"),
           "--vectors-out", str(out)]
    if precision == "q8":
        cmd += ["--weights-cache", str(work / "packed")]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    started = time.perf_counter()
    report = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                       text=True).stdout.strip().splitlines()[-1])
    report["wall_seconds"] = time.perf_counter() - started
    vectors = json.loads(out.read_text())
    return {"report": report, "documents": vectors["documents"], "queries": vectors["queries"]}


def stored(rows, dims: int) -> np.ndarray:
    """Rows cut to `dims` and normalised, as Lancet stores them."""
    x = np.asarray(rows, dtype=np.float64)[:, :dims]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def top(queries: np.ndarray, docs: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ docs.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def agreement(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [len(set(x) & set(y)) / len(x) for x, y in zip(a.tolist(), b.tolist())]


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a Qwen2 model directory (config, safetensors, tokenizer)")
    p.add_argument("--work", required=True, help="folder for texts, vectors and the report")
    p.add_argument("--lancet", required=True, help="the model_start bench binary (release)")
    p.add_argument("--chunks", type=int, default=10000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--min-tokens", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--dims", type=int, default=768)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reuse-f32", action="store_true",
                   help="keep the texts and f32 vectors of an earlier run in --work")
    a = p.parse_args()

    from transformers import AutoTokenizer
    work = pathlib.Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    earlier = work / "vectors-f32-run.json"
    if a.reuse_f32:
        if not earlier.exists():
            raise SystemExit(f"--reuse-f32: no earlier f32 run in {work}")
        docs = json.loads((work / "documents.json").read_text())
        queries = json.loads((work / "queries.json").read_text())
        f32 = json.loads(earlier.read_text())
    else:
        tok = AutoTokenizer.from_pretrained(a.model)
        docs, queries = make_texts(tok, a.chunks, a.queries, a.min_tokens, a.max_tokens)
        (work / "documents.json").write_text(json.dumps(docs))
        (work / "queries.json").write_text(json.dumps(queries))
        f32 = embed(a, "f32", work)
        earlier.write_text(json.dumps(f32))
    q8 = embed(a, "q8", work)

    d32, d8 = stored(f32["documents"], a.dims), stored(q8["documents"], a.dims)
    q32, q8q = stored(f32["queries"], a.dims), stored(q8["queries"], a.dims)
    reference = top(q32, d32, a.top)
    report = {
        "chunks": len(docs), "queries": len(queries), "top": a.top, "dims": a.dims,
        "documents_tokens": f32["report"]["documents_tokens"],
        "q8_index_q8_queries": summary(agreement(top(q8q, d8, a.top), reference)),
        "f32_index_q8_queries": summary(agreement(top(q8q, d32, a.top), reference)),
        "documents_cosine_f32_vs_q8": summary(np.sum(d32 * d8, axis=1).tolist()),
        "queries_cosine_f32_vs_q8": summary(np.sum(q32 * q8q, axis=1).tolist()),
        # How far apart neighbours are: the margin a ranking has to survive.
        "f32_top1_minus_topk_score": float(np.mean(
            np.sort(q32 @ d32.T, axis=1)[:, -1] - np.sort(q32 @ d32.T, axis=1)[:, -a.top])),
        "seconds": {"f32": f32["report"]["wall_seconds"], "q8": q8["report"]["wall_seconds"]},
        "threads": a.threads, "model": a.model, "f32_reused": a.reuse_f32,
    }
    (work / "agreement.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

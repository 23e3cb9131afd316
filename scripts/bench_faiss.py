#!/usr/bin/env python3
"""In-memory reference for the search benchmark: FAISS HNSW (faiss-cpu, f32, inner
product on the normalised 768-d vectors) on exactly the vectors, queries and ground truth
that benches/search_at_scale.rs used, written there with --dump DIR:

    cargo bench --bench search_at_scale -- --rows 100000 --queries 200 --methods hot --dump /tmp/bench/dump100k
    python3 scripts/bench_faiss.py /tmp/bench/dump100k --m 16 --threads 2

Reports, per efSearch: recall@10, p50/p99 of one query at a time, and QPS of --threads
searchers each sending one query at a time (as the Rust bench measures); plus the build
time on --threads threads. One JSON line per setting, then
a Markdown table.
"""

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

DIM = 768
K = 10


def load(directory: str):
    vectors = np.fromfile(os.path.join(directory, "vectors.f32"), dtype="<f4").reshape(-1, DIM)
    queries = np.fromfile(os.path.join(directory, "queries.f32"), dtype="<f4").reshape(-1, DIM)
    truth = np.fromfile(os.path.join(directory, "truth.u32"), dtype="<u4").reshape(-1, K)
    return vectors, queries, truth


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dump")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ef", default="16,32,64,128,256")
    a = p.parse_args()

    vectors, queries, truth = load(a.dump)
    # Cosine similarity is the inner product of normalised vectors.
    vectors = np.ascontiguousarray(normalise(vectors))
    queries = np.ascontiguousarray(normalise(queries))
    faiss.omp_set_num_threads(a.threads)
    index = faiss.IndexHNSWFlat(DIM, a.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = a.ef_construction
    start = time.perf_counter()
    index.add(vectors)
    build = time.perf_counter() - start
    rows = []
    for ef in [int(x) for x in a.ef.split(",")]:
        index.hnsw.efSearch = ef
        faiss.omp_set_num_threads(1)
        latencies, hits = [], 0
        for q in range(len(queries)):
            start = time.perf_counter()
            _, found = index.search(queries[q : q + 1], K)
            latencies.append((time.perf_counter() - start) * 1e3)
            hits += len(set(found[0].tolist()) & set(truth[q].tolist()))
        latencies.sort()
        # Like the Rust bench: --threads searchers, one query at a time each (FAISS
        # releases the GIL while it searches), passes repeated for at least 2 s.
        def searcher(worker):
            for q in range(worker, len(queries), a.threads):
                index.search(queries[q : q + 1], K)

        passes, start = 0, time.perf_counter()
        with ThreadPoolExecutor(a.threads) as pool:
            while passes == 0 or time.perf_counter() - start < 2.0:
                list(pool.map(searcher, range(a.threads)))
                passes += 1
        qps = passes * len(queries) / (time.perf_counter() - start)
        row = {
            "method": "faiss-hnsw-flat",
            "setting": f"M {a.m}, efConstruction {a.ef_construction}, efSearch {ef}",
            "rows": len(vectors),
            "recall_at_10": hits / (K * len(queries)),
            "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)],
            "qps": qps,
            "qps_threads": a.threads,
            "build_s": build,
            "faiss": faiss.__version__,
        }
        rows.append(row)
        print(json.dumps(row))
    print()
    print(f"| method | setting | recall@10 | p50 ms | p99 ms | QPS ({a.threads} searchers) | build s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['setting']} | {r['recall_at_10']:.3f} | {r['p50_ms']:.3f} "
            f"| {r['p99_ms']:.3f} | {r['qps']:.0f} | {r['build_s']:.1f} |"
        )


if __name__ == "__main__":
    main()

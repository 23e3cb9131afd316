#!/usr/bin/env python3
"""CPU encoders side by side on one model directory, each in its own process.

Lancet (f32 and q8, through `udf/benches/model_start.rs`), PyTorch f32 (transformers,
sdpa), ONNX Runtime f32 and int8 (the model exported with torch.onnx and quantized
dynamically), llama.cpp f16 and Q8_0 (llama-cpp-python, the model converted with
llama.cpp's convert_hf_to_gguf.py) embed the same texts: 32 code chunks cut from this
repository's sources to seeded lengths, as code documents, and one 32-word query.
Each engine is started twice: the first start embeds the query and exits (start to first
embedding, cold for q8's packed weights); the second also times 10 more queries (p50),
then the documents, and writes its pooled vectors. The report gives tokens per second
(the documents' tokens in the Qwen tokenizer, prompts included, the same count for every
engine), the ratio to PyTorch, query p50, start to first embedding, peak RSS, and each
engine's cosine against PyTorch f32 (mean and least over the documents and the query).

    python3 scripts/make_random_model.py /tmp/random-0.5b
    cargo bench -p lancet-udf --features jemalloc --bench model_start --no-run
    python3 scripts/bench_cpu_peers.py --model /tmp/random-0.5b --work /tmp/peers \\
        --lancet "$(ls -t $CARGO_TARGET_DIR/release/deps/model_start-* | grep -v '\\.d$' | head -1)"

Needs: torch, transformers, onnx, onnxruntime, llama-cpp-python (built from source by
pip), gguf, numpy, and llama.cpp's convert_hf_to_gguf.py (`--convert`, default: the one
in llama-cpp-python's source distribution, fetched with `pip download` into --work).
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

STARTED = time.time()

from bench_inputs import batches, chunk_lengths  # noqa: E402 (the start time comes first)

REPO = pathlib.Path(__file__).resolve().parent.parent
# Lancet's prompts for the nl2code task (udf/src/task.rs).
DOCUMENT_PROMPT = "Candidate code snippet:\n"
QUERY_PROMPT = "Find the most relevant code snippet given the following query:\n"
# The query of udf/benches/model_start.rs.
QUERY = ("where does the retry loop back off exponentially and give up after "
         "the last attempt fails with a timeout error in the http client")
ENGINES = ["torch-f32", "lancet-f32", "lancet-q8", "ort-f32", "ort-int8", "llama-f16", "llama-q8_0"]
BUDGET = 1024  # tokens per forward pass, Lancet's CPU default


def make_documents(tokenizer, n: int) -> list[str]:
    """`n` chunks of this repository's Rust sources, cut to the seeded token lengths."""
    sources = sorted(p for p in (REPO / "udf" / "src").rglob("*.rs"))
    ids = tokenizer("".join(p.read_text() for p in sources), add_special_tokens=False)["input_ids"]
    prompt = len(tokenizer(DOCUMENT_PROMPT, add_special_tokens=False)["input_ids"])
    docs, at = [], 0
    for length in chunk_lengths(n, 42):
        take = length - prompt
        docs.append(tokenizer.decode(ids[at:at + take]))
        at = (at + take) % max(1, len(ids) - 600)
    return docs


def right_padded(rows: list[list[int]]) -> tuple[list[list[int]], list[list[int]]]:
    """Token rows padded with 0 to the longest, and their attention masks."""
    m = max(len(r) for r in rows)
    return [r + [0] * (m - len(r)) for r in rows], [[1] * len(r) + [0] * (m - len(r)) for r in rows]


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's `ru_maxrss` carries over from the
    parent through fork and exec (a parent that has just exported a model would report
    its own peak for every engine); `VmHWM` belongs to this process's memory alone."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------
# Engines run in a child process: `--engine NAME`. Each embeds prompted texts and returns
# raw pooled vectors (the last token's final hidden state).


class TorchEngine:
    def __init__(self, a):
        import torch
        from transformers import AutoModel, AutoTokenizer
        torch.set_num_threads(a.threads)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(a.model)
        self.model = AutoModel.from_pretrained(a.model, dtype=torch.float32, attn_implementation="sdpa").eval()

    def embed(self, texts):
        torch = self.torch
        ids = [self.tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        out = [None] * len(texts)
        for b in batches([len(x) for x in ids], BUDGET):
            x, mask = map(torch.tensor, right_padded([ids[i] for i in b]))
            with torch.inference_mode():
                h = self.model(input_ids=x, attention_mask=mask).last_hidden_state
            for row, i in enumerate(b):
                out[i] = h[row, len(ids[i]) - 1].float().tolist()
        return out


class OrtEngine:
    def __init__(self, a, path):
        import numpy as np
        import onnxruntime as ort
        from transformers import AutoTokenizer
        self.np = np
        self.tok = AutoTokenizer.from_pretrained(a.model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def embed(self, texts):
        np = self.np
        ids = [self.tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        out = [None] * len(texts)
        for b in batches([len(x) for x in ids], BUDGET):
            x, mask = (np.array(rows, dtype=np.int64) for rows in right_padded([ids[i] for i in b]))
            (h,) = self.session.run(None, {"input_ids": x, "attention_mask": mask})
            for row, i in enumerate(b):
                out[i] = h[row, len(ids[i]) - 1].astype(np.float32).tolist()
        return out


class LlamaEngine:
    def __init__(self, a, path):
        import llama_cpp
        self.llama = llama_cpp.Llama(
            model_path=str(path), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_LAST,
            n_ctx=BUDGET, n_batch=BUDGET, n_ubatch=BUDGET, n_threads=a.threads,
            n_threads_batch=a.threads, n_seq_max=64, verbose=False)

    def embed(self, texts):
        # llama-cpp-python packs texts into n_batch-token batches, one sequence each.
        return self.llama.embed(texts, normalize=False, truncate=False)


def run_engine(a) -> None:
    work = pathlib.Path(a.work)
    name = a.engine
    if name == "torch-f32":
        engine = TorchEngine(a)
    elif name.startswith("ort-"):
        engine = OrtEngine(a, work / f"onnx-{name[4:]}" / "model.onnx")
    elif name.startswith("llama-"):
        engine = LlamaEngine(a, work / f"model-{name[6:]}.gguf")
    else:
        raise SystemExit(f"unknown engine {name}")
    loaded = time.time() - STARTED
    query = engine.embed([QUERY_PROMPT + QUERY])[0]
    first = time.time() - STARTED
    report = {"engine": name, "load_seconds": loaded, "start_to_first_embedding_seconds": first}
    if a.full:
        lat = []
        for _ in range(a.query_runs):
            t = time.perf_counter()
            engine.embed([QUERY_PROMPT + QUERY])
            lat.append(time.perf_counter() - t)
        lat.sort()
        docs = json.loads((work / "documents.json").read_text())
        t = time.perf_counter()
        vectors = engine.embed([DOCUMENT_PROMPT + d for d in docs])
        report["documents_seconds"] = time.perf_counter() - t
        report["query_p50_ms"] = lat[len(lat) // 2] * 1e3
        (work / f"vectors-{name}.json").write_text(json.dumps({"query": query, "documents": vectors}))
    report["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(report))


# ---------------------------------------------------------------------------------------
# Preparing the model in each engine's format (once, cached in --work).


def source_stamp(model: str) -> str:
    """The model's weights and config by size and modification time: a conversion made
    from other weights (a model directory written again) is stale."""
    files = sorted(pathlib.Path(model).glob("*.safetensors")) + [pathlib.Path(model) / "config.json"]
    return json.dumps({f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.exists()})


def fresh(a, converted: pathlib.Path) -> bool:
    """Whether `converted` exists and was made from the model's current weights; a stale
    one is removed (with its folder's other files, for ONNX's external data)."""
    stamp = converted.with_name(converted.name + ".source")
    if converted.exists() and stamp.exists() and stamp.read_text() == source_stamp(a.model):
        return True
    for stale in [converted, stamp] + ([*converted.parent.glob("*")] if converted.parent.name.startswith("onnx-") else []):
        if stale.is_file():
            stale.unlink()
    return False


def stamped(a, converted: pathlib.Path) -> None:
    converted.with_name(converted.name + ".source").write_text(source_stamp(a.model))


def export_onnx(a, work: pathlib.Path) -> None:
    f32 = work / "onnx-f32" / "model.onnx"
    int8 = work / "onnx-int8" / "model.onnx"
    if not fresh(a, f32):
        fresh(a, int8)  # made from the stale f32 export: made again too
        import torch
        from transformers import AutoModel
        f32.parent.mkdir(parents=True, exist_ok=True)
        model = AutoModel.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager").eval()

        class Hidden(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

        x = torch.ones((2, 16), dtype=torch.int64)
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
        torch.onnx.export(Hidden(model), (x, torch.ones_like(x)), str(f32), input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], dynamo=True, external_data=True,
                          dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}})
        stamped(a, f32)
    if not fresh(a, int8):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        int8.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(f32), str(int8), weight_type=QuantType.QInt8, use_external_data_format=True)
        stamped(a, int8)


def convert_gguf(a, work: pathlib.Path) -> None:
    convert = pathlib.Path(a.convert) if a.convert else None
    if convert is None:
        src = work / "llama-src"
        found = list(src.glob("**/convert_hf_to_gguf.py"))
        if not found:
            src.mkdir(parents=True, exist_ok=True)
            # The source of the installed version (its build dependencies stay wheels).
            from importlib.metadata import version
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
                            f"llama-cpp-python=={version('llama-cpp-python')}", "-d", str(src)], check=True)
            for tarball in src.glob("*.tar.gz"):
                subprocess.run(["tar", "-xzf", str(tarball), "-C", str(src)], check=True)
            found = list(src.glob("**/convert_hf_to_gguf.py"))
        convert = found[0]
    env = dict(os.environ, PYTHONPATH=str(convert.parent / "gguf-py"))
    for outtype in ["f16", "q8_0"]:
        out = work / f"model-{outtype}.gguf"
        if not fresh(a, out):
            subprocess.run([sys.executable, str(convert), a.model, "--outtype", outtype, "--outfile", str(out)],
                           check=True, env=env)
            stamped(a, out)


# ---------------------------------------------------------------------------------------


def child(a, engine: str, full: bool) -> dict:
    """One start of `engine` in its own process; its JSON report."""
    work = pathlib.Path(a.work)
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    if engine.startswith("lancet-"):
        precision = engine[7:]
        cmd = [a.lancet, "--model", a.model, "--precision", precision, "--query", QUERY]
        if precision == "q8":
            cmd += ["--weights-cache", str(work / "packed")]
        if full:
            cmd += ["--repeats", str(a.query_runs), "--documents", str(work / "documents.json"),
                    "--vectors-out", str(work / f"vectors-{engine}.json")]
        else:
            cmd += ["--repeats", "0"]
    else:
        cmd = [sys.executable, __file__, "--engine", engine, "--model", a.model, "--work", a.work,
               "--threads", str(a.threads), "--query-runs", str(a.query_runs)] + (["--full"] if full else [])
    started = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["wall_seconds"] = time.time() - started
    return report


def cosines(a: list[float], b: list[float]) -> float:
    import numpy as np
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a Qwen2 model directory (config, safetensors, tokenizer)")
    p.add_argument("--work", required=True, help="folder for converted models, texts, vectors, report")
    p.add_argument("--lancet", help="the model_start bench binary (release)")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunks", type=int, default=32)
    p.add_argument("--query-runs", type=int, default=10)
    p.add_argument("--convert", help="llama.cpp's convert_hf_to_gguf.py")
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.engine:
        return run_engine(a)

    work = pathlib.Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    engines = a.engines.split(",")
    if any(e.startswith("lancet-") for e in engines) and not a.lancet:
        raise SystemExit("--lancet BIN is required for the lancet engines (see the usage above)")
    if "torch-f32" not in engines:
        raise SystemExit("torch-f32 is the reference the others are compared with: keep it in --engines")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(a.model)
    docs = make_documents(tok, a.chunks)
    (work / "documents.json").write_text(json.dumps(docs))
    tokens = sum(len(tok(DOCUMENT_PROMPT + d, add_special_tokens=False)["input_ids"]) for d in docs)
    if any(e.startswith("ort-") for e in engines):
        export_onnx(a, work)
    if any(e.startswith("llama-") for e in engines):
        convert_gguf(a, work)
    if "lancet-q8" in engines:
        subprocess.run(["rm", "-rf", str(work / "packed")], check=True)

    results = {}
    for engine in engines:
        first = child(a, engine, full=False)
        second = child(a, engine, full=True)
        print(f"{engine}: first start {first['start_to_first_embedding_seconds']:.2f} s, "
              f"{tokens / second['documents_seconds']:.1f} tokens/s", file=sys.stderr)
        results[engine] = {"first": first, "second": second}

    reference = json.loads((work / "vectors-torch-f32.json").read_text())
    rows = []
    for engine in engines:
        got = json.loads((work / f"vectors-{engine}.json").read_text())
        cos = [cosines(x, y) for x, y in zip(reference["documents"], got["documents"])]
        cos.append(cosines(reference["query"], got["query"]))
        second, first = results[engine]["second"], results[engine]["first"]
        tps = tokens / second["documents_seconds"]
        rows.append({
            "engine": engine, "tokens_per_second": tps,
            "query_p50_ms": second["query_p50_ms"],
            "first_start_to_first_embedding_seconds": first["start_to_first_embedding_seconds"],
            "second_start_to_first_embedding_seconds": second["start_to_first_embedding_seconds"],
            "peak_rss_mb": second["peak_rss_mb"], "cosine_mean": sum(cos) / len(cos), "cosine_min": min(cos),
        })
    torch_tps = next(r["tokens_per_second"] for r in rows if r["engine"] == "torch-f32")
    for r in rows:
        r["vs_torch"] = r["tokens_per_second"] / torch_tps
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    report = {
        "model": a.model, "threads": a.threads, "chunks": a.chunks, "document_tokens": tokens,
        "cpu": cpu, "cpu_flags": [f for f in flags if f.startswith(("avx", "fma", "amx"))],
        "rows": rows, "raw": results,
    }
    (work / "report.json").write_text(json.dumps(report, indent=1))
    print("| engine | tokens/s | vs PyTorch | query p50 | first start | second start | peak RSS | cosine mean / least |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['tokens_per_second']:.1f} | {r['vs_torch']:.2f}x | {r['query_p50_ms']:.0f} ms | "
              f"{r['first_start_to_first_embedding_seconds']:.2f} s | {r['second_start_to_first_embedding_seconds']:.2f} s | "
              f"{r['peak_rss_mb']:.0f} MB | {r['cosine_mean']:.5f} / {r['cosine_min']:.5f} |")


if __name__ == "__main__":
    main()

"""Benchmark: our read+tokenize+pack+write path vs datatrove's JsonlReader -> DocumentTokenizer.

Both run on the same jsonl input (the sample books, or the ShortMix, repeated to at least
`--min-tokens` tokens), with the same number of tasks and worker processes, in the same run, each
in a fresh subprocess. Reported per input: tokens/s of each (whole wall time of the executor
run, worker start-up included), the ratio, peak RSS per worker, whether the token ids are
identical, and ours as a share of the bare tokenizer engine (the engine our path picks, in as
many processes as workers, over the same texts in memory, load not timed: the upper limit).

    python bench/tokenize_throughput.py --corpus examples/corpus --out bench/results/tokenize_throughput.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEQ_LEN = 65536


def read_text(path: Path) -> str:
    """A corpus file's text, gunzipped when it ends in `.gz`."""
    data = path.read_bytes()
    return (gzip.decompress(data) if path.name.endswith(".gz") else data).decode("utf-8")


def read_texts(corpus: Path, kind: str) -> list[str]:
    if kind == "books":
        books = sorted([*(corpus / "books").glob("*.txt"), *(corpus / "books").glob("*.txt.gz")])
        return [read_text(p) for p in books]
    texts = []
    for path in sorted([*(corpus / "short").glob("*.jsonl"), *(corpus / "short").glob("*.jsonl.gz")]):
        texts += [json.loads(line)["text"] for line in read_text(path).split("\n") if line.strip()]
    return texts


def prepare_input(
    corpus: Path, kind: str, min_tokens: int, files: int, work: Path, tokens_per_copy: int
) -> Path:
    """jsonl files holding the texts repeated until at least `min_tokens` tokens, in `files` files."""
    folder = work / f"input-{kind}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    texts = read_texts(corpus, kind)
    copies = -(-min_tokens // tokens_per_copy)
    handles = [open(folder / f"part-{i:03d}.jsonl", "w", encoding="utf-8") for i in range(files)]
    chars = [0] * files  # balance the files (one per task) by size
    for copy in range(copies):
        for j, text in enumerate(texts):
            target = chars.index(min(chars))
            handles[target].write(json.dumps({"id": f"{copy}-{j}", "text": text}) + "\n")
            chars[target] += len(text)
    for h in handles:
        h.close()
    return folder


class RecordPeakMemory:
    """Last pipeline step: after the rank's work is done, record the worker's peak RSS."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        for _ in data or ():
            pass
        self.folder.mkdir(parents=True, exist_ok=True)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        (self.folder / f"rss-{rank:05d}.json").write_text(json.dumps({"peak_rss_mb": peak_mb}))
        return iter(())


def worker_peak_mb(out: Path) -> float:
    return max(json.loads(p.read_text())["peak_rss_mb"] for p in (out / "rss").glob("rss-*.json"))


def run_ours(src: Path, out: Path, tokenizer: str, tasks: int, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader

    from prolong_data.mds import MDSShardWriter
    from prolong_data.packing.steps import PackConcat
    from prolong_data.tokenization import TokenizeDocuments

    pipeline = [
        JsonlReader(str(src)),
        TokenizeDocuments(tokenizer),
        PackConcat(SEQ_LEN, report_folder=str(out / "shards")),
        MDSShardWriter(str(out / "shards"), "bench", SEQ_LEN),
        RecordPeakMemory(out / "rss"),
    ]
    LocalPipelineExecutor(
        pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(out / "logs")
    ).run()


def run_datatrove(src: Path, out: Path, tokenizer: str, tasks: int, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    pipeline = [
        JsonlReader(str(src)),
        DocumentTokenizer(
            output_folder=str(out / "tokens"),
            tokenizer_name_or_path=tokenizer,
            eos_token="<|end_of_text|>",
            shuffle_documents=False,
        ),
        RecordPeakMemory(out / "rss"),
    ]
    LocalPipelineExecutor(
        pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(out / "logs")
    ).run()


def child(args: argparse.Namespace) -> None:
    """One measured run in this (fresh) process; prints a json line."""
    runner = {"ours": run_ours, "datatrove": run_datatrove}[args.child]
    out = Path(args.child_out)
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    runner(Path(args.child_src), out, args.tokenizer, args.tasks, args.workers)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": worker_peak_mb(out)}))


def measure(which: str, src: Path, out: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--child-src", str(src), "--child-out", str(out)]
    cmd += ["--tokenizer", args.tokenizer, "--tasks", str(args.tasks), "--workers", str(args.workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def our_stream(out: Path, rank: int) -> np.ndarray:
    from prolong_data.inspection import iter_samples
    from prolong_data.layout import rank_folder

    folder = rank_folder(out / "shards", rank)
    rows = [row["input_ids"] for _, _, row in iter_samples(folder)]
    return np.concatenate(rows) if rows else np.zeros(0, np.uint32)


def datatrove_stream(out: Path, rank: int) -> np.ndarray:
    files = sorted((out / "tokens").glob(f"{rank:05d}*.ds"))
    return np.concatenate([np.fromfile(f, dtype=np.uint32) for f in files])


def identical_ids(ours: Path, theirs: Path, tasks: int, bos_id: int = 128000) -> bool:
    """Our packed stream of each rank, less its BOS tokens, is a prefix of datatrove's.

    datatrove's tokenizer with `eos_token` set writes ids + EOS per document (no BOS); we write
    BOS + ids + EOS and drop only the last partial sequence of each rank.
    """
    for rank in range(tasks):
        a, b = our_stream(ours, rank), datatrove_stream(theirs, rank)
        bos_count = int((a == bos_id).sum())
        a = a[a != bos_id]
        if len(a) == 0 or len(b) - len(a) >= SEQ_LEN + bos_count or not np.array_equal(a, b[: len(a)]):
            return False
    return True


def _bare_share(tokenizer: str, texts: list[str]) -> tuple[str, int, float]:
    """In a worker process: (engine name, tokens, seconds) of encoding `texts`, the load not timed."""
    from prolong_data.tokenization import choose_engine, load_tokenizer

    engine = choose_engine(load_tokenizer(tokenizer), texts[:4])
    start = time.perf_counter()
    n = sum(len(ids) for ids in engine.encode_batch(texts))
    return engine.name, n, time.perf_counter() - start


def bare_engine_rate(texts: list[str], tokenizer: str, workers: int) -> tuple[str, float]:
    """(name, tokens/s) of the engine our path picks, alone on `texts` in memory, in `workers`
    processes (as our workers run; threads sharing one gigatoken tokenizer contend)."""
    from concurrent.futures import ProcessPoolExecutor

    shares = [texts[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_bare_share, [tokenizer] * workers, shares))
    return results[0][0], sum(n for _, n, _ in results) / max(s for _, _, s in results)


def bench_kind(kind: str, args, work: Path) -> dict:
    from prolong_data.tokenization import build_engine, load_tokenizer

    texts = read_texts(args.corpus, kind)
    tok = load_tokenizer(args.tokenizer)
    tokens_per_copy = sum(len(x) + 2 for x in build_engine("tiktoken", tok, threads=2).encode_batch(texts))
    src = prepare_input(args.corpus, kind, args.min_tokens, args.tasks, work, tokens_per_copy)
    copies = -(-args.min_tokens // tokens_per_copy)
    ours = measure("ours", src, work / f"ours-{kind}", args)
    theirs = measure("datatrove", src, work / f"datatrove-{kind}", args)
    total = copies * tokens_per_copy
    row = {
        "input": kind,
        "tokens": total,
        "ours_tok_s": total / ours["seconds"],
        "datatrove_tok_s": total / theirs["seconds"],
        "ours_peak_mb": ours["peak_rss_mb"],
        "datatrove_peak_mb": theirs["peak_rss_mb"],
        "identical": identical_ids(work / f"ours-{kind}", work / f"datatrove-{kind}", args.tasks),
    }
    row["engine"], row["bare_tok_s"] = bare_engine_rate(texts * min(copies, 3), args.tokenizer, args.workers)
    row["ratio"] = row["ours_tok_s"] / row["datatrove_tok_s"]
    row["share_of_bare"] = row["ours_tok_s"] / row["bare_tok_s"]
    return row


def table(rows: list[dict], args) -> str:
    lines = [
        f"Tokenize throughput, {args.tasks} tasks on {args.workers} worker processes, seq_len {SEQ_LEN}, "
        f"tokenizer `{Path(args.tokenizer).name}` (run `make bench`).",
        "",
        "| input | tokens | ours tok/s | datatrove tok/s | ratio | identical ids | peak RSS ours / datatrove (MB) | ours / bare engine |",
        "|---|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['input']} | {r['tokens']:,} | {r['ours_tok_s'] / 1e6:.2f}M | {r['datatrove_tok_s'] / 1e6:.2f}M | "
            f"**{r['ratio']:.1f}x** | {'yes' if r['identical'] else 'NO'} | {r['ours_peak_mb']:.0f} / {r['datatrove_peak_mb']:.0f} | "
            f"{100 * r['share_of_bare']:.0f}% of {r['bare_tok_s'] / 1e6:.2f}M ({r['engine']}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=REPO / "examples" / "corpus")
    parser.add_argument("--tokenizer", default=None, help="default: the packaged llama3 tokenizer.json")
    parser.add_argument("--min-tokens", type=int, default=20_000_000)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--inputs", default="books,short")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tokenize_throughput.md")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-src", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tokenizer is None:
        from prolong_data.assets import llama3_folder

        args.tokenizer = str(llama3_folder() / "tokenizer.json")
    if args.child:
        child(args)
        return
    rows = []
    for kind in args.inputs.split(","):
        rows.append(bench_kind(kind, args, args.work))
        print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table(rows, args))
    print(table(rows, args))


if __name__ == "__main__":
    main()

"""Benchmark: the end-to-end build of the `demo` mixture vs datatrove's `DocumentTokenizer`.

Three measurements, each in a fresh subprocess, same input, same tasks and workers:

* ours: `prolong-data shards --recipe demo` (read -> filters -> partition -> dedup -> tokenize
  -> pack to 65,536 -> MDS -> finalize), tokens/s over the whole wall time;
* baseline: the same readers and filters -> datatrove `DocumentTokenizer` (HF tokenizers,
  its own shuffled token files), under the same dispatcher and executor;
* ours packing to 524,288 (the `demo-512k` recipe): peak memory per worker.

The sample corpus is small, so `--copies K` repeats books, textbooks and ShortMix K times (each
copy's text made unique so exact dedup keeps it); code repositories are the demo's packages.
Peak memory per worker is each worker process's maximum RSS, recorded at the end of its tasks.

    python bench/pipeline_demo.py --corpus examples/corpus --out bench/results/pipeline_demo.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def read_bytes(path: Path) -> bytes:
    """A corpus file's bytes, gunzipped when it ends in `.gz`."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def make_corpus(corpus: Path, copies: int, work: Path) -> Path:
    """`corpus` with books, textbooks and short rows repeated `copies` times, each copy unique."""
    out = work / f"corpus-x{copies}"
    if (out / ".done").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    (out / "books").mkdir(parents=True)
    for book in sorted([*(corpus / "books").glob("*.txt"), *(corpus / "books").glob("*.txt.gz")]):
        raw = read_bytes(book)
        stem = book.name.removesuffix(".gz").removesuffix(".txt")
        for k in range(copies):
            marker = raw.find(b"***", raw.find(b"START OF")) + 3  # after the START marker line's end
            line_end = raw.find(b"\n", marker) + 1
            copy = raw[:line_end] + f"[copy {k}]\r\n".encode() + raw[line_end:]
            (out / "books" / f"{stem}-{k}.txt").write_bytes(copy)
    for folder in ("textbooks", "short"):
        (out / folder).mkdir()
        for src in sorted([*(corpus / folder).glob("*.jsonl"), *(corpus / folder).glob("*.jsonl.gz")]):
            lines = [line for line in read_bytes(src).decode("utf-8").split("\n") if line.strip()]
            with open(out / folder / src.name.removesuffix(".gz"), "w", encoding="utf-8") as f:
                for k in range(copies):
                    for line in lines:
                        row = json.loads(line)
                        row["id"], row["text"] = f"{row['id']}-{k}", f"[copy {k}] {row['text']}"
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / ".done").touch()
    return out


def run_ours(recipe: str, corpus: Path, out: Path, tasks: int, workers: int) -> None:
    from pipelines.cli import main

    code = main(
        [
            "shards",
            "--recipe",
            recipe,
            "--out",
            str(out),
            "--corpus",
            str(corpus),
            "--fresh",
            "--tasks",
            str(tasks),
            "--workers",
            str(workers),
            "--no-report",
        ]
    )
    if code:
        raise SystemExit(code)


def run_baseline(corpus: Path, out: Path, tasks: int, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.tokens import DocumentTokenizer

    from pipelines.build import BuildOptions, plan_build
    from pipelines.dispatch import DomainJob, DomainTasks
    from pipelines.recipe import load_recipe

    shutil.rmtree(out, ignore_errors=True)
    recipe = load_recipe("demo").resolved(str(corpus))
    plans = plan_build(recipe, BuildOptions(out=out, tasks=tasks))
    tokenizer = recipe.tokenizer
    if tokenizer == "llama3":  # datatrove's tokenizer takes a file: the packaged tokenizer.json
        from prolong_data.assets import llama3_folder

        tokenizer = str(llama3_folder() / "tokenizer.json")
    jobs = [
        DomainJob(
            p.config.name,
            [
                *p.source_steps,
                DocumentTokenizer(
                    str(out / "tokens" / p.config.name), tokenizer, eos_token="<|end_of_text|>"
                ),
            ],
            p.tasks,
        )
        for p in plans
    ]
    step = DomainTasks(jobs, str(out / "stats"))
    LocalPipelineExecutor([step], tasks=step.world_size, workers=workers, logging_dir=str(out / "logs")).run()


def peak_rss(stats: Path) -> float:
    return max(json.loads(p.read_text()).get("peak_rss_mb", 0) for p in stats.rglob("*.json"))


def measure(which: str, args) -> dict:
    """Run one measurement in a fresh interpreter; its wall time and counts."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        which,
        "--corpus",
        str(args.corpus),
        "--copies",
        str(args.copies),
        "--tasks",
        str(args.tasks),
        "--workers",
        str(args.workers),
        "--work",
        str(args.work),
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{which} failed:\n{done.stderr[-3000:]}")
    out = args.work / which
    if which == "baseline":
        tokens = sum(
            int(counts.get("tokens", 0))  # only DocumentTokenizer counts tokens in this pipeline
            for p in (out / "stats").rglob("*.json")
            for counts in json.loads(p.read_text())["steps"].values()
        )
        return {"wall_s": wall, "tokens": tokens, "peak_mb": peak_rss(out / "stats")}
    from prolong_data.layout import BuildLayout

    layout = BuildLayout(out)
    summary = json.loads(layout.manifest.read_text())
    tokens = sum(d["tokens"] for d in summary["domains"].values())
    sequences = sum(d["sequences"] for d in summary["domains"].values())
    peak = max(peak_rss(layout.stats("read")), peak_rss(layout.stats("build")))
    return {"wall_s": wall, "tokens": tokens, "sequences": sequences, "peak_mb": peak}


def child(args) -> None:
    corpus = make_corpus(args.corpus, args.copies, args.work)
    out = args.work / args.child
    if args.child == "ours":
        run_ours("demo", corpus, out, args.tasks, args.workers)
    elif args.child == "ours-512k":
        run_ours("demo-512k", corpus, out, args.tasks, args.workers)
    else:
        run_baseline(corpus, out, args.tasks, args.workers)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=REPO / "examples" / "corpus")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "pipeline_demo")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline_demo.md")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.corpus = args.corpus.resolve()
    if args.child:
        child(args)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    make_corpus(args.corpus, args.copies, args.work)
    rows = {which: measure(which, args) for which in ("baseline", "ours", "ours-512k")}
    ours, base, big = rows["ours"], rows["baseline"], rows["ours-512k"]
    rate = {k: r["tokens"] / r["wall_s"] for k, r in rows.items()}
    lines = [
        "# End-to-end build of the demo mixture",
        "",
        f"Input: the sample corpus x{args.copies} (books, textbooks, ShortMix) + the demo's code packages; "
        f"{args.tasks} tasks per domain, {args.workers} workers, same run, fresh subprocess each.",
        "",
        "| run | tokens | wall s | tokens/s | peak MB per worker |",
        "|---|---:|---:|---:|---:|",
        f"| datatrove readers -> DocumentTokenizer (baseline) | {base['tokens']:,} | {base['wall_s']:.1f} | "
        f"{rate['baseline']:,.0f} | {base['peak_mb']:,.0f} |",
        f"| prolong-data shards, demo, seq_len 65,536 | {ours['tokens']:,} | {ours['wall_s']:.1f} | "
        f"{rate['ours']:,.0f} | {ours['peak_mb']:,.0f} |",
        f"| prolong-data shards, demo-512k (seq_len 524,288) | {big['tokens']:,} | {big['wall_s']:.1f} | "
        f"{rate['ours-512k']:,.0f} | {big['peak_mb']:,.0f} |",
        "",
        f"Ratio ours / baseline (tokens/s): **{rate['ours'] / rate['baseline']:.2f}x** (target >= 5x). "
        f"Peak memory per worker packing to 524,288: **{big['peak_mb']:,.0f} MB** (target < 1,536 MB).",
    ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

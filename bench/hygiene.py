"""Benchmark: what near-dedup and decontamination add to a build, measured beside the plain build.

Three builds of the sample books (each book `--copies` times, every copy re-wrapped differently so
exact dedup keeps it and near-dedup removes it), each in a fresh subprocess with 2 tasks on 2
workers: plain, `near_dedup: {}`, and `decontaminate:` with `prolong-data eval`'s held-out books.
Wall time of each, and the peak RSS of its workers (from the build's task stats). Then, in this
process on one core: the signature step in seconds per MB of text and its peak memory
(tracemalloc) at 1x and 8x the length of one document; the decontamination lookup (words, n-gram
hashes, binary search, excise) in tokens per second with an index of `--index-ngrams` n-grams.

    python bench/hygiene.py --corpus examples/corpus --out bench/results/hygiene.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prolong_data.decontaminate import DecontaminateConfig, EvalIndex, build_index, excise, find_matches  # noqa: E402
from prolong_data.layout import BuildLayout  # noqa: E402
from prolong_data.near_dedup import MinHasher, text_blocks  # noqa: E402


def book_texts(folder: Path) -> dict[str, str]:
    return {
        p.name.removesuffix(".gz"): (
            gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
        ).decode()
        for p in sorted(folder.glob("*.txt*"))
    }


def make_books(corpus: Path, copies: int, work: Path) -> Path:
    """Each sample book `copies` times, copy k re-wrapped at 60 + k columns (a near-duplicate)."""
    out = work / f"books-x{copies}"
    out.mkdir(parents=True, exist_ok=True)
    for name, text in book_texts(corpus / "books").items():
        for k in range(copies):
            wrapped = text if k == 0 else "\n\n".join(textwrap.fill(p, 60 + k) for p in text.split("\n\n"))
            (out / f"{k}-{name}").write_text(wrapped)
    return out


def recipe(books: Path, extra: dict) -> dict:
    return {
        "name": "hygiene-bench",
        "seq_len": 65536,
        "tokenizer": "llama3",
        "token_budget": 1 << 24,
        "max_repeat": 1000.0,
        "tasks": 2,
        "domains": [
            {
                "name": "book-65536",
                "group": "long",
                "proportion": 1.0,
                "sources": [{"kind": "book_files", "paths": [str(books)]}],
                "pack": {"mode": "length_binned", "chunk_len": 65536},
                **extra,
            }
        ],
    }


def timed_build(name: str, data: dict, work: Path) -> dict:
    path, out = work / f"{name}.yaml", work / f"out-{name}"
    path.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "pipelines.cli", "shards", "--recipe", str(path), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run([*command, "--workers", "2", "--fresh"], cwd=REPO, check=True, capture_output=True)
    wall = time.perf_counter() - start
    layout = BuildLayout(out)
    stats = layout.stats("build").parent  # every pass's task stats
    peaks = [json.loads(p.read_text()).get("peak_rss_mb", 0) for p in stats.rglob("*.json")]
    manifest = json.loads(layout.manifest.read_text())["domains"]["book-65536"]
    return {
        "wall": wall,
        "peak_mb": max(peaks),
        "documents": manifest["documents"],
        "tokens": manifest["tokens"],
    }


def signature_cost(text: str) -> tuple[float, list[float]]:
    """(seconds per MB, [peak MB of one signature at 1x, at 8x the text])."""
    hasher = MinHasher()
    start = time.perf_counter()
    hasher.signature(text_blocks(text))
    per_mb = (time.perf_counter() - start) / (len(text.encode()) / 1e6)
    peaks = []
    for copies in (1, 8):
        long = text * copies
        tracemalloc.start()
        hasher.signature(text_blocks(long))
        peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
    return per_mb, peaks


def decontamination_rate(text: str, heldout: Path, ngrams: int) -> tuple[float, int]:
    """(tokens per second of the lookup and excise over `text`, n-grams in the index)."""
    from prolong_data.tokenization import load_tokenizer

    config = DecontaminateConfig(paths=[str(heldout)])
    real = build_index(config)
    rng = np.random.default_rng(0)
    filler = rng.integers(0, 2**63, size=max(ngrams - len(real.hashes), 0), dtype=np.uint64)
    hashes = np.unique(np.concatenate([real.hashes, filler]))
    index = EvalIndex(hashes, np.zeros(len(hashes), dtype=np.uint16), real.names)
    tokens = len(load_tokenizer("llama3").encode_reference(text))
    start = time.perf_counter()
    match = find_matches(text, index, config, {})
    if match is not None:
        excise(text, match)
    return tokens / (time.perf_counter() - start), len(hashes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "examples" / "corpus")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hygiene.md")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "hygiene")
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--index-ngrams", type=int, default=10_000_000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    books = make_books(args.corpus, args.copies, args.work)
    mb = sum(p.stat().st_size for p in books.iterdir()) / 1e6
    runs = {
        "plain": timed_build("plain", recipe(books, {}), args.work),
        "near_dedup": timed_build("near", recipe(books, {"near_dedup": {}}), args.work),
        "decontaminate": timed_build(
            "decontaminate",
            recipe(books, {"decontaminate": {"paths": [str(args.corpus / "heldout")]}}),
            args.work,
        ),
    }
    text = "\n".join(book_texts(args.corpus / "books").values())
    per_mb, peaks = signature_cost(text[:4_000_000])
    rate, indexed = decontamination_rate(text[:4_000_000], args.corpus / "heldout", args.index_ngrams)
    plain = runs["plain"]["wall"]
    lines = [
        f"Input: the sample books x{args.copies} (each copy re-wrapped), {mb:.1f} MB; 2 tasks, 2 workers.",
        "",
        "| build | wall (s) | vs plain | documents kept | peak RSS per worker (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['wall']:.1f} | {r['wall'] / plain:.2f}x | {r['documents']:,} | {r['peak_mb']:.0f} |"
        )
    lines += [
        "",
        "| step (one core) | measure |",
        "|---|---|",
        f"| near-dedup signatures | {per_mb:.2f} s per MB ({per_mb * 1000 / 60:.1f} min per GB) |",
        f"| signature peak memory, one document at 1x / 8x | {peaks[0]:.1f} MB / {peaks[1]:.1f} MB |",
        f"| decontamination lookup + excise, index of {indexed:,} n-grams | {rate / 1e6:.2f}M tokens/s |",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Near-dedup and decontamination\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

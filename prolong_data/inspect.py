"""Look inside shard folders: `inspect` (what is there) and `verify` (is it all valid).

A shard folder is either one domain (it has `index.json`) or a mixture root (it has domain
folders, each with `index.json`); both commands accept either.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prolong_data.lengths import LENGTH_EDGES, bin_label, length_bins
from prolong_data.mds import read_manifest
from prolong_data.mds_format import read_samples

REQUIRED_COLUMNS = {
    "input_ids": "ndarray:uint32",
    "indices": "ndarray:uint32",
    "domain": "str",
    "length": "int",
}


def domain_folders(root: str | Path) -> list[Path]:
    """The MDS dataset folders at or directly under `root`, sorted by name."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if (root / "index.json").is_file():
        return [root]
    found = sorted(p for p in root.iterdir() if (p / "index.json").is_file())
    if not found:
        raise FileNotFoundError(
            f"{root} has no index.json and no domain folders with one: is it a shard folder?"
        )
    return found


def _shard_infos(folder: Path) -> list[dict]:
    index = json.loads((folder / "index.json").read_text())
    return index["shards"]


def iter_samples(folder: str | Path) -> Iterator[tuple[str, int, dict]]:
    """(shard file, index in shard, row) for every sample of one MDS folder, in index order."""
    return read_samples(folder)


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------


class ShardError(ValueError):
    """A sample that breaks the shard contract; the message names it."""


def check_columns(folder: Path) -> None:
    """Every shard of `folder` has the contract's columns with the contract's encodings."""
    for info in _shard_infos(folder):
        got = dict(zip(info["column_names"], info["column_encodings"]))
        for name, encoding in REQUIRED_COLUMNS.items():
            if got.get(name) != encoding:
                raise ShardError(
                    f"{folder}/{info['raw_data']['basename']}: column {name!r} is {got.get(name)!r}, "
                    f"the contract says {encoding!r}"
                )
        if "mask" in got and got["mask"] != "ndarray:uint8":
            raise ShardError(f"{folder}: column 'mask' is {got['mask']!r}, the contract says 'ndarray:uint8'")


def check_sample(row: dict, seq_len: int | None) -> int:
    """Raise `ShardError` if `row` breaks the contract; return its sequence length."""
    ids, spans = row["input_ids"], row["indices"]
    if ids.dtype != np.uint32 or spans.dtype != np.uint32:
        raise ShardError(f"dtype is input_ids {ids.dtype} / indices {spans.dtype}, both must be uint32")
    n = len(ids)
    if int(row["length"]) != n:
        raise ShardError(f"length column says {row['length']} but input_ids has {n} tokens")
    if seq_len is not None and n != seq_len:
        raise ShardError(f"sequence has {n} tokens, expected seq_len {seq_len}")
    if spans.ndim != 2 or spans.shape[1] != 2 or len(spans) == 0:
        raise ShardError(f"indices must have shape (n, 2) with n >= 1, got {spans.shape}")
    starts, ends = spans[:, 0].astype(np.int64), spans[:, 1].astype(np.int64)
    if starts[0] != 0 or ends[-1] != n:
        raise ShardError(f"spans cover [{starts[0]}, {ends[-1]}), must cover [0, {n})")
    if np.any(ends <= starts):
        raise ShardError("a span is empty or reversed")
    if np.any(starts[1:] != ends[:-1]):
        gap = int(np.argmax(starts[1:] != ends[:-1]))
        raise ShardError(
            f"spans {gap} and {gap + 1} are not contiguous: {spans[gap].tolist()} {spans[gap + 1].tolist()}"
        )
    if "mask" in row and row["mask"] is not None:
        mask = row["mask"]
        if mask.dtype != np.uint8 or len(mask) != n:
            raise ShardError(f"mask must be uint8 with {n} entries, got {mask.dtype} x {len(mask)}")
        if np.any(mask > 1):
            raise ShardError("mask holds values other than 0 and 1")
    return n


@dataclass
class VerifyReport:
    """What `verify` checked."""

    folders: int = 0
    samples: int = 0
    tokens: int = 0


def verify(root: str | Path) -> VerifyReport:
    """Check every sample of every domain under `root`; raise `ShardError` at the first bad one."""
    report = VerifyReport()
    for folder in domain_folders(root):
        check_columns(folder)
        seq_len = read_manifest(folder).get("seq_len")
        for shard, i, row in iter_samples(folder):
            try:
                report.tokens += check_sample(row, seq_len)
            except ShardError as err:
                raise ShardError(f"{folder.name}/{shard} sample {i}: {err}") from None
            report.samples += 1
        report.folders += 1
    return report


# --------------------------------------------------------------------------------------------
# inspect
# --------------------------------------------------------------------------------------------


@dataclass
class DomainSummary:
    """Counts of one domain folder, read from its samples."""

    domain: str
    sequences: int = 0
    tokens: int = 0
    spans: int = 0
    masked_in_tokens: int = 0
    span_lengths: Counter = field(default_factory=Counter)  # histogram bin index -> count

    def histogram_rows(self) -> list[tuple[str, int]]:
        return [(bin_label(i), self.span_lengths.get(i, 0)) for i in range(len(LENGTH_EDGES) - 1)]


def summarize(folder: str | Path) -> DomainSummary:
    """Sequences, tokens and the histogram of span (document piece) lengths of one domain."""
    folder = Path(folder)
    summary = DomainSummary(domain=folder.name)
    for _, _, row in iter_samples(folder):
        spans = row["indices"].astype(np.int64)
        lengths = spans[:, 1] - spans[:, 0]
        summary.sequences += 1
        summary.tokens += len(row["input_ids"])
        summary.spans += len(spans)
        if row.get("mask") is not None:
            summary.masked_in_tokens += int(row["mask"].sum())
        summary.span_lengths.update(length_bins(lengths).tolist())
    return summary


def sample_at(folder: str | Path, index: int) -> dict:
    """Row `index` of a domain folder (in index order)."""
    for n, (_, _, row) in enumerate(iter_samples(folder)):
        if n == index:
            return row
    raise IndexError(f"{folder} has no sample {index}")


def format_summary(summaries: list[DomainSummary]) -> str:
    """A text table of the domains and their span-length histograms."""
    lines = [f"{'domain':<40} {'sequences':>10} {'tokens':>14} {'spans':>9}"]
    for s in summaries:
        lines.append(f"{s.domain:<40} {s.sequences:>10,} {s.tokens:>14,} {s.spans:>9,}")
    for s in summaries:
        lines.append(f"\n{s.domain}: span lengths (tokens)")
        peak = max((c for _, c in s.histogram_rows()), default=0) or 1
        for label, count in s.histogram_rows():
            lines.append(f"  {label:>16} {count:>8,} {'#' * round(40 * count / peak)}")
    return "\n".join(lines)


def plot_histograms(summaries: list[DomainSummary], png: str | Path) -> Path:
    """One bar chart per domain of span lengths, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(summaries), 1, figsize=(8, 2.2 * len(summaries) + 0.5), squeeze=False)
    for ax, s in zip(axes[:, 0], summaries):
        labels, counts = zip(*s.histogram_rows())
        ax.bar(range(len(counts)), counts, color="#4C72B0")
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{s.domain}: {s.sequences:,} sequences, {s.tokens:,} tokens", fontsize=9)
        ax.set_ylabel("spans", fontsize=8)
    axes[-1, 0].set_xlabel("document span length (tokens)")
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png

"""Look inside shard folders (`prolong-data inspect`): domains, sequences, tokens, span lengths.

A shard folder is either one domain (it has `index.json`) or a mixture root (it has domain
folders, each with `index.json`); `inspect` and `verify` (`prolong_data.verify`) accept either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prolong_data.layout import index_file
from prolong_data.lengths import LENGTH_EDGES, bin_label, length_bins
from prolong_data.mds_format import iter_shard, raw_shard_bytes, read_index


def domain_folders(root: str | Path) -> list[Path]:
    """The MDS dataset folders at or directly under `root`, sorted by name."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if index_file(root).is_file():
        return [root]
    found = sorted(p for p in root.iterdir() if index_file(p).is_file())
    if not found:
        raise FileNotFoundError(
            f"{root} has no index.json and no domain folders with one: is it a shard folder?"
        )
    return found


def iter_samples(folder: str | Path) -> Iterator[tuple[str, int, dict]]:
    """(shard file, index in shard, row) for every sample of one MDS folder, in index order
    (read natively: no streaming, no torch)."""
    folder = Path(folder)
    for info in read_index(folder):
        name = info["raw_data"]["basename"]
        for i, row in enumerate(iter_shard(raw_shard_bytes(folder, info), info, str(folder / name))):
            yield name, i, row


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

"""Token-length histograms: the bins that build reports and `inspect` share."""

from __future__ import annotations

import numpy as np

LENGTH_EDGES = [0, 256, 1024, 4096, 16384, 65536, 262144, 524288, 1 << 40]
"""Bin edges in tokens: bin `i` holds lengths in `[LENGTH_EDGES[i], LENGTH_EDGES[i + 1])`."""


def length_bins(lengths) -> np.ndarray:
    """The bin index of each length."""
    return np.searchsorted(LENGTH_EDGES, lengths, side="right") - 1


def short_count(n: int) -> str:
    """A token count as people write it: `64K` for a multiple of 1024, else the number."""
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def bin_label(i: int) -> str:
    """`[4K, 16K)`, or `>= 512K` for the last bin."""
    lo, hi = LENGTH_EDGES[i], LENGTH_EDGES[i + 1]
    return f"[{short_count(lo)}, {short_count(hi)})" if i < len(LENGTH_EDGES) - 2 else f">= {short_count(lo)}"

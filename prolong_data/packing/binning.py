"""Length binning: ProLong's `-65536` / `-524288` domains.

A document of at least L tokens is cut into chunks of exactly L tokens. With several bins the
longest bin that fits is used first; what is left of the document (the tail, shorter than L)
is handled by `tail`:

* ``"drop"``: the tail is dropped and counted (each chunk then comes from one bin only);
* ``"next_bin"``: the tail goes on to the next smaller bin, and is dropped only when it is
  shorter than the smallest bin.

A document shorter than the smallest bin is dropped from the long domain and counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from prolong_data.packing.sequence import PackingStats

TAIL_POLICIES = ("drop", "next_bin")


@dataclass
class LengthBinner:
    """Cuts token arrays into fixed-length chunks, one bin length per chunk."""

    bins: Sequence[int]
    """Chunk lengths in tokens, e.g. (524288, 65536); any order, used longest first."""
    tail: str = "next_bin"
    """What happens to the rest of a document after its last full chunk: "drop" or "next_bin"."""

    def __post_init__(self):
        if not self.bins or any(int(b) <= 0 for b in self.bins):
            raise ValueError(f"bins must be positive token counts, got {self.bins!r}")
        if self.tail not in TAIL_POLICIES:
            raise ValueError(f"tail must be one of {TAIL_POLICIES}, got {self.tail!r}")
        self.bins = sorted((int(b) for b in self.bins), reverse=True)
        self.stats = {b: PackingStats() for b in self.bins}
        self.dropped_tokens = 0
        self.dropped_documents = 0

    def cut(self, tokens: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(bin length, chunk) pairs of one document, chunks in document order."""
        offset, n = 0, len(tokens)
        if n < self.bins[-1]:
            self.dropped_tokens += n
            self.dropped_documents += 1
            return
        for i, length in enumerate(self.bins):
            if i > 0 and self.tail == "drop" and offset > 0:
                break
            full = (n - offset) // length
            if full == 0:
                continue
            self.stats[length].documents += 1
            for _ in range(full):
                chunk = tokens[offset : offset + length]
                self.stats[length].tokens_in += length
                offset += length
                yield length, chunk
        self.dropped_tokens += n - offset

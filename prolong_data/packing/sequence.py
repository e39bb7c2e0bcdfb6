"""What every packer produces: one training sequence with its document spans."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from prolong_data.contract import TOKEN_DTYPE


@dataclass
class PackedSequence:
    """`seq_len` tokens and the `[start, end)` spans of the documents (or document pieces) in them.

    The spans are contiguous and cover the whole sequence; attention never crosses a span, and
    the first token of each span is not a prediction target. `mask` (SFT only) is 1 on tokens
    that are trained on; a padding span at the end is all 0.
    """

    input_ids: np.ndarray  # (seq_len,) uint32
    indices: np.ndarray  # (n_spans, 2) uint32
    mask: np.ndarray | None = None  # (seq_len,) uint8

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass
class PackingStats:
    """Token accounting of one packer: everything that came in is kept, dropped or padded."""

    documents: int = 0
    """Documents that gave tokens to this packer."""
    chunks: int = 0
    """Fixed-length chunks packed (length-binned domains: several per long document)."""
    tokens_in: int = 0
    tokens_out: int = 0
    sequences: int = 0
    dropped_tokens: int = 0
    dropped_documents: int = 0
    dropped_chunks: int = 0
    """Chunks left over at the end that did not fill a whole sequence."""
    padded_tokens: int = 0
    truncated_documents: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def padded_share(self) -> float:
        return self.padded_tokens / self.tokens_out if self.tokens_out else 0.0

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out["padded_share"] = round(self.padded_share, 6)
        out.update(self.extra)
        return out


def spans_from_lengths(lengths: list[int]) -> np.ndarray:
    """(n, 2) uint32 `[start, end)` spans of consecutive pieces with the given lengths."""
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    starts = ends - np.asarray(lengths, dtype=np.int64)
    return np.stack([starts, ends], axis=1).astype(TOKEN_DTYPE)

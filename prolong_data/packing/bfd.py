"""Best-fit-decreasing packing for units that must stay whole (chat conversations).

Units are collected into buffers of `buffer_size`; each buffer is packed by best-fit-decreasing
(longest unit first, into the open sequence with the least room that still fits it). Every unit
gets one span; the rest of each sequence is one padding span of `pad_id` with mask 0, counted as
waste. A unit longer than `seq_len` is truncated to `seq_len` or dropped (`too_long`), and counted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

import numpy as np

from prolong_data.contract import TOKEN_DTYPE
from prolong_data.packing.sequence import PackedSequence, PackingStats, spans_from_lengths

TOO_LONG_POLICIES = ("truncate", "drop")


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Groups of unit indices whose lengths fit in `capacity`, by best-fit-decreasing.

    Bins come out in the order they were opened; inside a bin, units keep the order they were
    placed (longest first). Every length must be <= capacity.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[tuple[int, int]] = []  # sorted (free tokens, bin id) of bins that are not full
    for i in order:
        need = lengths[i]
        if need > capacity:
            raise ValueError(f"unit {i} has {need} tokens, more than the capacity {capacity}")
        pos = bisect.bisect_left(room, (need, -1))
        if pos == len(room):
            bins.append([i])
            free, bin_id = capacity - need, len(bins) - 1
        else:
            free, bin_id = room.pop(pos)
            bins[bin_id].append(i)
            free -= need
        if free > 0:
            bisect.insort(room, (free, bin_id))
    return bins


class BFDPacker:
    """Whole units into `seq_len` sequences with a padding span; buffers of `buffer_size` units."""

    def __init__(self, seq_len: int, pad_id: int, buffer_size: int = 20000, too_long: str = "truncate"):
        if too_long not in TOO_LONG_POLICIES:
            raise ValueError(f"too_long must be one of {TOO_LONG_POLICIES}, got {too_long!r}")
        if seq_len <= 0 or buffer_size <= 0:
            raise ValueError("seq_len and buffer_size must be positive")
        self.seq_len, self.pad_id = seq_len, pad_id
        self.buffer_size, self.too_long = buffer_size, too_long
        self.stats = PackingStats()
        self._units: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, tokens: np.ndarray, mask: np.ndarray | None = None) -> Iterator[PackedSequence]:
        """Add one unit (with its 0/1 loss mask, all ones if None); yield sequences of full buffers."""
        self.stats.documents += 1
        self.stats.tokens_in += len(tokens)
        mask = np.ones(len(tokens), np.uint8) if mask is None else np.asarray(mask, np.uint8)
        if len(mask) != len(tokens):
            raise ValueError(f"mask has {len(mask)} entries for {len(tokens)} tokens")
        if len(tokens) > self.seq_len:
            if self.too_long == "drop":
                self.stats.dropped_tokens += len(tokens)
                self.stats.dropped_documents += 1
                return
            self.stats.dropped_tokens += len(tokens) - self.seq_len
            self.stats.truncated_documents += 1
            tokens, mask = tokens[: self.seq_len], mask[: self.seq_len]
        if len(tokens) == 0:
            self.stats.dropped_documents += 1
            return
        self._units.append((tokens, mask))
        if len(self._units) >= self.buffer_size:
            yield from self._pack_buffer()

    def finish(self) -> Iterator[PackedSequence]:
        """Pack what is left in the buffer (the last sequences may be emptier)."""
        yield from self._pack_buffer()

    def _pack_buffer(self) -> Iterator[PackedSequence]:
        units, self._units = self._units, []
        for group in best_fit_decreasing([len(t) for t, _ in units], self.seq_len):
            yield self._sequence([units[i] for i in group])

    def _sequence(self, units: list[tuple[np.ndarray, np.ndarray]]) -> PackedSequence:
        lengths = [len(t) for t, _ in units]
        pad = self.seq_len - sum(lengths)
        ids = [t for t, _ in units]
        masks = [m for _, m in units]
        if pad:
            ids.append(np.full(pad, self.pad_id, TOKEN_DTYPE))
            masks.append(np.zeros(pad, np.uint8))
            lengths.append(pad)
        self.stats.sequences += 1
        self.stats.tokens_out += self.seq_len
        self.stats.padded_tokens += pad
        return PackedSequence(
            input_ids=np.concatenate(ids).astype(TOKEN_DTYPE, copy=False),
            indices=spans_from_lengths(lengths),
            mask=np.concatenate(masks).astype(np.uint8, copy=False),
        )

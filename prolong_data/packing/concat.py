"""Concat-and-split with carry-over: ProLong's packing for pre-training data.

Documents are laid end to end and cut every `seq_len` tokens, with no padding. A document that
runs past the end of a sequence continues at the start of the next one, where it gets a new span.
Only the unfinished last sequence is dropped (and counted) when the input ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from prolong_data.contract import TOKEN_DTYPE
from prolong_data.packing.sequence import PackedSequence, PackingStats, spans_from_lengths


class ConcatPacker:
    """Streams documents in, full `seq_len` sequences out."""

    def __init__(self, seq_len: int):
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        self.seq_len = seq_len
        self.stats = PackingStats()
        self._pieces: list[np.ndarray] = []  # document pieces waiting for the next sequence
        self._filled = 0

    def add(self, tokens: np.ndarray) -> Iterator[PackedSequence]:
        """Add one document; yield every sequence it completes."""
        self.stats.documents += 1
        self.stats.tokens_in += len(tokens)
        offset = 0
        while offset < len(tokens):
            take = min(self.seq_len - self._filled, len(tokens) - offset)
            self._pieces.append(tokens[offset : offset + take])
            self._filled += take
            offset += take
            if self._filled == self.seq_len:
                yield self._emit()

    def finish(self) -> Iterator[PackedSequence]:
        """End of input: the partial last sequence is dropped and counted (no padding)."""
        self.stats.dropped_tokens += self._filled
        self._pieces, self._filled = [], 0
        return iter(())

    def _emit(self) -> PackedSequence:
        lengths = [len(p) for p in self._pieces]
        seq = PackedSequence(
            input_ids=np.concatenate(self._pieces).astype(TOKEN_DTYPE, copy=False),
            indices=spans_from_lengths(lengths),
        )
        self._pieces, self._filled = [], 0
        self.stats.sequences += 1
        self.stats.tokens_out += self.seq_len
        return seq


class ChunkPacker:
    """Fixed-length chunks (from `LengthBinner`) into sequences, one span per chunk.

    With chunk length == seq_len this is one chunk per sequence (ProLong's `-65536` domain at
    64K); with seq_len a multiple of the chunk length it lays chunks side by side (64K chunks
    packed 8 to a 512K sequence in stage 2). Chunks never cross a sequence boundary.
    """

    def __init__(self, seq_len: int, chunk_len: int):
        if chunk_len <= 0 or seq_len % chunk_len:
            raise ValueError(f"seq_len {seq_len} must be a multiple of the chunk length {chunk_len}")
        self.seq_len, self.chunk_len = seq_len, chunk_len
        self.per_sequence = seq_len // chunk_len
        self.stats = PackingStats()
        self._chunks: list[np.ndarray] = []

    def add(self, chunk: np.ndarray) -> Iterator[PackedSequence]:
        """Add one chunk of exactly `chunk_len` tokens; yield the sequence it completes."""
        if len(chunk) != self.chunk_len:
            raise ValueError(f"chunk has {len(chunk)} tokens, expected {self.chunk_len}")
        self.stats.chunks += 1
        self.stats.tokens_in += len(chunk)
        self._chunks.append(chunk)
        if len(self._chunks) == self.per_sequence:
            seq = PackedSequence(
                input_ids=np.concatenate(self._chunks).astype(TOKEN_DTYPE, copy=False),
                indices=spans_from_lengths([self.chunk_len] * self.per_sequence),
            )
            self._chunks = []
            self.stats.sequences += 1
            self.stats.tokens_out += self.seq_len
            yield seq

    def finish(self) -> Iterator[PackedSequence]:
        """End of input: chunks that do not fill a whole sequence are dropped and counted."""
        self.stats.dropped_tokens += sum(len(c) for c in self._chunks)
        self.stats.dropped_chunks += len(self._chunks)
        self._chunks = []
        return iter(())

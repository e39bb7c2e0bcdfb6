"""Packing token streams into fixed-length sequences with document spans."""

from prolong_data.packing.bfd import BFDPacker, best_fit_decreasing
from prolong_data.packing.binning import LengthBinner
from prolong_data.packing.concat import ChunkPacker, ConcatPacker
from prolong_data.packing.sequence import PackedSequence, PackingStats, spans_from_lengths

__all__ = [
    "BFDPacker",
    "ChunkPacker",
    "ConcatPacker",
    "LengthBinner",
    "PackedSequence",
    "PackingStats",
    "best_fit_decreasing",
    "spans_from_lengths",
]

"""datatrove steps around the packers: `TokenizedDocument`s in, `PackedSequence`s out.

Each step writes what its packer kept, dropped and padded to `report_folder/packing.NNNNN.json`
(one file per rank), which the domain's manifest sums up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from prolong_data.atomic_write import write_text_atomic
from prolong_data.packing.bfd import BFDPacker
from prolong_data.packing.binning import LengthBinner
from prolong_data.packing.concat import ChunkPacker, ConcatPacker
from prolong_data.packing.sequence import PackedSequence, PackingStats


class _PackStep(PipelineStep):
    type = "📦 - PACKER"

    def __init__(self, seq_len: int, report_folder: str | None = None):
        super().__init__()
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        self.seq_len = seq_len
        self.report_folder = report_folder

    def _report(self, stats: PackingStats, rank: int) -> None:
        for key, value in stats.as_dict().items():
            if isinstance(value, int):
                self.stat_update(key, value=value)
        if self.report_folder:
            path = Path(self.report_folder) / f"packing.{rank:05d}.json"
            write_text_atomic(path, json.dumps(stats.as_dict(), sort_keys=True) + "\n")


class PackConcat(_PackStep):
    """Whole documents end to end, cut every `seq_len` tokens (ProLong's short domains)."""

    name = "concat-and-split"

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[PackedSequence]:
        packer = ConcatPacker(self.seq_len)
        for doc in data:
            yield from packer.add(doc.tokens)
        yield from packer.finish()
        self._report(packer.stats, rank)


class PackLengthBinned(_PackStep):
    """Long documents cut into `chunk_len` chunks, laid `seq_len // chunk_len` to a sequence.

    `bins` lists every bin of the recipe (longest used first, see `LengthBinner`); this domain
    keeps the chunks of the `chunk_len` bin, the others belong to other domains. With a single
    bin, a document of at least `chunk_len` tokens gives all its full chunks here.
    """

    name = "length bins"

    def __init__(
        self,
        seq_len: int,
        chunk_len: int,
        bins: Sequence[int] | None = None,
        tail: str = "next_bin",
        report_folder: str | None = None,
    ):
        super().__init__(seq_len, report_folder)
        self.chunk_len = chunk_len
        self.bins = list(bins) if bins else [chunk_len]
        if chunk_len not in self.bins:
            raise ValueError(f"chunk_len {chunk_len} must be one of the bins {self.bins}")
        self.tail = tail
        LengthBinner(self.bins, tail)  # validate now, not in a worker
        ChunkPacker(seq_len, chunk_len)

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[PackedSequence]:
        binner = LengthBinner(self.bins, self.tail)
        packer = ChunkPacker(self.seq_len, self.chunk_len)
        documents = other_bins = 0
        for doc in data:
            documents += 1
            for length, chunk in binner.cut(doc.tokens):
                if length == self.chunk_len:
                    yield from packer.add(chunk)
                else:
                    other_bins += length
        yield from packer.finish()
        stats = packer.stats
        stats.documents = binner.stats[self.chunk_len].documents  # documents with a chunk in this bin
        stats.extra.update(
            input_documents=documents,
            too_short_documents=binner.dropped_documents,
            dropped_tail_tokens=binner.dropped_tokens,
            tokens_in_other_bins=other_bins,
        )
        self._report(stats, rank)


class PackBestFit(_PackStep):
    """Whole units (chats) by best-fit-decreasing, a padding span (mask 0) filling each sequence.

    The padding token is `pad_id`, or the EOS id of `tokenizer`, looked up in the worker (where the
    tokenizer is loaded anyway), so planning a build loads no tokenizer.
    """

    name = "best-fit-decreasing"

    def __init__(
        self,
        seq_len: int,
        pad_id: int | None = None,
        buffer_size: int = 20000,
        too_long: str = "truncate",
        report_folder: str | None = None,
        tokenizer: str | None = None,
    ):
        super().__init__(seq_len, report_folder)
        if pad_id is None and tokenizer is None:
            raise ValueError("PackBestFit needs a pad_id, or the tokenizer whose EOS id pads")
        self.pad_id, self.buffer_size, self.too_long = pad_id, buffer_size, too_long
        self.tokenizer = tokenizer
        BFDPacker(seq_len, pad_id or 0, buffer_size, too_long)  # validate now, not in a worker

    def padding_id(self) -> int:
        """`pad_id`, or the tokenizer's EOS id (looked up when the step runs, not when planned)."""
        if self.pad_id is not None:
            return self.pad_id
        from prolong_data.tokenize import load_tokenizer

        return load_tokenizer(self.tokenizer).eos_id

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[PackedSequence]:
        packer = BFDPacker(self.seq_len, self.padding_id(), self.buffer_size, self.too_long)
        for doc in data:
            yield from packer.add(doc.tokens, doc.mask)
        yield from packer.finish()
        self._report(packer.stats, rank)

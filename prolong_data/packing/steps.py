"""datatrove steps around the packers: `TokenizedDocument`s in, `PackedSequence`s out; and the
pack modes that recipes name, each a config class that builds its step (`packing.registry`).

Each step writes what its packer kept, dropped and padded to `report_folder/packing.NNNNN.json`
(one file per rank), which the domain's manifest sums up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from datatrove.pipeline.base import PipelineStep

from prolong_data.atomic_write import write_text_atomic
from prolong_data.layout import packing_report
from prolong_data.packing.bfd import BFDPacker
from prolong_data.packing.binning import LengthBinner
from prolong_data.packing.concat import ChunkPacker, ConcatPacker
from prolong_data.packing.registry import PackConfig, register_pack_mode
from prolong_data.packing.sequence import PackedSequence, PackingStats
from prolong_data.tokenization import load_tokenizer


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
            path = packing_report(self.report_folder, rank)
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
        return load_tokenizer(self.tokenizer).eos_id

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[PackedSequence]:
        packer = BFDPacker(self.seq_len, self.padding_id(), self.buffer_size, self.too_long)
        for doc in data:
            yield from packer.add(doc.tokens, doc.mask)
        yield from packer.finish()
        self._report(packer.stats, rank)


# ----------------------------------------------------------------------------------------------
# The pack modes of a recipe (`pack: {mode: ...}`), one config class each
# ----------------------------------------------------------------------------------------------


@register_pack_mode
@dataclass(kw_only=True)
class ConcatPack(PackConfig):
    """`concat` (short domains): whole documents end to end, cut every seq_len."""

    mode: str = "concat"

    def step(self, seq_len: int, tokenizer: str, report_folder: str) -> PipelineStep:
        return PackConcat(seq_len, report_folder=report_folder)


@register_pack_mode
@dataclass(kw_only=True)
class LengthBinnedPack(PackConfig):
    """`length_binned` (long domains): documents of at least `chunk_len` tokens cut into chunks."""

    mode: str = "length_binned"
    chunk_len: int | None = None
    """The chunk length, the `-65536` / `-524288` of the folder name (required)."""
    bins: list[int] = field(default_factory=list)
    """Every bin of the recipe when several long domains share a source (stage 2:
    `[65536, 524288]`); a document goes to the longest bin it fills first."""

    def __post_init__(self):
        super().__post_init__()
        if not self.chunk_len:
            raise ValueError("pack mode length_binned needs `chunk_len` (e.g. 65536)")
        if self.chunk_len <= 0:
            raise ValueError(f"pack chunk_len must be positive, got {self.chunk_len}")
        if any(b <= 0 for b in self.bins):
            raise ValueError(f"pack bins must be positive token counts, got {self.bins}")
        if self.bins and self.chunk_len not in self.bins:
            raise ValueError(f"pack chunk_len {self.chunk_len} must be one of the bins {self.bins}")

    @property
    def min_document_tokens(self) -> int:
        """`min_tokens`, by default the smallest bin (a shorter document fills no chunk)."""
        return self.min_tokens if self.min_tokens is not None else min(self.bins or [self.chunk_len])

    def step(self, seq_len: int, tokenizer: str, report_folder: str) -> PipelineStep:
        return PackLengthBinned(seq_len, self.chunk_len, bins=self.bins or None, report_folder=report_folder)


@register_pack_mode
@dataclass(kw_only=True)
class BestFitPack(PackConfig):
    """`best_fit` (SFT): whole conversations by best-fit-decreasing, padded, with loss masks."""

    mode: str = "best_fit"
    too_long: Literal["truncate", "drop"] = "truncate"
    """A conversation longer than seq_len is `truncate`d to it or `drop`ped (counted)."""

    writes_mask: ClassVar[bool] = True

    def step(self, seq_len: int, tokenizer: str, report_folder: str) -> PipelineStep:
        # the padding span is EOS tokens with mask 0; the step looks the id up when it runs
        return PackBestFit(seq_len, tokenizer=tokenizer, too_long=self.too_long, report_folder=report_folder)

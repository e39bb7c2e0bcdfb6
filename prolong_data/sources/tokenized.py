"""Already-tokenized shards as a source: re-pack built MDS data without tokenizing it again.

The input is an MDS folder whose samples hold `input_ids` and `indices` (document spans), and
`mask` when the data is SFT: a domain folder of our builds, or of ProLong's released data
(`prolong-data-64K/<domain>/`, `prolong-data-512K/...`, its UltraChat SFT folders), where
`index.json` merges `procNN-64/` rank folders. The folder's samples are turned back into
documents along their spans, so a recipe can pack them to another sequence length or mixture:

* A span continues the document of the span before it (the last span of the previous sequence,
  or the previous chunk in a sequence of chunks) when the tokens show it: it does not start with
  BOS and the piece before it does not end with EOS. Such pieces are joined into one document
  (`rejoin: false` keeps every piece apart). Where the tokens do not show it, pieces stay apart.
* A span whose mask is all 0 (the padding span that fills a packed SFT sequence) is dropped and
  counted (`padding_spans`, `padding_tokens`).
* Each task reads a contiguous range of the samples (in index order), so the documents keep
  their order; a document cut by a task boundary stays in two pieces.

BOS and EOS ids are the folder's `manifest.json` ones when it has one (our builds), else the
config's (default: Llama-3's 128000 / 128001, ProLong's tokenizer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from datatrove.pipeline.base import PipelineStep

from prolong_data.contract import TOKEN_DTYPE
from prolong_data.layout import index_file
from prolong_data.mds import read_manifest
from prolong_data.mds_format import MDSFormatError, read_index, shard_ranges, shard_samples
from prolong_data.sources.bad_input import BadInputLog
from prolong_data.sources.files import SourcePathError
from prolong_data.sources.registry import ReaderContext, SourceConfig, register_source
from prolong_data.tokenization import TokenizedDocument

LLAMA3_BOS, LLAMA3_EOS = 128000, 128001


class TokenizedShardsReader(PipelineStep):
    """MDS folders of token ids in, `TokenizedDocument`s (BOS/EOS as stored) out; see module doc."""

    name = "tokenized shards"
    type = "📖 - READER"

    def __init__(
        self,
        paths: str | Sequence[str],
        *,
        bos_id: int | None = None,
        eos_id: int | None = None,
        rejoin: bool = True,
        bad_input_file: str | None = None,
    ):
        super().__init__()
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        if not self.paths:
            raise ValueError("TokenizedShardsReader needs at least one MDS folder")
        self.bos_id, self.eos_id, self.rejoin = bos_id, eos_id, rejoin
        self.bad_input_file = bad_input_file
        self.bad = BadInputLog()

    def check(self) -> None:
        """Fail now (not in a worker) when a folder has no MDS index."""
        for path in self.paths:
            if not index_file(path).is_file():
                raise SourcePathError(
                    f"tokenized source {path} has no index.json: give an MDS folder (a domain folder of a "
                    "build, or one of ProLong's released domain folders)"
                )

    def boundary_ids(self, folder: str) -> tuple[int, int]:
        """(BOS, EOS) of `folder`: the manifest's, else the configured ones, else Llama-3's."""
        recorded = read_manifest(folder).get("tokenizer", {})
        bos = recorded.get("bos_id", self.bos_id if self.bos_id is not None else LLAMA3_BOS)
        eos = recorded.get("eos_id", self.eos_id if self.eos_id is not None else LLAMA3_EOS)
        return int(bos), int(eos)

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[TokenizedDocument]:
        if data:
            yield from data
        self.bad = BadInputLog()
        self.counts = dict.fromkeys(("sequences", "documents", "tokens", "rejoined_pieces"), 0)
        self.counts.update(padding_spans=0, padding_tokens=0)
        try:
            for folder, start, stop in self.task_ranges(rank, world_size):
                yield from self.read_folder(folder, start, stop)
        finally:
            for key, value in self.counts.items():
                if value:
                    self.stat_update(key, value=value)
            for reason, count in self.bad.counts.items():
                self.stat_update(f"bad_{reason}", value=count)
            if self.bad_input_file:
                self.bad.write(self.bad_input_file.format(rank=rank))

    def task_ranges(self, rank: int, world_size: int) -> list[tuple[str, int, int]]:
        """(folder, first sample, end sample) of this task: a contiguous share of all samples."""
        sizes = [sum(int(s["samples"]) for s in read_index(p)) for p in self.paths]
        total = sum(sizes)
        begin, end = rank * total // world_size, (rank + 1) * total // world_size
        ranges, offset = [], 0
        for path, size in zip(self.paths, sizes):
            lo, hi = max(begin - offset, 0), min(end - offset, size)
            if lo < hi:
                ranges.append((path, lo, hi))
            offset += size
        return ranges

    def read_folder(self, folder: str, start: int, stop: int) -> Iterator[TokenizedDocument]:
        bos, eos = self.boundary_ids(folder)
        name = Path(folder).name
        pending: list[tuple[np.ndarray, np.ndarray | None]] = []
        pending_id = ""
        for number, row in self.samples(folder, start, stop):
            spans = _spans(row)
            if spans is None:
                self.bad.add("malformed_shard", folder, number, "indices do not tile input_ids")
                continue
            self.counts["sequences"] += 1
            ids, mask = row["input_ids"], row.get("mask")
            for k, (a, b) in enumerate(spans):
                piece = (ids[a:b], None if mask is None else mask[a:b])
                if piece[1] is not None and not piece[1].any():
                    self.counts["padding_spans"] += 1
                    self.counts["padding_tokens"] += b - a
                    continue
                if self.rejoin and pending and piece[0][0] != bos and pending[-1][0][-1] != eos:
                    self.counts["rejoined_pieces"] += 1
                else:
                    yield from self._emit(pending, pending_id, name)
                    pending, pending_id = [], f"{name}/{number}:{k}"
                pending.append(piece)
        yield from self._emit(pending, pending_id, name)

    def samples(self, folder: str, start: int, stop: int) -> Iterator[tuple[int, dict]]:
        """(sample number in the folder, row) of samples `[start, stop)`; a shard that cannot be
        read is counted (`unreadable_file`, with its name) and skipped."""
        first = start
        for info, lo, hi in shard_ranges(folder, start, stop):
            try:
                for offset, row in enumerate(shard_samples(folder, info, lo, hi)):
                    yield first + offset, row
            except (MDSFormatError, OSError) as err:
                self.bad.add(
                    "unreadable_file", str(Path(folder) / info["raw_data"]["basename"]), None, str(err)
                )
            first += hi - lo

    def _emit(self, pieces, doc_id: str, source: str) -> Iterator[TokenizedDocument]:
        if not pieces:
            return
        tokens = np.concatenate([p[0] for p in pieces]).astype(TOKEN_DTYPE, copy=False)
        mask = None if pieces[0][1] is None else np.concatenate([p[1] for p in pieces]).astype(np.uint8)
        self.counts["documents"] += 1
        self.counts["tokens"] += len(tokens)
        yield TokenizedDocument(id=doc_id, tokens=tokens, source=source, mask=mask)


def _spans(row: dict) -> list[tuple[int, int]] | None:
    """The `[start, end)` spans of a sample, or None when they do not tile its `input_ids`."""
    spans = np.asarray(row.get("indices", np.zeros((0, 2))), np.int64)
    n = len(row["input_ids"])
    if spans.ndim != 2 or spans.shape[1] != 2 or len(spans) == 0:
        return None
    starts, ends = spans[:, 0], spans[:, 1]
    if starts[0] != 0 or ends[-1] != n or np.any(ends <= starts) or np.any(starts[1:] != ends[:-1]):
        return None
    return [(int(a), int(b)) for a, b in spans]


@register_source
@dataclass(kw_only=True)
class TokenizedSource(SourceConfig):
    """`tokenized`: MDS folders of token ids (our domain folders, or ProLong's released ones),
    turned back into documents along their spans and packed again without tokenizing."""

    kind: str = "tokenized"
    paths: list[str]
    """MDS folders, each with an `index.json` (a domain folder); read one after the other."""
    rejoin: bool = True
    """Join a span to the one before it when the tokens show one document continues (no BOS at
    its start, no EOS at the end of the piece before); false keeps every span a document."""
    bos_id: int | None = None
    """BOS id when a folder has no manifest.json (default: Llama-3's 128000)."""
    eos_id: int | None = None
    """EOS id when a folder has no manifest.json (default: Llama-3's 128001)."""

    produces: ClassVar[str] = "tokens"
    path_fields: ClassVar[tuple[str, ...]] = ("paths",)

    def __post_init__(self):
        super().__post_init__()
        if not self.paths:
            raise ValueError("a 'tokenized' source needs `paths: [...]` (MDS folders)")

    def reader(self, context: ReaderContext) -> TokenizedShardsReader:
        return TokenizedShardsReader(
            self.paths,
            bos_id=self.bos_id,
            eos_id=self.eos_id,
            rejoin=self.rejoin,
            bad_input_file=context.bad_input_file,
        )

    def tokenize_step(self, tokenizer: str) -> None:
        return None  # the documents are token ids already

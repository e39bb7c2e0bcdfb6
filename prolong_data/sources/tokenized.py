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

Before the build starts (`check`), every folder must hold an MDS index whose shards store
`input_ids` and `indices` as the shard contract's `ndarray:uint32` (and `mask` as `ndarray:uint8`),
and must have been made with the recipe's tokenizer: the vocabulary its manifest records must be
the recipe tokenizer's, and the first sample's ids must lie below the recipe tokenizer's vocabulary
size. While reading, a sequence with an id outside that vocabulary is counted
(`malformed_shard`) and skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from datatrove.pipeline.base import PipelineStep

from prolong_data.contract import MASK_COLUMN, SFT_COLUMNS, TOKEN_DTYPE
from prolong_data.layout import index_file
from prolong_data.mds import read_manifest
from prolong_data.mds_format import MDSFormatError, read_index, shard_ranges, shard_samples
from prolong_data.sources.bad_input import BadInputLog
from prolong_data.sources.files import SourcePathError
from prolong_data.sources.registry import ReaderContext, SourceConfig, register_source
from prolong_data.tokenization import TokenizedDocument, load_tokenizer

LLAMA3_BOS, LLAMA3_EOS = 128000, 128001
TOKEN_COLUMNS = {name: SFT_COLUMNS[name] for name in ("input_ids", "indices", MASK_COLUMN)}
"""The columns a tokenized source reads, with the only encoding the shard contract allows."""


class TokenizedSourceError(ValueError):
    """A tokenized source that cannot be re-packed by this recipe; the message names the folder
    (and shard) and says what to do."""


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
        tokenizer: str | None = None,
    ):
        super().__init__()
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        if not self.paths:
            raise ValueError("TokenizedShardsReader needs at least one MDS folder")
        self.bos_id, self.eos_id, self.rejoin = bos_id, eos_id, rejoin
        self.tokenizer = tokenizer
        """The recipe's tokenizer spec: the shards' ids must be ids of it (None: unchecked)."""
        self._recipe_tokenizer: dict | None = None
        self.bad_input_file = bad_input_file
        self.bad = BadInputLog()

    def check(self) -> None:
        """Fail now (not in a worker, before anything is written) when a folder has no MDS index,
        declares another encoding than the contract's for a token column, or was made with
        another tokenizer than the recipe's."""
        recipe_tokenizer = self.recipe_tokenizer()
        for path in self.paths:
            if not index_file(path).is_file():
                raise SourcePathError(
                    f"tokenized source {path} has no index.json: give an MDS folder (a domain folder of a "
                    "build, or one of ProLong's released domain folders)"
                )
            check_token_encodings(path)
            if recipe_tokenizer is not None:
                check_same_tokenizer(path, recipe_tokenizer)
                check_first_sample_ids(path, recipe_tokenizer)

    def recipe_tokenizer(self) -> dict | None:
        """The recipe tokenizer's manifest entry (`LoadedTokenizer.describe`), or None. Kept once
        known: `check` finds it in the main process, and the workers get it with the step."""
        if self.tokenizer is None:
            return None
        if self._recipe_tokenizer is None:
            self._recipe_tokenizer = load_tokenizer(self.tokenizer).describe()
        return self._recipe_tokenizer

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
        self.vocab_size = (self.recipe_tokenizer() or {}).get("vocab_size")
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
            ids, mask = row["input_ids"], row.get("mask")
            if self.vocab_size is not None and len(ids) and int(ids.max()) >= self.vocab_size:
                detail = f"token id {int(ids.max())} is not an id of the recipe's tokenizer ({self.vocab_size:,} ids)"
                self.bad.add("malformed_shard", folder, number, detail)
                continue
            self.counts["sequences"] += 1
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


def check_token_encodings(folder: str) -> None:
    """`TokenizedSourceError` naming the shard and column when `folder`'s index declares a token
    column in another encoding than the contract's (a `float32` or `uint16` over `uint32` bytes
    would read every id wrong), or a shard without `input_ids` or `indices`."""
    try:
        shards = read_index(folder)
    except MDSFormatError as err:
        raise TokenizedSourceError(f"tokenized source {folder}: {err}") from None
    for info in shards:
        name = (info.get("raw_data") or {}).get("basename", "?")
        encodings = dict(zip(info.get("column_names") or [], info.get("column_encodings") or []))
        for column, wanted in TOKEN_COLUMNS.items():
            got = encodings.get(column)
            if got is None and column == MASK_COLUMN:
                continue
            if got != wanted:
                declared = f"declares column {column!r} as {got!r}" if got else f"has no column {column!r}"
                raise TokenizedSourceError(
                    f"tokenized source {folder}: shard {name} {declared}; "
                    f"the shard contract stores {column} as {wanted!r} (docs/shard-format.md): fix its "
                    "index.json or rebuild the folder"
                )


def check_same_tokenizer(folder: str, recipe: dict) -> None:
    """`TokenizedSourceError` naming both tokenizers when `folder`'s manifest records another
    vocabulary than the recipe tokenizer's (`recipe`: its `describe()`)."""
    recorded = read_manifest(folder).get("tokenizer")
    if not isinstance(recorded, dict):
        return  # no manifest (ProLong's released folders): the ids are checked instead
    size = recorded.get("vocab_size")
    same_hash = recorded.get("vocab_hash") in (None, recipe["vocab_hash"])
    fits = not isinstance(size, int) or size <= recipe["vocab_size"]
    if same_hash and fits:
        return
    theirs = f"{recorded.get('name', '?')}" + (f" ({size:,} ids)" if isinstance(size, int) else "")
    raise TokenizedSourceError(
        f"tokenized source {folder} was made with tokenizer {theirs}, the recipe's is {recipe['name']} "
        f"({recipe['vocab_size']:,} ids); set the recipe's `tokenizer` to the shards' one, or build "
        "this domain from text"
    )


def check_first_sample_ids(folder: str, recipe: dict) -> None:
    """`TokenizedSourceError` when the first sample of `folder` holds an id outside the recipe
    tokenizer's vocabulary (a folder without a manifest made with another tokenizer)."""
    ranges = shard_ranges(folder, 0, 1)
    if not ranges:
        return
    info, lo, hi = ranges[0]
    try:
        row = next(shard_samples(folder, info, lo, hi), None)
    except (MDSFormatError, OSError):
        return  # an unreadable shard is counted while reading
    ids = None if row is None else row.get("input_ids")
    if ids is None or not len(ids) or int(ids.max()) < recipe["vocab_size"]:
        return
    name = info["raw_data"]["basename"]
    raise TokenizedSourceError(
        f"tokenized source {folder}: shard {name} holds token id {int(ids.max()):,}, outside the recipe's "
        f"tokenizer {recipe['name']} ({recipe['vocab_size']:,} ids); set the recipe's `tokenizer` to the "
        "one the shards were made with"
    )


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
            tokenizer=context.tokenizer,
        )

    def tokenize_step(self, tokenizer: str) -> None:
        return None  # the documents are token ids already

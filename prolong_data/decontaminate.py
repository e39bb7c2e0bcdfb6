"""Remove the text of evaluation sets from a domain's training documents (docs/dedup.md).

The evaluation texts (JSONL or parquet rows: the named fields, nested lists and mappings
flattened; `.txt` files: one text each, cleaned as books are) become an index of hashed word
n-grams (`EvalIndex`: sorted unique uint64, and which set each came from), built and checked
before a build writes anything; its hash is part of the build's identity. In the build pass,
`Decontaminate` looks up every n-gram of each document: `excise` cuts each matched stretch plus
`margin_words` either side and joins the rest (a document whose matched share of words exceeds
`max_matched_fraction` is dropped), `drop` drops any document with a match. Each touched document
is a line of `report/decontamination.jsonl`.

Words and n-grams are those of near-dedup (`prolong_data.near_dedup`): lowercased `\\w+` words,
so line breaks, punctuation and case do not hide a copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.disk_base import DiskWriter

from prolong_data.layout import EVAL_INDEX, touched_file
from prolong_data.near_dedup import CACHE_WORDS, WORDS, hash_words, ngram_hashes

TEXT_SUFFIXES = (".txt", ".txt.gz", ".txt.zst")
ROW_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet")


class EvalSetError(ValueError):
    """Evaluation input that cannot be used; the message names the file and what to fix."""


@dataclass(kw_only=True)
class DecontaminateConfig:
    """`decontaminate:` of a domain: remove evaluation text from its documents (docs/dedup.md)."""

    paths: list[str]
    """Evaluation files or folders: `.jsonl[.gz|.zst]` and `.parquet` rows, `.txt[.gz|.zst]` texts
    (e.g. `{corpus}/heldout`, the books `prolong-data eval` uses); `{corpus}` is expanded."""
    fields: list[str] = field(default_factory=lambda: ["context", "question", "answers"])
    """The fields of a row that hold evaluation text (strings, or lists and mappings of them);
    each must be in at least one row of the set."""
    ngram: int = 13
    """Words per n-gram: a document matches where it shares this many consecutive words."""
    action: Literal["excise", "drop"] = "excise"
    """`excise` the matched stretches (and the margins), or `drop` a document with any match."""
    margin_words: int = 12
    """`excise`: words cut on each side of a matched stretch."""
    max_matched_fraction: float = 0.5
    """`excise`: a document whose matched share of words exceeds this is dropped instead."""

    def __post_init__(self):
        if not self.paths:
            raise ValueError("decontaminate needs `paths: [...]` of evaluation files")
        if self.ngram <= 0 or self.margin_words < 0:
            raise ValueError("decontaminate ngram must be positive and margin_words >= 0")
        if not 0 <= self.max_matched_fraction <= 1:
            raise ValueError(
                f"decontaminate max_matched_fraction must be in [0, 1], got {self.max_matched_fraction}"
            )
        if self.action not in ("excise", "drop"):
            raise ValueError(f"decontaminate action must be excise or drop, got {self.action!r}")


# ----------------------------------------------------------------------------------------------
# Words
# ----------------------------------------------------------------------------------------------


def words_of(text: str) -> list[str]:
    """The words of `text` as near-dedup sees them: `\\w+` runs of the lowercased text."""
    return WORDS.findall(text.lower())


def word_spans(text: str) -> np.ndarray:
    """(n, 2) int64: where each word of `words_of(text)` lies in `text` (found in the lowercased
    text, whose offsets are mapped back when lowercasing changed a character's length)."""
    lower = text.lower()
    spans = np.array([m.span() for m in WORDS.finditer(lower)], dtype=np.int64).reshape(-1, 2)
    if len(lower) != len(text):  # e.g. "İ" lowercases to two characters: map offsets back
        lengths = np.fromiter((len(c.lower()) for c in text), dtype=np.int64, count=len(text))
        ends = np.cumsum(lengths)  # ends[i]: lowered offset after original character i
        starts = np.searchsorted(ends, spans[:, 0], side="right")  # the character holding it
        stops = np.searchsorted(ends, spans[:, 1] - 1, side="right") + 1  # after the last one
        spans = np.stack([starts, stops], axis=1)
    return spans


def text_ngrams(words: list[str], n: int, cache: dict) -> np.ndarray:
    """The n-gram hashes of a list of words (empty when it has fewer than n)."""
    if len(cache) > CACHE_WORDS:
        cache.clear()
    if len(words) < n:
        return np.empty(0, dtype=np.uint64)
    return ngram_hashes(hash_words(words, cache), n)


# ----------------------------------------------------------------------------------------------
# The index
# ----------------------------------------------------------------------------------------------


@dataclass
class EvalIndex:
    """The n-grams of the evaluation sets: `hashes` sorted and unique, `sets[i]` the index in
    `names` of the (first) set that holds `hashes[i]`."""

    hashes: np.ndarray
    sets: np.ndarray
    names: list[str]

    def digest(self) -> str:
        """sha256 of the index: the same evaluation text gives the same digest."""
        h = hashlib.sha256(self.hashes.tobytes())
        h.update(self.sets.tobytes())
        h.update(json.dumps(self.names).encode())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, hashes=self.hashes, sets=self.sets, names=np.array(self.names, dtype=str))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> EvalIndex:
        with np.load(path) as data:
            return cls(data["hashes"], data["sets"], [str(n) for n in data["names"]])

    def lookup(self, ngrams: np.ndarray) -> np.ndarray:
        """(len(ngrams),) int: the set of each n-gram, -1 where it is not in the index."""
        if not len(self.hashes) or not len(ngrams):
            return np.full(len(ngrams), -1, dtype=np.int64)
        order = np.argsort(ngrams, kind="stable")  # sorted queries walk the index in order: cache-friendly
        pos = np.empty(len(ngrams), dtype=np.int64)
        pos[order] = np.minimum(np.searchsorted(self.hashes, ngrams[order]), len(self.hashes) - 1)
        found = self.hashes[pos] == ngrams
        return np.where(found, self.sets[pos].astype(np.int64), -1)


def eval_files(paths: Sequence[str]) -> list[Path]:
    """Every evaluation file under `paths`, sorted; `EvalSetError` for a path that is missing."""
    found = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.name.endswith(TEXT_SUFFIXES + ROW_SUFFIXES)
            )
        else:
            raise EvalSetError(
                f"decontaminate: evaluation path {path} does not exist; fix `decontaminate.paths`"
            )
    return found


def flatten(value) -> Iterator[str]:
    """The strings in a field value: a string, or lists and mappings of them, nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from flatten(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from flatten(v)


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line or row number, row) of a JSONL or parquet file; `EvalSetError` where it does not parse."""
    if path.name.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several kinds for a damaged file
            raise EvalSetError(f"decontaminate: {path} is not a readable parquet file ({err})") from None
        yield from enumerate(table.to_pylist(), start=1)
        return
    from prolong_data.sources.files import open_binary

    with open_binary(str(path)) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise EvalSetError(
                    f"decontaminate: {path}:{number} is not JSON ({err}); fix or remove the file"
                ) from None
            if not isinstance(row, dict):
                raise EvalSetError(f"decontaminate: {path}:{number} is not a JSON object")
            yield number, row


def _texts(path: Path, fields: Sequence[str], seen_fields: set[str]) -> Iterator[str]:
    if path.name.endswith(TEXT_SUFFIXES):
        from prolong_data.sources.books import clean_book_text
        from prolong_data.sources.files import open_binary

        try:
            with open_binary(str(path)) as f:
                yield clean_book_text(f.read().decode("utf-8", "replace"))
        except (OSError, EOFError) as err:
            raise EvalSetError(f"decontaminate: {path} cannot be read ({err})") from None
        return
    for _, row in _rows(path):
        for name in fields:
            if name in row:
                seen_fields.add(name)
                yield from flatten(row[name])


def build_index(config: DecontaminateConfig) -> EvalIndex:
    """The n-gram index of the evaluation files of `config`, each file one set named by its file
    name; `EvalSetError` for a file that does not parse, a field that no row has, or a set without
    a single n-gram."""
    files = eval_files(config.paths)
    if not files:
        raise EvalSetError(
            f"decontaminate: no evaluation files ({', '.join(TEXT_SUFFIXES + ROW_SUFFIXES)}) under {config.paths}"
        )
    parts, sets, seen_fields, cache = [], [], set(), {}
    rows_files = [f for f in files if f.name.endswith(ROW_SUFFIXES)]
    for number, path in enumerate(files):
        for text in _texts(path, config.fields, seen_fields):
            ngrams = text_ngrams(words_of(text), config.ngram, cache)
            parts.append(ngrams)
            sets.append(np.full(len(ngrams), number, dtype=np.uint16))
    missing = [f for f in config.fields if f not in seen_fields]
    if rows_files and missing:
        raise EvalSetError(
            f"decontaminate: no row of {[str(f) for f in rows_files]} has the field(s) {missing}; "
            "fix `decontaminate.fields`"
        )
    hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    if not len(hashes):
        raise EvalSetError(
            f"decontaminate: the evaluation set {config.paths} has no text of {config.ngram} words or more"
        )
    set_of = np.concatenate(sets)
    order = np.lexsort((set_of, hashes))  # by hash, then set: the first set of each hash is kept
    hashes, set_of = hashes[order], set_of[order]
    first = np.ones(len(hashes), dtype=bool)
    first[1:] = hashes[1:] != hashes[:-1]
    return EvalIndex(hashes[first], set_of[first], [f.name for f in files])


# ----------------------------------------------------------------------------------------------
# The build step
# ----------------------------------------------------------------------------------------------


@dataclass
class Match:
    """What the index found in one document."""

    matched_ngrams: int
    covered_words: int
    words: int
    eval_set: int
    spans: np.ndarray
    excised: list[tuple[int, int]]
    """Word ranges [a, b) to cut: each matched stretch plus the margins, merged."""


def find_matches(text: str, index: EvalIndex, config: DecontaminateConfig, cache: dict) -> Match | None:
    """The matches of a document (None: it shares no n-gram with the evaluation sets)."""
    words = words_of(text)
    found = index.lookup(text_ngrams(words, config.ngram, cache))
    starts = np.flatnonzero(found >= 0)
    if not len(starts):
        return None
    spans = word_spans(text)  # only for a document with a match
    n, w = config.ngram, len(words)
    covered = np.zeros(w + 1, dtype=np.int64)
    np.add.at(covered, starts, 1)
    np.add.at(covered, starts + n, -1)
    cut = np.zeros(w + 1, dtype=np.int64)
    np.add.at(cut, np.maximum(starts - config.margin_words, 0), 1)
    np.add.at(cut, np.minimum(starts + n + config.margin_words, w), -1)
    return Match(
        matched_ngrams=len(starts),
        covered_words=int(np.count_nonzero(np.cumsum(covered)[:w])),
        words=w,
        eval_set=int(np.bincount(found[starts]).argmax()),
        spans=spans,
        excised=_ranges(np.cumsum(cut)[:w] > 0),
    )


def _ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) ranges of the True runs of a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def excise(text: str, match: Match) -> str:
    """`text` without its excised word ranges: each cut runs from the first word of a range to the
    first word after it (or the end), so the text around it joins as it was."""
    pieces, position = [], 0
    for a, b in match.excised:
        start = int(match.spans[a, 0]) if a else 0
        end = int(match.spans[b, 0]) if b < match.words else len(text)
        pieces.append(text[position:start])
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


class Decontaminate(PipelineStep):
    """Pass `build`: excise or drop evaluation text in each document (see module doc); each
    touched document is a line of `touched-RRRRR.jsonl` in `folder`."""

    name = "decontaminate"
    type = "🧹 - FILTER"

    def __init__(
        self,
        folder: str,
        config: DecontaminateConfig,
        domain: str,
        exclusion_writer: DiskWriter | None = None,
    ):
        super().__init__()
        self.folder, self.config, self.domain, self.exclusion_writer = (
            str(folder),
            config,
            domain,
            exclusion_writer,
        )

    def output_files(self, rank: int) -> list[Path]:
        return [touched_file(self.folder, rank)]

    def run(self, data, rank: int = 0, world_size: int = 1):
        index = EvalIndex.load(index_file(self.folder))
        path = touched_file(self.folder, rank)
        tmp = path.with_name(path.name + ".tmp")
        cache: dict[str, int] = {}
        counts = {"touched": 0, "excised": 0, "dropped": 0, "characters_removed": 0}
        writer = self.exclusion_writer
        with open(tmp, "w", encoding="utf-8") as report, writer if writer is not None else nullcontext():
            for doc in data:
                match = find_matches(doc.text, index, self.config, cache)
                if match is None:
                    yield doc
                    continue
                drop = (
                    self.config.action == "drop"
                    or match.covered_words > self.config.max_matched_fraction * match.words
                )
                new_text = "" if drop else excise(doc.text, match)
                removed = len(doc.text) - len(new_text)
                action = "dropped" if drop else "excised"
                line = {"domain": self.domain, "id": str(doc.id), "eval_set": index.names[match.eval_set]}
                line |= {
                    "matched_ngrams": match.matched_ngrams,
                    "characters_removed": removed,
                    "action": action,
                }
                report.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
                counts["touched"] += 1
                counts[action] += 1
                counts["characters_removed"] += removed
                if drop:
                    if writer is not None:
                        doc.metadata["filter_reason"] = "evaluation_text"
                        writer.write(doc, rank)
                    continue
                doc.text = new_text
                yield doc
        tmp.replace(path)
        for key, value in counts.items():
            if value:
                self.stat_update(key, value=value)


def index_file(folder: str | Path) -> Path:
    """The evaluation index of a domain (written before the build starts)."""
    return Path(folder) / EVAL_INDEX


def read_touched(folder: str | Path, tasks: int) -> list[dict]:
    """Every line the build tasks of a domain wrote, sorted by id."""
    lines = []
    for rank in range(tasks):
        path = touched_file(folder, rank)
        if path.is_file():
            lines += [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
    return sorted(lines, key=lambda r: r["id"])

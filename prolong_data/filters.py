"""Document filters of a domain pipeline (datatrove pipeline steps, plus one on token counts).

Every drop is counted in the step's stats under `dropped_<reason>`, so a build's report says
how much each filter removed. The filters are datatrove `BaseFilter`s (an `exclusion_writer`
keeps what they remove) that count in plain integers and report to datatrove's stats once per
task (`CountingFilter`): `BaseFilter.run` updates several stats objects per document, which on
short documents costs more than the filters themselves.

* `ValidUtf8Filter`: text that cannot be written as UTF-8 (lone surrogates from `\\ud800` JSON
  escapes) is repaired (U+FFFD) or dropped.
* `NonEmptyFilter`: empty or whitespace-only documents.
* `ExactDedupFilter`: exact duplicates, first one kept. Domain-wide after a partition by text
  hash (`sources.partitions`), since duplicates then meet in one task.
* `HashSplitFilter`: a deterministic share of documents by id, to split one source into two
  domains.
* `MinTokensFilter`: tokenized documents shorter than a long domain's minimum.
* `quality_filters`: datatrove's quality filters by name, for short domains.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from prolong_data.sources.partitions import key_hash
from prolong_data.sources.registry import check_utf8_policy


def report_counts(step: PipelineStep, counts: Mapping[str, int]) -> None:
    """Adds a task's non-zero counts to `step`'s datatrove stats, one update per key."""
    for key, value in counts.items():
        if value:
            step.stat_update(key, value=value)


class CountingFilter(BaseFilter):
    """datatrove's `BaseFilter`, counting in plain integers: `total`, `forwarded`, `dropped`,
    `dropped_<reason>` and the kept characters (`doc_len`) are reported once, when the task ends.

    As in datatrove, an `exclusion_writer` (e.g. a `JsonlWriter`) receives every removed document,
    with the reason in `metadata["filter_reason"]`, so what a filter removed can be audited.
    """

    def __init__(self, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer=exclusion_writer)

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        counts: Counter[str] = Counter()
        kept_chars = 0
        writer = self.exclusion_writer
        try:
            with writer if writer is not None else contextlib.nullcontext():
                for doc in data:
                    result = self.filter(doc)
                    keep, reason = (result, None) if isinstance(result, bool) else result
                    if keep:
                        counts["forwarded"] += 1
                        kept_chars += len(getattr(doc, "text", "") or "")
                        yield doc
                        continue
                    counts["dropped"] += 1
                    if reason:
                        counts[f"dropped_{reason}"] += 1
                    if writer is not None:
                        if reason:
                            doc.metadata["filter_reason"] = reason
                        writer.write(doc, rank)
        finally:
            counts["total"] = counts["forwarded"] + counts["dropped"]
            counts["doc_len"] = kept_chars
            report_counts(self, counts)


class ValidUtf8Filter(CountingFilter):
    """Keeps text that is valid UTF-8; `mode="repair"` turns unencodable code points into U+FFFD."""

    name = "valid UTF-8"

    def __init__(self, mode: str = "repair", exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer)
        self.mode = check_utf8_policy(mode)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        try:
            doc.text.encode("utf-8")
            return True
        except UnicodeEncodeError:
            if self.mode == "drop":
                return False, "invalid_utf8"
        # Valid surrogate pairs become their character, lone ones U+FFFD.
        doc.text = doc.text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        self.stat_update("repaired_invalid_utf8")
        return True


class NonEmptyFilter(CountingFilter):
    """Drops documents that are empty or only whitespace."""

    name = "non-empty"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return (True, None) if doc.text and not doc.text.isspace() else (False, "empty")


class ExactDedupFilter(CountingFilter):
    """Drops a document whose exact text this task has already seen (first one kept)."""

    name = "exact dedup"

    def __init__(self, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer)
        self._seen: set[bytes] = set()

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._seen = set()
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        digest = hashlib.blake2b(doc.text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if digest in self._seen:
            return False, "duplicate"
        self._seen.add(digest)
        return True


class HashSplitFilter(CountingFilter):
    """Keeps the documents whose id hashes into `keep` of `buckets` buckets (stable across runs)."""

    name = "hash split"

    def __init__(self, buckets: int, keep: Sequence[int]):
        super().__init__()
        if buckets <= 0 or not keep or any(not 0 <= k < buckets for k in keep):
            raise ValueError(f"hash split: keep {list(keep)} must be bucket numbers in [0, {buckets})")
        self.buckets, self.keep = buckets, frozenset(keep)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return (True, None) if key_hash(str(doc.id)) % self.buckets in self.keep else (False, "other_split")


class MinTokensFilter(PipelineStep):
    """Drops tokenized documents with fewer than `min_tokens` tokens (BOS/EOS included)."""

    name = "minimum tokens"
    type = "🔻 - FILTER"

    def __init__(self, min_tokens: int):
        super().__init__()
        if min_tokens < 0:
            raise ValueError(f"min_tokens must be >= 0, got {min_tokens}")
        self.min_tokens = min_tokens

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator:
        forwarded = dropped = dropped_tokens = 0
        try:
            for doc in data:
                if len(doc.tokens) < self.min_tokens:
                    dropped += 1
                    dropped_tokens += len(doc.tokens)
                    continue
                forwarded += 1
                yield doc
        finally:
            counts = {
                "forwarded": forwarded,
                "dropped_too_short": dropped,
                "dropped_too_short_tokens": dropped_tokens,
            }
            report_counts(self, counts)


QUALITY_FILTERS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


def quality_filters(
    names: Sequence[str], exclusion_writer: Callable[[str], DiskWriter | None] | None = None
) -> list[PipelineStep]:
    """datatrove's quality filters, by name (default settings), for short domains.

    `exclusion_writer(name)`, when given, is the writer that receives what filter `name` removes.
    """
    unknown = [n for n in names if n not in QUALITY_FILTERS]
    if unknown:
        raise ValueError(f"unknown quality filters {unknown}; choose from {QUALITY_FILTERS}")
    if names and importlib.util.find_spec("spacy") is None:
        raise ValueError(
            f"quality filters {list(names)} split words with spaCy: pip install 'prolong-data[quality]'"
        )
    from datatrove.pipeline import filters

    makers = {
        "gopher_quality": lambda w: filters.GopherQualityFilter(exclusion_writer=w),
        "gopher_repetition": lambda w: filters.GopherRepetitionFilter(exclusion_writer=w),
        "c4": lambda w: filters.C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=w),
        "fineweb": lambda w: filters.FineWebQualityFilter(exclusion_writer=w),
    }
    return [makers[name](exclusion_writer(name) if exclusion_writer else None) for name in names]

"""The reader protocol every source follows: list inputs, share them across ranks, read one.

A source is a datatrove `PipelineStep` whose one hook is `read_unit`: turn one input unit (a
file, or a repository folder) into `Document`s, counting any bad input in `self.bad` instead of
failing. Units are listed sorted and shared `units[rank::world_size]`, so the same command
always gives every rank the same work. Each document's `metadata["source"]` says where it came
from (file and line, or repository); the tokenizer carries it into the shards' provenance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from prolong_data.sources.bad_input import BadInputLog
from prolong_data.sources.files import decode_utf8, list_input_files, printable, unit_problem
from prolong_data.sources.registry import check_utf8_policy


class SourceReader(PipelineStep):
    """Base of all readers: sharding, bad-input accounting, and the `read_unit` hook.

    Before a unit is read it is checked (`unit_problem`): a local file found under a source
    folder must lie inside it once symlinks are resolved, be a regular file, and hold at most
    `max_file_bytes`; a unit that fails is counted and skipped. Ids and provenance of the
    documents are made writable as UTF-8 (`printable`, counted as `invalid_name`).
    """

    type = "📖 - READER"
    suffixes: tuple[str, ...] = ()
    """File name endings this reader takes when given a folder."""
    default_max_file_bytes: int | None = None
    """The bound on one input file's size when the recipe gives none (None: no bound on the file,
    the reader bounds what it holds in memory, e.g. one row)."""

    def __init__(
        self,
        paths: str | Sequence[str],
        *,
        glob: str | None = None,
        bad_input_file: str | None = None,
        utf8: str = "repair",
        limit: int = -1,
        max_file_bytes: int | None = None,
    ):
        super().__init__()
        self.utf8 = check_utf8_policy(utf8)
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        if not self.paths:
            raise ValueError(f"{type(self).__name__} needs at least one path")
        if max_file_bytes is not None and max_file_bytes <= 0:
            raise ValueError(f"max_file_bytes must be positive, got {max_file_bytes}")
        self.glob = glob
        self.bad_input_file = bad_input_file
        self.limit = limit
        self.max_file_bytes = max_file_bytes if max_file_bytes is not None else self.default_max_file_bytes
        self.bad = BadInputLog()

    def list_units(self) -> list[str]:
        """Every input unit, sorted; raises `SourcePathError` for a path that does not exist."""
        return list_input_files(self.paths, self.suffixes, self.glob)

    def check(self) -> None:
        """Fail now (not in a worker) when an input path is missing."""
        self.list_units()

    def decode(self, raw: bytes, unit: str, line: int | None = None) -> str | None:
        """`raw` as text under the reader's UTF-8 policy: invalid bytes are counted and repaired
        (U+FFFD), or the text is dropped (None)."""
        text, invalid = decode_utf8(raw, repair=self.utf8 == "repair")
        if invalid:
            self.bad.add("invalid_utf8_repaired" if text is not None else "invalid_utf8_dropped", unit, line)
        return text

    def read_unit(self, unit: str) -> Iterator[Document]:
        """The documents of one input unit. The one hook to override."""
        raise NotImplementedError

    def unit_problem(self, unit: str) -> tuple[str, str] | None:
        """(reason, detail) when `unit` must not be read (see the class docstring), else None."""
        return unit_problem(unit, self.paths, self.max_file_bytes)

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        if data:
            yield from data
        self.bad = BadInputLog()
        units = self.list_units()[rank::world_size]
        if not units:
            logger.warning(f"{self.name}: no input for rank {rank} of {world_size}")
        emitted = chars = 0
        try:
            for unit in units:
                self.stat_update("input_units")
                problem = self.unit_problem(unit)
                if problem is not None:
                    self.bad.add(problem[0], unit, None, problem[1])
                    continue
                for doc in self.read_unit(unit):
                    if self.limit >= 0 and emitted >= self.limit:
                        return
                    self._printable_names(doc)
                    emitted += 1
                    chars += len(doc.text)
                    yield doc
        finally:  # counted in plain integers, reported once (datatrove's stats are slow per document)
            if emitted:
                self.stat_update("documents", value=emitted)
                self.stat_update("doc_len", value=chars)
            for reason, count in self.bad.counts.items():
                self.stat_update(f"bad_{reason}", value=count)
            if self.bad_input_file:
                self.bad.write(self.bad_input_file.format(rank=rank))

    def _printable_names(self, doc: Document) -> None:
        """Id and string metadata that UTF-8 cannot write (lone surrogates) get backslash escapes."""
        fixed = printable(doc.id)
        changed = fixed != doc.id
        doc.id = fixed
        for key, value in doc.metadata.items():
            if isinstance(value, str):
                fixed = printable(value)
                changed |= fixed != value
                doc.metadata[key] = fixed
        if changed:
            self.bad.add("invalid_name", doc.metadata.get("source", "?"), None, f"id {doc.id}")


def document(text: str, doc_id: str, source: str, **metadata) -> Document:
    """A datatrove `Document` with its provenance in `metadata["source"]`."""
    return Document(text=text, id=doc_id, metadata={"source": source, **metadata})


def relative_source(path: str, line: int | None = None) -> str:
    """`file.jsonl:12` style provenance (file name only: folders differ between machines)."""
    name = _file_name(path)
    return f"{name}:{line}" if line is not None else name


@lru_cache(maxsize=1024)
def _file_name(path: str) -> str:
    return Path(path).name

"""A two-pass shuffle of documents by key, so one task sees every document of its keys.

Pass one (`HashPartitionWriter`, any number of tasks): each task writes every document it
reads into partition `hash(key) % partitions`, as `folder/part-PPPPP/from-RRRRR.jsonl.zst`.
Pass two (`PartitionReader`, `partitions` tasks): task `p` reads `part-p/from-*` in rank order.

Keys: `text` (exact duplicates meet in one task, so a per-task set removes them domain-wide)
or `repo` (all files of a repository meet in one task, for `ConcatRepos`). A rerun of a pass-one
task truncates all its partition files first, so a killed task leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import orjson
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

PARTITION_KEYS = ("text", "repo")


class PartitionError(RuntimeError):
    """A partition file that is missing or truncated; the message says what to run."""


def key_hash(value: str) -> int:
    """A stable 64-bit hash (Python's `hash` differs between processes)."""
    return int.from_bytes(
        hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little"
    )


def partition_file(folder: str | Path, partition: int, rank: int) -> Path:
    return Path(folder) / f"part-{partition:05d}" / f"from-{rank:05d}.jsonl.zst"


class HashPartitionWriter(PipelineStep):
    """Writes each document into the partition of its key (see module docstring)."""

    name = "hash partition (write)"
    type = "🔀 - SHUFFLE"

    def __init__(self, folder: str, partitions: int, key: str = "text", level: int = 3):
        super().__init__()
        if partitions <= 0:
            raise ValueError(f"partitions must be positive, got {partitions}")
        if key not in PARTITION_KEYS:
            raise ValueError(f"key must be one of {PARTITION_KEYS}, got {key!r}")
        self.folder, self.partitions, self.key, self.level = str(folder), partitions, key, level

    def key_of(self, doc: Document) -> str:
        return doc.text if self.key == "text" else doc.metadata["repo"]

    def run(self, data, rank: int = 0, world_size: int = 1):
        import zstandard

        files, writers = [], []
        try:
            for p in range(self.partitions):
                path = partition_file(self.folder, p, rank)
                path.parent.mkdir(parents=True, exist_ok=True)
                f = open(path, "wb")  # noqa: SIM115 - closed in finally
                files.append(f)
                writers.append(zstandard.ZstdCompressor(level=self.level).stream_writer(f, closefd=False))
            for doc in data or ():
                p = key_hash(self.key_of(doc)) % self.partitions
                row = {"id": doc.id, "text": doc.text, "metadata": doc.metadata}
                writers[p].write(_dumps(row) + b"\n")
                self.stat_update("documents")
        finally:
            for writer, f in zip(writers, files):
                writer.close()
                f.close()
        self._bytes = [partition_file(self.folder, p, rank).stat().st_size for p in range(self.partitions)]
        return iter(())

    def report_extra(self) -> dict:
        """The size of each partition file this task wrote (a rerun checks them before skipping it)."""
        return {"partition_bytes": getattr(self, "_bytes", [])}


class PartitionReader(PipelineStep):
    """Reads partition `rank` written by every pass-one task, in pass-one rank order."""

    name = "hash partition (read)"
    type = "📖 - READER"

    def __init__(self, folder: str, sources: int | None = None):
        super().__init__()
        self.folder = str(folder)
        self.sources = sources
        """How many pass-one tasks wrote the partitions: each one's file must be there (None: read
        the files that are there)."""

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        """Every document of partition `rank`; a missing (with `sources`) or truncated partition
        file raises `PartitionError`: the task fails instead of losing documents."""
        import zstandard

        part = partition_file(self.folder, rank, 0).parent
        if self.sources is None:
            paths = sorted(part.glob("from-*.jsonl.zst"))
        else:
            paths = [partition_file(self.folder, rank, source) for source in range(self.sources)]
        for path in paths:
            if not path.is_file():
                raise PartitionError(f"{path} is missing: run the same command again (its read task reruns)")
            with open(path, "rb") as f:
                stream = zstandard.ZstdDecompressor().decompressobj()
                buffer = b""
                while chunk := f.read(1 << 20):
                    buffer += stream.decompress(chunk)
                    *lines, buffer = buffer.split(b"\n")
                    yield from self._documents(lines)
                if not stream.eof:
                    raise PartitionError(
                        f"{path} is truncated: run the same command again (its read task reruns)"
                    )
                if buffer:
                    yield from self._documents([buffer])

    def _documents(self, lines: list[bytes]) -> Iterator[Document]:
        for line in lines:
            if line:
                row = _loads(line)
                self.stat_update("documents")
                yield Document(text=row["text"], id=row["id"], metadata=row["metadata"])


def _dumps(row: dict) -> bytes:
    """One partition line; the stdlib's ASCII-escaped JSON when orjson refuses a string (a lone
    surrogate that reached an id or metadata field), so no document stops the build."""
    try:
        return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(row, sort_keys=True, separators=(",", ":")).encode("ascii")


def _loads(line: bytes) -> dict:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # `_dumps`' stdlib escapes of lone surrogates
        return json.loads(line)

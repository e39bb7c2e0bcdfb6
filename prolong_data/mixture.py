"""The mixture: which domain folders a training stage reads, and in what proportions.

`mixture.json` sits at the root of a built recipe::

    {"seq_len": 65536,
     "streams": [{"domain": "book-65536", "path": "book-65536", "proportion": 0.3}, ...]}

Paths are relative to the folder holding `mixture.json`. Mixing happens when the trainer reads
(each stream becomes a `streaming.Stream` with its proportion), so a new blend is a new
`mixture.json`, never a re-shard.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prolong_data.atomic_write import write_json_atomic
from prolong_data.layout import MIXTURE

PROPORTION_TOLERANCE = 1e-6


@dataclass(kw_only=True)
class MixtureStream:
    """One domain folder and its share of the training sequences."""

    domain: str
    """Domain name, e.g. `book-65536` (also the `domain` column of its samples)."""
    path: str
    """Folder of the domain's MDS shards, relative to mixture.json (or absolute)."""
    proportion: float
    """Share of training sequences drawn from this domain; all streams sum to 1."""

    def __post_init__(self):
        if not 0 <= self.proportion <= 1:
            raise ValueError(f"stream {self.domain}: proportion {self.proportion} must be in [0, 1]")


@dataclass(kw_only=True)
class Mixture:
    """A list of streams that sum to 1, all packed to the same `seq_len`."""

    seq_len: int
    """Tokens per training sequence in every stream."""
    streams: list[MixtureStream]
    """The domains and their proportions."""
    extra: dict = field(default_factory=dict)
    """Anything else recorded beside the streams (recipe name, tokenizer, budget)."""

    def __post_init__(self):
        if self.seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {self.seq_len}")
        if not self.streams:
            raise ValueError("a mixture needs at least one stream")
        total = sum(s.proportion for s in self.streams)
        if abs(total - 1) > PROPORTION_TOLERANCE:
            shares = ", ".join(f"{s.domain}={s.proportion}" for s in self.streams)
            raise ValueError(
                f"stream proportions sum to {total:.6f}, not 1 ({shares}); fix them or normalize"
            )
        names = [s.domain for s in self.streams]
        if len(set(names)) != len(names):
            raise ValueError(f"a domain appears twice in the mixture: {names}")

    def resolved_paths(self, root: str | Path) -> dict[str, Path]:
        """domain -> absolute folder, for a mixture.json that lives in `root`."""
        return {s.domain: (Path(root) / s.path).resolve() for s in self.streams}

    def to_dict(self) -> dict:
        return {"seq_len": self.seq_len, "streams": [asdict(s) for s in self.streams], **self.extra}


def write_mixture(mixture: Mixture, root: str | Path) -> Path:
    """Write `root/mixture.json`."""
    path = Path(root) / MIXTURE
    write_json_atomic(path, mixture.to_dict(), indent=2)
    return path


def read_mixture(path: str | Path) -> tuple[Mixture, Path]:
    """(mixture, the folder its relative paths start from) from a mixture.json or its folder."""
    path = Path(path)
    if path.is_dir():
        path = path / MIXTURE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the shards first (e.g. `make shards`)")
    data = json.loads(path.read_text())
    return mixture_from_data(data, path), path.parent


STREAM_KEYS = ("domain", "path", "proportion")


def mixture_from_data(data, path: str | Path) -> Mixture:
    """The `Mixture` of the parsed JSON of `path`; a `ValueError` naming what is wrong for any
    other shape (a list, null, a string, a stream without a `path`, a proportion that is text)."""
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} holds {_json_kind(data)}, not a mixture object "
            '({"seq_len": ..., "streams": [...]}); rebuild it or fix the file'
        )
    streams = data.get("streams")
    if not isinstance(streams, list) or not all(isinstance(s, dict) for s in streams):
        raise ValueError(f"{path}: `streams` must be a list of objects, got {_json_kind(streams)}")
    for number, stream in enumerate(streams):
        missing = [k for k in STREAM_KEYS if k not in stream]
        if missing:
            raise ValueError(f"{path}: stream {number} lacks {missing}")
        if not isinstance(stream["domain"], str) or not isinstance(stream["path"], str):
            raise ValueError(f"{path}: stream {number}: `domain` and `path` must be strings")
        if not _is_number(stream["proportion"]):
            raise ValueError(
                f"{path}: stream {number}: proportion {_json_kind(stream['proportion'])} is no number"
            )
    seq_len = data.get("seq_len")
    if not _is_whole_number(seq_len):
        raise ValueError(f"{path}: seq_len must be an integer, got {_json_kind(data.get('seq_len'))}")
    extra = {k: v for k, v in data.items() if k not in ("seq_len", "streams")}
    return Mixture(
        seq_len=int(seq_len),
        streams=[MixtureStream(**{k: s[k] for k in STREAM_KEYS}) for s in streams],
        extra=extra,
    )


def _is_whole_number(value) -> bool:
    return _is_number(value) and (isinstance(value, int) or value.is_integer())


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_kind(value) -> str:
    """How a message names a JSON value's shape: `a list`, `null`, `the string 'x'`, `the number 3`."""
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return f"a{'n object' if isinstance(value, dict) else ' list'} of {len(value)} item(s)"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"the {'boolean' if isinstance(value, bool) else 'number'} {value!r}"


def to_streams(mixture: Mixture, root: str | Path) -> list:
    """One `streaming.Stream` per stream of `mixture` (a mixture.json living in `root`), with its
    proportion: a `StreamingDataset` over them samples each domain at its share (repeating or
    subsampling as needed). Imports `streaming` (and torch) only when called."""
    from streaming import Stream

    paths = mixture.resolved_paths(root)
    return [Stream(local=str(paths[s.domain]), proportion=s.proportion) for s in mixture.streams]

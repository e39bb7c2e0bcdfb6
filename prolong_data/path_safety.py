"""Output folders never overlap inputs: the check every command that writes or deletes runs first.

A command that writes into `out` (a build's `--out`, `eval --out`, the trainer's `out`) and reads
`inputs` (source files and folders, a tokenizer file, shards to re-pack, a model) refuses to start
when `out` is one of the inputs, lies inside one, or holds one: a `--fresh` or a rerun would
otherwise delete or overwrite the user's files, and a build would write `.build/` and domain
folders into the input tree. Paths are compared after resolving symbolic links, so a link to the
corpus is caught too. Remote inputs (`s3://...`, `hf://...`) cannot overlap a local folder.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path


class UnsafeOutputError(ValueError):
    """`out` overlaps an input; the message names both and says what to do."""


def real_path(path: str | Path) -> Path:
    """`path` made absolute with every symbolic link resolved (missing parts kept as written)."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def local_root(text: str) -> Path | None:
    """The local file or folder that an input path names: the part before any glob character
    (`books/*.txt` reads `books/`); None for a remote URL."""
    if "://" in text:
        return None
    if glob.has_magic(text):
        parts = Path(text).parts
        text = str(Path(*parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))] or ["."]))
    return real_path(text)


def overlap(out: Path, source: Path) -> str | None:
    """How `out` and `source` (both resolved) overlap, or None when they are apart."""
    if out == source:
        return "is"
    if out.is_relative_to(source):
        return "is inside"
    if source.is_relative_to(out):
        return "holds"
    return None


def check_output_apart(out: str | Path, inputs: Iterable[str | Path], flag: str = "--out") -> None:
    """Raise `UnsafeOutputError` when the output folder `out` is, lies inside, or holds an input."""
    resolved_out = real_path(out)
    for text in inputs:
        source = local_root(str(text))
        if source is None:
            continue
        how = overlap(resolved_out, source)
        if how is not None:
            raise UnsafeOutputError(
                f"{flag} {out} {how} the input {text}: writing there could overwrite or delete it; "
                f"choose an output folder apart from every input (e.g. a new folder beside them)"
            )

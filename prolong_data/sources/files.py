"""Finding and opening input files, local or remote (any fsspec URL), compressed or not.

Listing is sorted, so every rank of every run sees the same files in the same order, and a
rank's share is `files[rank::world_size]` (datatrove's convention).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence

from fsspec.core import url_to_fs
from fsspec.utils import infer_compression


class SourcePathError(FileNotFoundError):
    """A source path that does not exist or holds no input files; the message says what to fix."""


def _matches(name: str, suffixes: Sequence[str], glob: str | None) -> bool:
    if glob is not None:
        return fnmatch.fnmatch(name, glob) or fnmatch.fnmatch(name.rsplit("/", 1)[-1], glob)
    return not suffixes or name.endswith(tuple(suffixes))


def list_input_files(
    paths: Sequence[str], suffixes: Sequence[str] = (), glob: str | None = None
) -> list[str]:
    """Every input file under `paths` (files or folders, searched recursively), sorted per path.

    A path that does not exist raises `SourcePathError` at once; a folder without a matching
    file too, naming the suffixes it looked for.
    """
    found: list[str] = []
    for path in paths:
        fs, root = url_to_fs(path)
        protocol = path.split("://", 1)[0] + "://" if "://" in path else ""
        if fs.isfile(root):
            found.append(path)
            continue
        if not fs.isdir(root):
            raise SourcePathError(f"source path {path} does not exist: fix the recipe, or pass --corpus PATH")
        names = sorted(p for p in fs.find(root) if _matches(p, suffixes, glob) and not _hidden(p, root))
        if not names:
            wanted = glob or ", ".join(suffixes) or "any file"
            raise SourcePathError(
                f"source folder {path} holds no input files ({wanted}): is it the right folder?"
            )
        found.extend(protocol + n if protocol and not n.startswith(protocol) else n for n in names)
    return found


def _hidden(path: str, root: str) -> bool:
    rel = path[len(root) :].lstrip("/")
    return any(part.startswith(".") for part in rel.split("/"))


def open_binary(path: str):
    """A binary file object for `path`, decompressing `.gz`, `.zst`, `.bz2`, `.xz` on the fly."""
    fs, root = url_to_fs(path)
    return fs.open(root, "rb", compression=infer_compression(path))


def iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes without the newline) of a (compressed) text file."""
    with open_binary(path) as f:
        for number, raw in enumerate(f, start=1):
            yield number, raw.rstrip(b"\r\n")


def decode_utf8(raw: bytes, repair: bool) -> tuple[str | None, bool]:
    """(text, was_invalid): strict UTF-8 (a leading BOM removed); invalid bytes become U+FFFD
    when `repair`, else the text is None."""
    try:
        return raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        if not repair:
            return None, True
        return raw.decode("utf-8-sig", errors="replace"), True

"""Finding and opening input files, local or remote (any fsspec URL), compressed or not.

Listing is sorted, so every rank of every run sees the same files in the same order, and a
rank's share is `files[rank::world_size]` (datatrove's convention).

Reading is guarded: a local input must be a regular file (a named pipe would block forever, a
device like `/dev/zero` never ends), found under a folder it must lie inside that folder once
symlinks are resolved (a link to a private file elsewhere is never read), every read is bounded
(`read_bounded`, `iter_lines`' line limit), and a compressed stream that ends early
(`TRUNCATED_ERRORS`) is reported with what was read before it.
"""

from __future__ import annotations

import fnmatch
import lzma
import os
import stat
import zlib
from collections.abc import Iterator, Sequence

from fsspec.core import url_to_fs
from fsspec.utils import infer_compression

MAX_LINE_BYTES = 256 << 20
"""A JSON line longer than this is skipped (counted): one row is read into memory at a time."""
CHUNK = 1 << 16
"""Bytes per read: a stream that fails loses at most its last chunk."""


class SourcePathError(FileNotFoundError):
    """A source path that does not exist or holds no input files; the message says what to fix."""


class SpecialFileError(OSError):
    """An input that is not a regular file (a pipe, socket or device)."""


class OversizedFileError(OSError):
    """An input larger than the reader's bound."""


def _truncated_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [EOFError, zlib.error, lzma.LZMAError]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a core dependency
        pass
    return tuple(errors)


TRUNCATED_ERRORS = _truncated_errors()
"""What a decompressor raises when its stream ends early or is damaged (gzip's BadGzipFile is an
OSError)."""


def printable(text: str) -> str:
    """`text` made writable as UTF-8: lone surrogates (from a `\\ud800` JSON escape, or a file
    name's undecodable byte) become backslash escapes. Ids, names and provenance only; document
    text is repaired by the UTF-8 filter."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def repair_surrogates(text: str) -> str:
    """`text` with surrogate pairs joined into their character and lone surrogates as U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when `path`, symlinks resolved, lies inside the folder `root` (resolved too)."""
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def unit_problem(path: str, roots: Sequence[str], max_bytes: int | None = None) -> tuple[str, str] | None:
    """(bad-input reason, detail) when local input file `path` must not be read, else None: it
    was found under one of the folders `roots` but resolves outside it (`outside_root`), it is
    no regular file (`special_file`), it is larger than `max_bytes` on disk (`oversized_file`),
    or it cannot be stat'ed (`unreadable_file`). Remote paths are not checked here."""
    if not is_local(path):
        return None
    local = _local(path)
    for root in roots:
        if not is_local(root):
            continue
        base = _local(root).rstrip("/")
        if local.startswith(base + "/") and os.path.isdir(base) and not inside(local, base):
            return "outside_root", f"links to {os.path.realpath(local)}, outside {base}"
    try:
        info = os.stat(local)
    except OSError as err:
        return "unreadable_file", str(err)
    if not stat.S_ISREG(info.st_mode):
        return "special_file", "not a regular file (a pipe, socket or device)"
    if max_bytes is not None and info.st_size > max_bytes:
        return "oversized_file", f"{info.st_size:,} bytes, the limit is {max_bytes:,}"
    return None


def read_regular_file(path: str | os.PathLike, max_bytes: int | None) -> bytes:
    """The bytes of a local regular file, opened without blocking (a FIFO cannot hang the
    read) and refused unless regular (`SpecialFileError`) and at most `max_bytes` long
    (`OversizedFileError`)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpecialFileError(f"{path} is not a regular file (a pipe, socket or device)")
        if max_bytes is not None and info.st_size > max_bytes:
            raise OversizedFileError(f"{path} has {info.st_size:,} bytes, the limit is {max_bytes:,}")
        return read_bounded(f, max_bytes, str(path))


def read_bounded(f, max_bytes: int | None, name: str = "input", into: list | None = None) -> bytes:
    """All of binary stream `f`, but at most `max_bytes` (`OversizedFileError` beyond it). The
    chunks read so far are collected in `into` when given (what a stream gave before it failed)."""
    chunks = into if into is not None else []
    size = 0
    while chunk := f.read(CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise OversizedFileError(f"{name} holds more than {max_bytes:,} bytes")
    return b"".join(chunks)


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
    """A binary file object for `path`, decompressing `.gz`, `.zst`, `.bz2`, `.xz` on the fly; a
    local path must be a regular file (`SpecialFileError`)."""
    if is_local(path):
        try:
            mode = os.stat(_local(path)).st_mode
        except OSError:
            mode = None  # opening reports it
        if mode is not None and not stat.S_ISREG(mode):
            raise SpecialFileError(f"{path} is not a regular file (a pipe, socket or device)")
    fs, root = url_to_fs(path)
    return fs.open(root, "rb", compression=infer_compression(path))


def iter_lines(path: str, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """(1-based line number, raw bytes without the newline) of a (compressed) text file; a line
    longer than `max_line_bytes` comes as None (its bytes are skipped, never held in memory)."""
    with open_binary(path) as f:
        number = 0
        while raw := f.readline(max_line_bytes + 1):
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while (rest := f.readline(CHUNK)) and not rest.endswith(b"\n"):
                    pass
                yield number, None
                continue
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

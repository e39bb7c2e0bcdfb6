"""Write a file whole or not at all: a temporary file beside it, fsync, then rename over it.

A reader (a rerun, `verify`, training) sees the old file or the new one, never a torn or empty
one, even when the disk fills up or the process is killed mid-write: the temporary file (`.NAME.tmp`) is
removed when writing fails, and one a kill left behind is replaced by the next write of the
same file (and deleted by `--fresh`). Every JSON report, manifest, index and mixture file of the toolkit is written this way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def temporary_path(path: Path) -> Path:
    """Where `path` is written before the rename: `.NAME.tmp` beside it. The name is fixed, so
    the next write of the same file replaces what a killed write left (one writer per file)."""
    return path.with_name(f".{path.name}.tmp")


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Replace `path` with `data` atomically (creating its folder); returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace `path` with `text` (UTF-8) atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data, *, indent: int | None = None, sort_keys: bool = False) -> Path:
    """Replace `path` with `data` as JSON (a final newline when indented) atomically."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys)
    return write_text_atomic(path, text + "\n" if indent is not None else text)

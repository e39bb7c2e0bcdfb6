"""A full disk (or quota) named plainly: which path, how much space is left there."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_out_of_space(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a full disk or an exceeded quota."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in OUT_OF_SPACE:
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the filesystem of `path` (its nearest existing parent), None if unknown."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def out_of_space_message(error: OSError, folder: str | Path) -> str:
    """One line: the path that could not be written (else `folder`), the space left there, what to do."""
    path = getattr(error, "filename", None) or folder
    free = free_bytes(path)
    left = f"{free / 2**20:,.1f} MiB free" if free is not None else "free space unknown"
    return (
        f"no space left on the device writing {path} ({left} there); free some space (or choose another "
        "--out) and run the same command again: it resumes where it stopped"
    )

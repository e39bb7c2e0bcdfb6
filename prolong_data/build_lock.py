"""One build at a time in an output folder: a lock file naming its holder.

`hold_lock(path)` creates `path` (the folder's `.lock`), takes an exclusive `flock` on it and
writes the holder's pid, host and command into it. A second process that finds the lock taken
is refused at once with a message naming the holder (never waits, never interleaves). The kernel
releases a `flock` when its holder dies, however it dies, so a lock file left by a killed build
is stale and is taken over (with a log line naming the dead holder). Workers that a build forks
share its lock until they end. The holder deletes the file when it is done.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LockHeld(ValueError):
    """Another live process holds the lock; the message names it and says what to do."""


def holder_record() -> dict:
    """What the lock file says about this process."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)}


def read_holder(path: Path) -> dict:
    """The record in a lock file ({} when it is empty or torn)."""
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('command', '?')})"


def _open_locked(path: Path) -> int:
    """An fd of `path` with an exclusive flock on it; raises LockHeld when another process has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(
                f"{path.parent} is in use by another build: {_describe(read_holder(path))}; wait for it to "
                "end, or stop it, then run this command again (or choose another --out)"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # the holder deleted it between our open and our lock
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def hold_lock(path: str | Path, log=None) -> Iterator[dict]:
    """Hold the lock at `path` for the duration of the block (creating its folder); yields the
    record of a stale holder taken over ({} when there was none). `log(text)` reports a takeover."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_locked(path)
    try:
        stale = read_holder(path)
        if stale and log is not None:
            log(f"taking over the lock of {_describe(stale)}, which no longer runs")
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_record()) + "\n").encode(), 0)
        os.fsync(fd)
        yield stale
    finally:
        if read_holder(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
        os.close(fd)

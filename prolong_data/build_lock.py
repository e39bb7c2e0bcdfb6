"""One build at a time in an output folder: a lock file naming its holder.

`hold_lock(path)` creates `path` (the folder's `.lock`), takes an exclusive `flock` on it and
writes the holder's pid, host and command into it. A second process that finds the lock taken
by a live build is refused at once with a message naming the holder (never interleaved). The kernel
releases a `flock` when its holder dies, however it dies, so a lock file left by a killed build
is stale and is taken over (with a log line naming the dead holder). Workers that a build forks
share its lock until they end: when the holder named in the file has ended but its workers
still hold the lock (a build killed a moment ago), the next build waits up to
`ORPHAN_WAIT_SECONDS` for them. The holder deletes the file when it is done.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ORPHAN_WAIT_SECONDS = 30.0
"""How long a build waits for the workers of a build that was killed to exit and let go."""


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


def holder_ended(holder: dict) -> bool:
    """Whether the process a lock record names ran on this host and has ended."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _flock_now(fd: int, path: Path) -> None:
    """Take the flock, waiting up to `ORPHAN_WAIT_SECONDS` when its holder has ended (the workers
    of a killed build still exiting); raise LockHeld when a live process holds it."""
    deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = read_holder(path)
            if holder_ended(holder) and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            still = " (it has ended, but processes it started still run)" if holder_ended(holder) else ""
            raise LockHeld(
                f"{path.parent} is in use by another build: {_describe(holder)}{still}; wait for it to "
                "end, or stop it, then run this command again (or choose another --out)"
            ) from None


def _open_locked(path: Path) -> int:
    """An fd of `path` with an exclusive flock on it; raises LockHeld when another process has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock_now(fd, path)
        except LockHeld:
            os.close(fd)
            raise
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

"""Ctrl-C and SIGTERM: stop every process of a command, say how to resume, exit 130 / 143.

`with stop_on_signals(name):` installs the handler for SIGINT and SIGTERM of a command (`shards`,
`eval`). On a signal the command's process ends its descendants (the local executor's workers,
a vLLM engine: found through /proc, so nothing else of the terminal's process group is touched),
SIGTERM first, SIGKILL for any still alive after `GRACE_SECONDS`, prints one line

    shards: stopped; run the same command to resume

and exits at once with 128 + the signal number (130 for SIGINT, 143 for SIGTERM), with no
traceback. A forked worker inherits the handler and just exits quietly (Ctrl-C in a terminal
reaches every process of the group). What is half-written stays as after a kill: the next run
redoes what is not complete.

The trainer stops at a step boundary instead (`StopRequest`), so that it can save a checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 5.0
"""How long descendants get to end after SIGTERM before SIGKILL."""
RESUME_LINE = "stopped; run the same command to resume"


def exit_status(signum: int) -> int:
    """The shell's status of a command ended by signal `signum` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def _parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process this user can see (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # after "(comm)": state, ppid, ...
        parents[int(entry)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    """The running descendants of process `pid` (children first)."""
    parents = _parent_pids()
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier and p not in found]
        found += children
        frontier = children
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def end_descendants(grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every descendant of this process, SIGKILL those alive after `grace` seconds."""
    pids = descendants(os.getpid())
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        _reap()
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    _signal_all(descendants(os.getpid()) + pids, signal.SIGKILL)
    _reap()


def _reap() -> None:
    """Collect ended children, so they are not counted alive as zombies."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


@contextmanager
def stop_on_signals(name: str, on_stop: Callable[[], None] | None = None) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM end this command as the module docstring says;
    `on_stop()` runs first in the command's own process. The previous handlers come back after."""
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked worker: the command's process ends everything
            os._exit(exit_status(signum))
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C does not interrupt the cleanup
        try:
            if on_stop is not None:
                on_stop()
            end_descendants()
            print(f"{name}: {RESUME_LINE}", file=sys.stderr, flush=True)
        finally:
            os._exit(exit_status(signum))

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


class Stopped(Exception):
    """Raised by a loop that stopped at a safe point on `signum`."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class StopRequest:
    """A signal noted for a loop that stops at its next safe point (the trainer, between steps).

    Within `with StopRequest(name) as stop:` SIGINT and SIGTERM set `stop.signum` instead of
    interrupting; the loop checks `stop.signum` and raises `Stopped`. A second signal before
    the loop gets there ends the command at once, as `stop_on_signals` does.
    """

    def __init__(self, name: str):
        self.name = name
        self.signum: int | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            return
        end_descendants()
        print(f"{self.name}: {RESUME_LINE}", file=sys.stderr, flush=True)
        os._exit(exit_status(signum))

    def __enter__(self) -> StopRequest:
        self._previous = {s: signal.signal(s, self._handler) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._previous.items():
            signal.signal(s, old)

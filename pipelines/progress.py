"""The live display of a build: per pass and domain, tasks done, documents, tokens, tokens/s, time left.

A thread in the command's process reads what the tasks leave on disk, so it works the same for
every local worker (and for Ray workers that share the file system):

* `<stats folder>/<domain>/<local rank>.progress`: a running task's documents and tokens so far
  (written by `dispatch.TaskProgress` at most once a second);
* `<stats folder>/<domain>/<local rank>.json`: a finished task's stats, with its final counts;
* `<pass logs>/completions/<global rank>`: datatrove's marker of a finished task.

On a terminal the display redraws one line per domain under a line for the pass, then leaves
only the pass's summary line. Elsewhere (a log file, CI) it prints a line when a task finishes,
at most one every `line_interval` seconds, and the summary line.

Lines are written with `os.write` on the stream's file descriptor: the local executor forks its
workers while this thread runs, and a fork must never copy a held lock of a Python-level stream.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.dispatch import DomainJob
from prolong_data.layout import task_progress_file, task_stats_file


@dataclass
class DomainCounts:
    """What the display shows for one domain of a pass."""

    domain: str
    tasks: int
    done: int = 0
    documents: int = 0
    tokens: int = 0


def human(n: float) -> str:
    """1234 -> '1,234'; 12_345_678 -> '12.3M' (token counts get long)."""
    if n >= 10_000_000:
        return f"{n / 1e6:,.1f}M"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{int(n):,}"


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def time_left(elapsed: float, done: int, total: int) -> str:
    """Remaining time if the tasks still to run take as long as the finished ones did."""
    if done >= total:
        return "done"
    if done == 0:
        return "?"
    return "~" + clock(elapsed * (total - done) / done)


def read_counts(
    jobs: list[DomainJob], stats_folder: Path, completions: Path, finished_counts: dict | None = None
) -> list[DomainCounts]:
    """The counts of every domain of a pass, from the files its tasks leave (see module doc).

    `finished_counts` ((domain, local rank) -> counts) keeps what finished tasks reported between
    calls, so that a refresh reads only the files of running tasks: a listing of each folder and
    one small file per running task, however many tasks a pass has.
    """
    cache = {} if finished_counts is None else finished_counts
    finished = set(_listing(completions))
    rows, offset = [], 0
    for job in jobs:
        row = DomainCounts(job.domain, job.tasks)
        present = set(_listing(stats_folder / job.domain))
        for local in range(job.tasks):
            stats_file = task_stats_file(stats_folder, job.domain, local)
            live_file = task_progress_file(stats_folder, job.domain, local)
            if f"{offset + local:05d}" in finished:
                row.done += 1
                if (job.domain, local) not in cache:  # its stats file is written before its marker
                    stats = _load(stats_file) if stats_file.name in present else {}
                    cache[(job.domain, local)] = stats.get("progress") or {}
                counts = cache[(job.domain, local)]
            elif live_file.name in present:
                counts = _load(live_file)
            else:
                continue
            row.documents += int(counts.get("documents", 0))
            row.tokens += int(counts.get("tokens", 0))
        rows.append(row)
        offset += job.tasks
    return rows


def _listing(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class _Out:
    """Writes text to a stream, through its file descriptor when it has one (see module doc)."""

    def __init__(self, stream):
        self.stream = stream
        try:
            self.fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None

    def isatty(self) -> bool:
        return self.fd is not None and os.isatty(self.fd) and os.environ.get("TERM") != "dumb"

    def write(self, text: str) -> None:
        if self.fd is None:
            self.stream.write(text)
            self.stream.flush()
            return
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data) :]


class PassProgress:
    """Shows the progress of one pass while it runs (a context manager around `executor.run()`)."""

    def __init__(
        self,
        name: str,
        jobs: list[DomainJob],
        stats_folder: str | Path,
        completions: str | Path,
        stream=None,
        tty: bool | None = None,
        refresh: float = 0.5,
        line_interval: float = 10.0,
    ):
        self.name, self.jobs = name, jobs
        self.stats_folder, self.completions = Path(stats_folder), Path(completions)
        self.out = _Out(stream if stream is not None else sys.stderr)
        self.tty = self.out.isatty() if tty is None else tty
        self.refresh, self.line_interval = refresh, line_interval
        self.total = sum(j.tasks for j in jobs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished: dict = {}  # (domain, local rank) -> final counts of a finished task
        self._drawn = 0  # lines of the live block on screen
        self._done_before = self._last_done = 0
        self._last_line = 0.0
        self._start = time.monotonic()

    def __enter__(self) -> PassProgress:
        for stream in (sys.stdout, sys.stderr):  # what was printed before comes before the display
            stream.flush()
        self._start = time.monotonic()
        self._done_before = self._last_done = sum(r.done for r in self.counts())
        self._thread = threading.Thread(target=self._loop, name=f"progress-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        rows = self.counts()
        self._erase()
        self.out.write(self.summary(rows) + ("" if exc_type is None else "  (stopped)") + "\n")

    def counts(self) -> list[DomainCounts]:
        return read_counts(self.jobs, self.stats_folder, self.completions, self._finished)

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                rows = self.counts()
                if self.tty:
                    self._draw(rows)
                else:
                    self._line(rows)
            except OSError:  # the terminal went away (a closed pipe): the build goes on, unseen
                return

    # ---- text -----------------------------------------------------------------------------

    def summary(self, rows: list[DomainCounts]) -> str:
        """One line for the whole pass."""
        elapsed = time.monotonic() - self._start
        done = sum(r.done for r in rows)
        documents, tokens = sum(r.documents for r in rows), sum(r.tokens for r in rows)
        parts = [f"{self.name}: {done}/{self.total} tasks", f"{human(documents)} documents"]
        if tokens:
            parts += [f"{human(tokens)} tokens", f"{human(tokens / max(elapsed, 1e-9))} tokens/s"]
        parts.append(f"{clock(elapsed)} elapsed")
        if done < self.total:
            parts.append(
                time_left(elapsed, done - self._done_before, self.total - self._done_before) + " left"
            )
        return ", ".join(parts)

    def domain_line(self, row: DomainCounts, elapsed: float) -> str:
        """One line per domain: tasks done, documents, tokens, tokens/s, time left."""
        width = max(len(j.domain) for j in self.jobs)
        tokens = f"{human(row.tokens)} tok" if row.tokens else ""
        rate = f"{human(row.tokens / max(elapsed, 1e-9))} tok/s" if row.tokens else ""
        tasks = f"{row.done}/{row.tasks}"
        return (
            f"  {row.domain:<{width}} {tasks:>7} {human(row.documents):>8} docs {tokens:>11} {rate:>13}  "
            f"{time_left(elapsed, row.done, row.tasks)}"
        )

    # ---- terminal: a block redrawn in place -----------------------------------------------

    def _draw(self, rows: list[DomainCounts]) -> None:
        elapsed = time.monotonic() - self._start
        lines = [self.summary(rows)] + [self.domain_line(r, elapsed) for r in rows]
        width = _terminal_width()
        text = "".join(f"\x1b[2K{line[: width - 1]}\n" for line in lines)
        self.out.write((f"\x1b[{self._drawn}F" if self._drawn else "") + text)
        self._drawn = len(lines)

    def _erase(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[0J")
            self._drawn = 0

    # ---- not a terminal: a line when a task finishes, rate-limited ------------------------

    def _line(self, rows: list[DomainCounts]) -> None:
        done = sum(r.done for r in rows)
        now = time.monotonic()
        if done > self._last_done and now - self._last_line >= self.line_interval and done < self.total:
            self._last_done, self._last_line = done, now
            self.out.write(self.summary(rows) + "\n")


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(2).columns
    except OSError:
        return 120

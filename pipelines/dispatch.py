"""Many domain pipelines under one executor: global task `r` runs one domain's local task.

A build has a pipeline per domain (a plain list of steps) and a task count per domain. Running
each under its own executor would start a worker pool per domain; instead `DomainTasks` lays
the domains' tasks end to end (domain 0 takes ranks `[0, t0)`, domain 1 `[t0, t0 + t1)`, ...)
and runs, for global rank `r`, the right domain's pipeline with its local rank and task count.
One executor per pass then covers the whole recipe, and datatrove's per-rank completion
markers make every (domain, task) resumable on its own.
"""

from __future__ import annotations

import copy
import json
import resource
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datatrove.pipeline.base import PipelineStep

from prolong_data.atomic_write import write_json_atomic
from prolong_data.layout import task_progress_file, task_stats_file
from prolong_data.lengths import LENGTH_EDGES, length_bins


class TaskProgress:
    """Live counts of one running task for the build's progress display (`pipelines/progress.py`).

    Counts the documents its first step (the reader) yields and the tokens of the tokenized
    documents that reach `CountTokenized`, and writes them to a small JSON file at most once per
    `interval` seconds. The task's final stats file carries the last counts; the live file is then
    removed.
    """

    def __init__(self, path: Path, interval: float = 1.0):
        self.path, self.interval = Path(path), interval
        self.documents = self.tokens = 0
        self._last = time.monotonic()

    def documents_of(self, items):
        for item in items:
            self.documents += 1
            self._tick()
            yield item

    def tokens_of(self, items):
        for item in items:
            self.tokens += len(item.tokens)
            self._tick()
            yield item

    def counts(self) -> dict:
        return {"documents": self.documents, "tokens": self.tokens}

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.counts()))
            tmp.replace(self.path)  # the display never reads half a file

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class DomainJob:
    """One domain's pipeline for one pass, and how many tasks it runs on."""

    domain: str
    steps: list
    tasks: int


class DomainTasks(PipelineStep):
    """Runs local task `r - offset` of the domain that owns global rank `r` (see module doc).

    After a task, the stats of its steps (and the worker's peak memory so far) are written to
    `stats_folder/<domain>/<rank>.json` (overwritten by a rerun) for the build report. While it
    runs, `TaskProgress` keeps `stats_folder/<domain>/<rank>.progress` up to date for the live
    display.
    """

    name = "domain tasks"
    type = "🗂 - DISPATCH"

    def __init__(self, jobs: list[DomainJob], stats_folder: str):
        super().__init__()
        if not jobs or any(j.tasks <= 0 for j in jobs):
            raise ValueError("every domain job needs at least one task")
        self.jobs, self.stats_folder = jobs, str(stats_folder)

    @property
    def world_size(self) -> int:
        return sum(j.tasks for j in self.jobs)

    def locate(self, rank: int) -> tuple[DomainJob, int]:
        """(the job, its local rank) of global rank `rank`."""
        offset = 0
        for job in self.jobs:
            if rank < offset + job.tasks:
                return job, rank - offset
            offset += job.tasks
        raise IndexError(f"rank {rank} is beyond the {offset} tasks of this build")

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if world_size != self.world_size:
            raise AssertionError(f"executor runs {world_size} tasks, the domains need {self.world_size}")
        job, local = self.locate(rank)
        steps = copy.deepcopy(job.steps)
        progress = TaskProgress(task_progress_file(self.stats_folder, job.domain, local))
        with self.track_time():
            pipelined = None
            for i, step in enumerate(steps):
                pipelined = step(pipelined, local, job.tasks)
                if i == 0 and pipelined is not None:
                    pipelined = progress.documents_of(pipelined)
                elif isinstance(step, CountTokenized):
                    pipelined = progress.tokens_of(pipelined)
            if pipelined is not None:
                deque(pipelined, maxlen=0)
        report = {}
        for step in steps:
            counts = {key: stat.total for key, stat in step.stats.stats.items()}
            report[step.name] = counts
            for key, stat in step.stats.stats.items():
                self.stats[f"{job.domain}/{step.name}/{key}"] += stat
        extra = {k: v for step in steps for k, v in getattr(step, "report_extra", dict)().items()}
        extra["peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )  # this worker so far
        extra["progress"] = progress.counts()
        path = task_stats_file(self.stats_folder, job.domain, local)
        write_json_atomic(path, {"steps": report, **extra}, indent=1, sort_keys=True)
        progress.finish()
        return iter(())


class CountTokenized(PipelineStep):
    """Counts the tokenized documents that reach the packer, and a histogram of their lengths."""

    name = "count documents"
    type = "📊 - STATS"

    def __init__(self):
        super().__init__()
        self._hist = np.zeros(len(LENGTH_EDGES) - 1, dtype=np.int64)
        self._docs = self._tokens = 0

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator:
        self._hist[:] = 0
        self._docs = self._tokens = 0
        for doc in data:
            n = len(doc.tokens)
            self._docs += 1
            self._tokens += n
            self._hist[length_bins(n)] += 1
            yield doc
        self.stat_update("documents", value=self._docs)
        self.stat_update("tokens", value=self._tokens)

    def report_extra(self) -> dict:
        return {"documents": self._docs, "tokens": self._tokens, "length_histogram": self._hist.tolist()}

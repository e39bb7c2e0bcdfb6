"""Before a rerun skips its finished tasks: find those whose outputs were damaged since, and
run them again.

datatrove skips a task whose completion marker exists. A marker says the task finished, not
that its outputs are still there: a shard deleted, truncated or altered after the build, a
deleted rank `index.json`, a partition or stats file gone. For every finished task of a pass this
checks what the task wrote (for the `build` pass: its rank folder, by size, recorded hashes and
sample counts); a damaged task loses its marker, so the rerun runs it again from scratch and
writes the same bytes as before (every output is a pure function of the recipe, the input and
the task counts). Finalize then merges the indexes and rewrites manifests and mixture.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from datatrove.utils.logging import logger

from prolong_data.layout import BuildLayout, packing_report, rank_folder
from prolong_data.sources.partitions import HashPartitionWriter, partition_file
from prolong_data.verify import rank_problem


def _json_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{path} is missing"
    try:
        json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{path} is not valid JSON"
    return None


def task_problem(layout: BuildLayout, plan, pass_name: str, steps: list, rank: int) -> str | None:
    """What is missing or damaged among the outputs of local task `rank` of a domain in a pass
    (None: all there)."""
    domain = plan.config.name
    files = [layout.stats_file(pass_name, domain, rank)]
    files += [Path(s.bad_input_file.format(rank=rank)) for s in steps if getattr(s, "bad_input_file", None)]
    if pass_name == "build":
        files.append(packing_report(plan.folder, rank))
    for path in files:
        problem = _json_problem(path)
        if problem:
            return problem
    for path in (p for s in steps for p in getattr(s, "output_files", lambda r: [])(rank)):
        if not path.is_file():
            return f"{path} is missing"
    if pass_name in ("signatures", "near_dedup"):
        return None
    if pass_name == "read":
        if not any(isinstance(s, HashPartitionWriter) for s in steps):
            return None  # a read task that only writes near-dedup signatures
        sizes = json.loads(files[0].read_text()).get("partition_bytes") or [None] * plan.tasks
        for part, size in zip(range(plan.tasks), sizes):
            path = partition_file(plan.partitions, part, rank)
            if not path.is_file():
                return f"{path} is missing"
            if size is not None and path.stat().st_size != size:
                return f"{path} has {path.stat().st_size:,} bytes, its task wrote {size:,}"
        return None
    return rank_problem(rank_folder(plan.folder, rank))


def reopen_damaged_tasks(layout: BuildLayout, plans: list, passes: list) -> list[str]:
    """Remove the completion marker of every finished task whose outputs are damaged; returns
    what was found (also logged). `passes` are (name, `DomainTasks`) in run order."""
    by_name = {p.config.name: p for p in plans}
    found = []
    for pass_name, step in passes:
        offset = 0
        for job in step.jobs:
            plan = by_name[job.domain]
            for rank in range(job.tasks):
                marker = layout.completion(pass_name, offset + rank)
                if not marker.is_file():
                    continue
                problem = task_problem(layout, plan, pass_name, job.steps, rank)
                if problem:
                    found.append(f"{job.domain} task {rank} (pass {pass_name}): {problem}")
                    logger.warning(f"{found[-1]}; running the task again")
                    marker.unlink()
            offset += job.tasks
    return found

"""The evaluation tasks, by name.

Recall tasks (``json_kv``, ``niah_*``) generate prompts with answers and are scored on the
model's greedy output; ``doc_loss`` measures per-token loss on held-out documents by position.
"""

from __future__ import annotations

from evaluation.tasks.json_kv import JsonKV
from evaluation.tasks.niah import Needles

RECALL_TASKS = {
    "json_kv": JsonKV(),
    "niah_single": Needles("niah_single", keys=1, values=1),
    "niah_multikey": Needles("niah_multikey", keys=4, values=1),
    "niah_multivalue": Needles("niah_multivalue", keys=1, values=4),
}
"""Tasks scored on generated answers."""

DOC_LOSS = "doc_loss"
ALL_TASKS = (*RECALL_TASKS, DOC_LOSS)


def task_order(name: str) -> int:
    """Where a task's rows go in tables: the order of ``RECALL_TASKS``."""
    return list(RECALL_TASKS).index(name) if name in RECALL_TASKS else len(RECALL_TASKS)


def recall_category(protocol: str, tasks: list[str]) -> dict:
    """The category mean a protocol reports: its name, the tasks it averages and what it means."""
    return {
        "name": "mean of the recall tasks",
        "tasks": [t for t in tasks if t in RECALL_TASKS],
        "about": "the unweighted mean of the tasks above at each length; not HELMET's recall "
        "category (--protocol helmet reports that one).",
    }

"""The evaluation tasks, by protocol and name.

Recall tasks (``json_kv``, ``niah_*``) generate prompts with answers and are scored on the
model's greedy output; ``doc_loss`` measures per-token loss on held-out documents by position.
A protocol is a set of tasks with its defaults: ``default`` (ours, for the research loop) and
``helmet`` (HELMET's recall category, ``prolong_data.evaluation.tasks.helmet``) and ``ruler`` (RULER's tasks
beyond needles, ``prolong_data.evaluation.tasks.ruler``).
"""

from __future__ import annotations

from prolong_data.evaluation.tasks.helmet import HELMET_TASKS
from prolong_data.evaluation.tasks.json_kv import JsonKV
from prolong_data.evaluation.tasks.niah import Needles
from prolong_data.evaluation.tasks.ruler import RULER_TASKS

RECALL_TASKS = {
    "json_kv": JsonKV(),
    "niah_single": Needles("niah_single", keys=1, values=1),
    "niah_multikey": Needles("niah_multikey", keys=4, values=1),
    "niah_multivalue": Needles("niah_multivalue", keys=1, values=4),
}
"""Tasks scored on generated answers."""

DOC_LOSS = "doc_loss"
ALL_TASKS = (*RECALL_TASKS, DOC_LOSS)
"""The default protocol's tasks."""

PROTOCOL_TASKS = {"default": RECALL_TASKS, "helmet": HELMET_TASKS, "ruler": RULER_TASKS}
"""Each protocol's recall tasks."""
PROTOCOL_DEFAULTS = {
    "default": {"tasks": ALL_TASKS, "samples": 10},
    "helmet": {"tasks": tuple(HELMET_TASKS), "samples": 100},
    "ruler": {"tasks": tuple(RULER_TASKS), "samples": 100},
}
"""What a protocol runs when --tasks and --samples are not given (HELMET: 100 examples per task)."""


def recall_tasks(protocol: str) -> dict:
    """The recall tasks of ``protocol``, by name."""
    return PROTOCOL_TASKS[protocol]


def protocol_tasks(protocol: str) -> tuple[str, ...]:
    """Every task name ``protocol`` accepts (the default protocol also has ``doc_loss``)."""
    return (*PROTOCOL_TASKS[protocol], DOC_LOSS) if protocol == "default" else tuple(PROTOCOL_TASKS[protocol])


def task_order(name: str, protocol: str = "default") -> int:
    """Where a task's rows go in tables: the order of the protocol's tasks."""
    order = list(PROTOCOL_TASKS[protocol])
    return order.index(name) if name in order else len(order)


def recall_category(protocol: str, tasks: list[str]) -> dict:
    """The category mean a protocol reports: its name, the tasks it averages and what it means."""
    if protocol == "helmet":
        return {
            "name": "HELMET recall",
            "tasks": list(HELMET_TASKS),
            "about": "HELMET's recall category: the mean of json_kv, niah_mk_2, niah_mk_3 and niah_mv "
            "at each length, shown only where all four ran.",
        }
    return {
        "name": "mean of the recall tasks",
        "tasks": [t for t in tasks if t in RECALL_TASKS],
        "about": "the unweighted mean of the tasks above at each length; not HELMET's recall "
        "category (--protocol helmet reports that one).",
    }

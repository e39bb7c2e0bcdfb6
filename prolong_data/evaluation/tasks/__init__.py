"""The evaluation tasks, by name.

Recall tasks (``json_kv``, ``niah_*``) generate prompts with answers and are scored on the
model's greedy output; ``doc_loss`` measures per-token loss on held-out documents by position.
"""

from __future__ import annotations

from prolong_data.evaluation.tasks.json_kv import JsonKV
from prolong_data.evaluation.tasks.niah import Needles

RECALL_TASKS = {
    "json_kv": JsonKV(),
    "niah_single": Needles("niah_single", keys=1, values=1),
    "niah_multikey": Needles("niah_multikey", keys=4, values=1),
    "niah_multivalue": Needles("niah_multivalue", keys=1, values=4),
}
"""Tasks scored on generated answers."""

DOC_LOSS = "doc_loss"
ALL_TASKS = (*RECALL_TASKS, DOC_LOSS)

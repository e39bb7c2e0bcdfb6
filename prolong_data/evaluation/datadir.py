"""``--data-dir``: evaluate on the anchors' released example files instead of generated ones.

The files are read where the anchors' own scripts put them, below the folder given:

* ``--protocol helmet``: HELMET's ``data/`` folder (after its ``scripts/download_data.sh``):
  ``json_kv/test_k{records}_dep6.jsonl`` (records: 105, 220, 440, 900, 1800 at 8K..128K) with the
  fields ``context``, ``question``, ``answer`` and ``demos`` (``[key, value]`` pairs, the first two
  shown); ``ruler/niah_multikey_2|niah_multikey_3|niah_multivalue/validation_{length}.jsonl`` with
  ``context``, ``query``, ``type_needle_v`` and ``answer`` (or ``outputs``).
* ``--protocol ruler``: the ``data`` folders of RULER's ``run.sh`` (``{root}/{model}/synthetic``):
  ``{length}/data/{task}/validation.jsonl`` with ``input`` (the prompt without its answer prefix),
  ``outputs`` (the expected strings) and ``answer_prefix``.

HELMET's prompts are assembled from the fields with HELMET's templates in the base format; a
context longer than the length less the generation budget loses its last tokens, as HELMET
truncates. RULER's ``input`` is used as written (its files are made for one length already).
"""

from __future__ import annotations

import json
from pathlib import Path

from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.evaluation.prompts import Example, PromptFormat, prompt_budget
from prolong_data.evaluation.tasks import recall_tasks
from prolong_data.evaluation.tasks.helmet import json_kv_records

HELMET_NIAH_FILES = {
    "niah_mk_2": "niah_multikey_2",
    "niah_mk_3": "niah_multikey_3",
    "niah_mv": "niah_multivalue",
}
"""HELMET's recall tasks made from RULER's generator, and the folder of their files."""

HELMET_JSON_KV_USER = (
    "{context}\n\nExtract the value corresponding to the specified key in the JSON object below.\n\n"
    "{demos}Key: {question}"
)
HELMET_JSON_KV_PREFIX = "Corresponding value:"
HELMET_NIAH_USER = (
    "A special magic {type_needle_v} is hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What is the special magic {type_needle_v} for {query} mentioned in the provided text?"
)
HELMET_NIAH_PREFIX = "The special magic {type_needle_v} for {query} mentioned in the provided text is"
HELMET_MV_USER = (
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
)
HELMET_MV_PREFIX = "The special magic {type_needle_v} for {query} mentioned in the provided text are"
JSON_KV_SHOTS = 2
"""Demonstrations HELMET's recall configs show (``shots: 2``)."""


def data_file(protocol: str, data_dir: Path, task: str, length: int) -> Path:
    """Where the anchor's released file of ``task`` at ``length`` lies below ``data_dir``."""
    if protocol == "helmet":
        if task == "json_kv":
            return data_dir / "json_kv" / f"test_k{json_kv_records(length)}_dep6.jsonl"
        return data_dir / "ruler" / HELMET_NIAH_FILES[task] / f"validation_{length}.jsonl"
    if protocol == "ruler":
        return data_dir / str(length) / "data" / task / "validation.jsonl"
    raise EvalUsageError(f"--data-dir needs --protocol helmet or ruler, not {protocol!r}")


def read_rows(path: Path, fields: tuple[str, ...], either: tuple[str, ...] = ()) -> list[dict]:
    """The JSON lines of ``path``, each checked for ``fields`` (and one of ``either``, when given)."""
    if not path.is_file():
        raise EvalUsageError(f"--data-dir: {path} is missing; download the anchor's data or drop --data-dir")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvalUsageError(f"--data-dir: {path} line {number} is not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise EvalUsageError(f"--data-dir: {path} line {number} is not a JSON object")
        missing = [f for f in fields if f not in row] + ([" or ".join(either)] if either and not any(
            f in row for f in either) else [])  # fmt: skip
        if missing:
            raise EvalUsageError(f"--data-dir: {path} line {number} lacks the field(s) {', '.join(missing)}")
        rows.append(row)
    return rows


def as_answers(value) -> list[str]:
    """A released answer (one string or a list of them) as a list of strings."""
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def truncate_context(context: str, over: int, fmt: PromptFormat) -> str:
    """``context`` less its last ``over`` tokens (HELMET's truncation of a too long input)."""
    if over <= 0:
        return context
    ids = fmt.tokenizer(context, add_special_tokens=False)["input_ids"]
    return fmt.tokenizer.decode(ids[: max(0, len(ids) - over)])


def helmet_parts(task: str, row: dict) -> tuple[str, str, str, list[str]]:
    """``(user template with {context}, answer prefix, context, answers)`` of one HELMET row."""
    if task == "json_kv":
        demos = "".join(f"Key: {k}\nCorresponding value: {v}\n\n" for k, v in row["demos"][:JSON_KV_SHOTS])
        user = HELMET_JSON_KV_USER.replace("{demos}", demos).replace("{question}", str(row["question"]))
        return user, HELMET_JSON_KV_PREFIX, row["context"], as_answers(row["answer"])
    user, prefix = (
        (HELMET_MV_USER, HELMET_MV_PREFIX) if task == "niah_mv" else (HELMET_NIAH_USER, HELMET_NIAH_PREFIX)
    )
    fill = {"type_needle_v": row["type_needle_v"], "query": row["query"]}
    user = user.replace("{type_needle_v}", fill["type_needle_v"]).replace("{query}", str(fill["query"]))
    answers = as_answers(row["answer"] if "answer" in row else row["outputs"])
    return user, prefix.format(**fill), row["context"], answers


def helmet_example(task: str, row: dict, index: int, length: int, fmt: PromptFormat) -> Example:
    """One HELMET row as an `Example`, its context cut at the end until the prompt fits."""
    spec = recall_tasks("helmet")[task]
    user, prefix, context, answers = helmet_parts(task, row)
    budget = prompt_budget(length, spec.max_new_tokens)
    prompt, _ = fmt.render(user.replace("{context}", context), prefix)
    while (n := fmt.count(prompt)) > budget:
        if not context:
            raise EvalUsageError(
                f"--data-dir: {task} without any context needs {n} tokens > {budget}; use longer --lengths"
            )
        context = truncate_context(context, n - budget, fmt)
        prompt, _ = fmt.render(user.replace("{context}", context), prefix)
    return file_example(task, index, length, prompt, answers, n, spec.max_new_tokens, prefix, fmt)


def ruler_example(task: str, row: dict, index: int, length: int, fmt: PromptFormat) -> Example:
    """One row of RULER's ``validation.jsonl`` as an `Example`: its input, then its answer prefix."""
    spec = recall_tasks("ruler")[task]
    prefix = row["answer_prefix"]
    prompt = row["input"] + prefix
    return file_example(
        task, index, length, prompt, as_answers(row["outputs"]), fmt.count(prompt), spec.max_new_tokens,
        prefix, fmt,
    )  # fmt: skip


def file_example(
    task: str, index: int, length: int, prompt: str, answers: list[str], tokens: int, budget: int,
    prefix: str, fmt: PromptFormat,
) -> Example:  # fmt: skip
    """An `Example` read from a file: its depth is where the first answer stands in the prompt (0..1),
    the whole prompt counts as its context."""
    where = prompt.find(answers[0]) if answers else -1
    depth = round(max(where, 0) / max(len(prompt), 1), 6)
    return Example(
        id=f"{task}/{length}/{index}", task=task, target_length=length, depth=depth, prompt=prompt,
        answers=answers, prompt_tokens=tokens, max_new_tokens=budget, chat=fmt.chat,
        answer_prefix=prefix, context_span=(0, len(prompt)),
    )  # fmt: skip


REQUIRED = {
    ("helmet", "json_kv"): (("context", "question", "answer", "demos"), ()),
    ("helmet", "niah"): (("context", "query", "type_needle_v"), ("answer", "outputs")),
    ("ruler", "any"): (("input", "outputs", "answer_prefix"), ()),
}
"""The fields each kind of released file must carry (and the alternatives of which one must)."""


def check_files(protocol: str, data_dir: str | Path, tasks, lengths) -> None:
    """Refuses (one line) a missing file, a line that is not JSON or a row without a needed field."""
    for length in lengths:
        for task in tasks:
            task_rows(protocol, Path(data_dir), task, length)


def task_rows(protocol: str, data_dir: Path, task: str, length: int) -> list[dict]:
    """The checked rows of ``task``'s file at ``length``."""
    kind = "any" if protocol == "ruler" else ("json_kv" if task == "json_kv" else "niah")
    return read_rows(data_file(protocol, data_dir, task, length), *REQUIRED[(protocol, kind)])


def load_examples(
    protocol: str, data_dir: str | Path, tasks, lengths, samples: int, fmt: PromptFormat
) -> list[Example]:
    """The first ``samples`` rows of each task's file at each length, as `Example`s, shortest first."""
    if fmt.chat:
        raise EvalUsageError("--data-dir evaluates the anchors' base-format prompts; use --chat off")
    data_dir = Path(data_dir)
    examples = []
    for length in lengths:
        for task in tasks:
            rows = task_rows(protocol, data_dir, task, length)
            make = helmet_example if protocol == "helmet" else ruler_example
            examples += [make(task, row, i, length, fmt) for i, row in enumerate(rows[:samples])]
    return examples

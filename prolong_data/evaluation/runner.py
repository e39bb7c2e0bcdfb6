"""Run an evaluation into a folder, resumably.

The folder holds, as the run goes:

* ``settings.json``: what is evaluated; a rerun with other settings is refused (or ``--fresh``).
* ``prompts.jsonl``: every generated example (written once, before the model runs).
* ``results.jsonl``: one line per scored example, appended and flushed as each finishes.
* ``doc_loss.jsonl``: one line per held-out document of ``doc_loss``.
* at the end ``results.json``, ``results.md`` and the plots (``prolong_data.evaluation.report``).

A killed run resumes from the streams: lines already there are kept (a half-written last line is
cut off) and only the missing examples and documents run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prolong_data.atomic_write import write_json_atomic
from prolong_data.evaluation import report
from prolong_data.evaluation.backends import Backend
from prolong_data.evaluation.datadir import load_examples
from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.evaluation.haystack import DEFAULT_HELDOUT, Haystack, read_documents
from prolong_data.evaluation.prompts import Example, PromptFormat
from prolong_data.evaluation.tasks import ALL_TASKS, DOC_LOSS, PROTOCOL_TASKS, protocol_tasks, recall_tasks
from prolong_data.evaluation.tasks import doc_loss as doc_loss_task
from prolong_data.evaluation.tasks.base import example_rng
from prolong_data.evaluation.uncertainty import documents_fingerprint, tokenizer_fingerprint

MIN_LENGTH = 256
"""The shortest length: a prompt with some context plus a generation budget of up to 100 tokens."""
STREAMS = ("prompts.jsonl", "results.jsonl", "doc_loss.jsonl")
OUTPUTS = ("results.json", "results.md", "needle_depth.png", "loss_by_position.png")


@dataclass(kw_only=True)
class EvalSettings:
    """Everything that decides what an evaluation measures (saved as ``settings.json``)."""

    model: str
    """The evaluated model: an HF folder or hub id."""
    tasks: tuple[str, ...] = ALL_TASKS
    """Task names (see ``prolong_data.evaluation.tasks``)."""
    lengths: tuple[int, ...] = (8192, 16384, 32768, 65536)
    """Prompt lengths in the model's tokens; doc_loss scores documents up to the longest."""
    samples: int = 10
    """Examples per recall task and length (HELMET uses 100)."""
    seed: int = 0
    """Seed of every random choice (keys, values, haystack windows, distractor depths)."""
    depths: int = 5
    """Rows of the depth heatmap: [0, 1] cut into this many bins (depths themselves are sampled)."""
    chat: bool = False
    """Render prompts with the tokenizer's chat template (instruct models) instead of the base format."""
    heldout: str = str(DEFAULT_HELDOUT)
    """Folder of held-out long documents: the needles' haystack and doc_loss's text."""
    window: int = doc_loss_task.DEFAULT_WINDOW
    """doc_loss: the short-context window the full context is compared with."""
    documents: int | None = None
    """doc_loss: use at most this many held-out documents (None: all)."""
    backend: str = "hf"
    """hf (transformers) or vllm."""
    protocol: str = "default"
    """Which tasks and procedures: ``default`` (ours) or ``helmet`` (HELMET's recall category)."""
    data_dir: str | None = None
    """The anchors' released example files to evaluate on (``prolong_data.evaluation.datadir``);
    None: examples are generated."""
    extra: dict = field(default_factory=dict)
    """Free-form notes recorded with the results (e.g. the chat mode that was asked for)."""

    def __post_init__(self):
        if self.protocol not in PROTOCOL_TASKS:
            raise EvalUsageError(
                f"unknown --protocol {self.protocol!r}; choose from {', '.join(PROTOCOL_TASKS)}"
            )
        known = protocol_tasks(self.protocol)
        unknown = [t for t in self.tasks if t not in known]
        if unknown or not self.tasks:
            raise EvalUsageError(
                f"unknown task(s) {unknown} for --protocol {self.protocol}; choose from {', '.join(known)}"
            )
        if not self.lengths or any(n < MIN_LENGTH for n in self.lengths):
            raise EvalUsageError(
                f"--lengths must be token counts of at least {MIN_LENGTH} (a prompt and its generation "
                f"budget), got {list(self.lengths)}"
            )
        if self.samples < 1 or self.depths < 1:
            raise EvalUsageError("--samples and --depths must be at least 1")
        if self.window < 2:
            raise EvalUsageError("--window must be at least 2 tokens")
        if self.data_dir is not None and self.protocol == "default":
            raise EvalUsageError("--data-dir reads HELMET's or RULER's files: add --protocol helmet or ruler")
        self.tasks = tuple(dict.fromkeys(self.tasks))
        self.lengths = tuple(sorted(set(self.lengths)))

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"tasks": list(self.tasks), "lengths": list(self.lengths)}


class Stream:
    """An append-only JSON-lines file that survives being killed mid-write."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []
        if path.is_file():
            data = path.read_bytes()
            keep = 0
            for line in data.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break
                try:
                    self.rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
                keep += len(line)
            if keep < len(data):  # a half-written last line: cut it off
                with path.open("r+b") as f:
                    f.truncate(keep)

    def done(self) -> set[str]:
        return {row["id"] for row in self.rows}

    def append(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)


def prepare_folder(out: Path, settings: EvalSettings, fresh: bool) -> None:
    """Creates ``out``; refuses to mix two different evaluations in it unless ``fresh``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "settings.json"
    if fresh:
        for name in (*STREAMS, *OUTPUTS, "settings.json"):
            (out / name).unlink(missing_ok=True)
    elif path.is_file():
        saved = json.loads(path.read_text())
        current = settings.to_json()
        differ = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if differ:
            raise EvalUsageError(
                f"{out} holds an evaluation with other settings (differs in {', '.join(differ)}); "
                "pass --fresh to start over there, or another --out"
            )
    write_json_atomic(path, settings.to_json(), indent=1)


def make_examples(
    settings: EvalSettings, fmt: PromptFormat, haystack: Haystack | None, progress: bool
) -> list[Example]:
    """Every recall example, shortest lengths first (read from ``data_dir`` when one is set)."""
    from tqdm import tqdm

    if settings.data_dir is not None:
        return load_examples(
            settings.protocol, settings.data_dir, settings.tasks, settings.lengths, settings.samples, fmt
        )

    plan = [
        (length, name, index)
        for length in settings.lengths
        for name in settings.tasks
        if name in recall_tasks(settings.protocol)
        for index in range(settings.samples)
    ]
    examples = []
    for length, name, index in tqdm(plan, desc="prompts", unit="prompt", disable=not progress or not plan):
        task, rng = recall_tasks(settings.protocol)[name], example_rng(settings.seed, name, length, index)
        depths = task.sample_depths(index, settings.samples, rng)
        examples.append(task.example(index, length, depths, rng, fmt, haystack))
    return examples


def load_or_make_examples(
    out: Path, settings: EvalSettings, fmt: PromptFormat, haystack, progress: bool
) -> list[Example]:
    """``prompts.jsonl`` when a previous run of the same settings wrote it, else freshly generated."""
    path = out / "prompts.jsonl"
    if path.is_file():
        return [Example.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    examples = make_examples(settings, fmt, haystack, progress)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(e.to_json()) + "\n" for e in examples))
    tmp.replace(path)
    return examples


def batches(examples: list[Example], size: int) -> list[list[Example]]:
    """Examples sorted by generation budget and prompt length, cut into batches of at most ``size``
    with one budget each (so a batch pads little and decodes to one length)."""
    ordered = sorted(examples, key=lambda e: (e.max_new_tokens, e.prompt_tokens, e.id))
    out: list[list[Example]] = []
    for example in ordered:
        if out and len(out[-1]) < size and out[-1][0].max_new_tokens == example.max_new_tokens:
            out[-1].append(example)
        else:
            out.append([example])
    return out


def run_recall(
    examples: Iterable[Example],
    backend: Backend,
    fmt: PromptFormat,
    stream: Stream,
    progress: bool,
    protocol: str,
    batch_size: int = 1,
) -> None:
    """Generates and scores every example not yet in ``stream``, ``batch_size`` prompts at a time;
    each result line is written as its batch finishes (``seconds``: the batch's time, shared)."""
    from tqdm import tqdm

    done = stream.done()
    pending = [e for e in examples if e.id not in done]
    tasks = recall_tasks(protocol)
    bar = tqdm(total=len(pending), desc="recall", unit="prompt", disable=not progress or not pending)
    for batch in batches(pending, batch_size):
        bar.set_postfix(task=batch[0].task, length=batch[0].target_length)
        began = time.perf_counter()
        outputs = backend.generate_batch([fmt.encode(e.prompt) for e in batch], batch[0].max_new_tokens)
        seconds = (time.perf_counter() - began) / len(batch)
        for example, output in zip(batch, outputs):
            stream.append(
                {
                    "id": example.id,
                    "task": example.task,
                    "target_length": example.target_length,
                    "depth": example.depth,
                    "prompt_tokens": example.prompt_tokens,
                    "output": output,
                    "score": tasks[example.task].score(output, example),
                    "seconds": round(seconds, 4),
                }
            )
        bar.update(len(batch))
    bar.close()


def run_doc_loss(settings: EvalSettings, documents, backend: Backend, stream: Stream, progress: bool) -> None:
    """Scores every held-out document not yet in ``stream``, with full context and in windows."""
    from tqdm import tqdm

    done = stream.done()
    context = max(settings.lengths)
    bos = backend.tokenizer.bos_token_id
    docs = documents[: settings.documents] if settings.documents else documents
    pending = [d for d in docs if f"doc_loss/{d.name}" not in done]
    for doc in tqdm(pending, desc="doc_loss", unit="doc", disable=not progress or not pending):
        ids = doc_loss_task.document_ids(backend.tokenizer, doc.text, context)
        if len(ids) < 2:
            continue
        full = backend.token_losses(ids)
        windowed = doc_loss_task.windowed_losses(ids, settings.window, bos, backend.token_losses)
        stream.append(doc_loss_task.document_record(doc.name, full, windowed))


def settings_need_heldout(protocol: str, tasks, data_dir: str | None = None) -> bool:
    """Whether any task reads the held-out documents (needles' haystack, doc_loss); none does
    when the examples come from a data dir."""
    if data_dir is not None:
        return False
    recall = recall_tasks(protocol)
    return any(t == DOC_LOSS or (t in recall and recall[t].needs_haystack) for t in tasks)


def run_evaluation(
    settings: EvalSettings,
    backend: Backend,
    out: str | Path,
    *,
    fresh: bool = False,
    progress: bool = True,
    batch_size: int = 1,
) -> dict:
    """Runs (or resumes) the evaluation into ``out`` and writes its reports; returns ``results.json``'s content."""
    out = Path(out)
    prepare_folder(out, settings, fresh)
    fmt = PromptFormat(backend.tokenizer, settings.chat)
    needs_docs = settings_need_heldout(settings.protocol, settings.tasks, settings.data_dir)
    documents = read_documents(settings.heldout) if needs_docs else []
    haystack = Haystack(documents) if documents else None
    examples = load_or_make_examples(out, settings, fmt, haystack, progress)
    results = Stream(out / "results.jsonl")
    run_recall(examples, backend, fmt, results, progress, settings.protocol, batch_size)
    losses = Stream(out / "doc_loss.jsonl")
    if DOC_LOSS in settings.tasks:
        run_doc_loss(settings, documents, backend, losses, progress)
    identity = {
        "tokenizer": tokenizer_fingerprint(backend.tokenizer),
        "heldout": documents_fingerprint(documents) if documents else None,
        "batch_size": batch_size,
    }
    summary = report.summarize(
        settings.to_json(), backend.describe(), examples, results.rows, losses.rows, identity
    )
    report.write_reports(out, summary)
    return summary

"""``prolong-data eval``: evaluate a causal LM on long-context tasks, or compare two evaluations.

    prolong-data eval --model PATH --tasks json_kv,niah_single,niah_multikey,niah_multivalue,doc_loss \\
        --lengths 8192,16384,32768,65536 --samples 100 --seed 0 --out DIR
    prolong-data eval --compare DIR_A DIR_B

Importing this module is cheap (no torch): the parser is built by ``pipelines/cli.py``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from evaluation.errors import EvalUsageError
from evaluation.haystack import DEFAULT_HELDOUT
from evaluation.tasks import ALL_TASKS
from prolong_data.extras import TrainExtraMissing, require_train_extra

CHAT_HINTS = ("instruct", "chat", "sft")
"""``--chat auto`` uses the chat template for models whose path or name contains one of these."""


def parse_lengths(text: str) -> tuple[int, ...]:
    """``"8192,16K,128k"`` -> ``(8192, 16384, 131072)``."""
    lengths = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)([kK]?)", part)
        if not match:
            raise EvalUsageError(f"--lengths: {part!r} is not a token count (write 8192 or 8K)")
        lengths.append(int(match[1]) * (1024 if match[2] else 1))
    return tuple(lengths)


def resolve_chat(mode: str, tokenizer, model: str) -> bool:
    """``on``/``off``, or ``auto``: the chat template when the tokenizer has one and the model looks instruction-tuned."""
    if mode in ("on", "off"):
        return mode == "on"
    name = Path(model).resolve().as_posix().lower() if Path(model).exists() else model.lower()
    return bool(getattr(tokenizer, "chat_template", None)) and any(h in name for h in CHAT_HINTS)


def add_parser(sub) -> argparse.ArgumentParser:
    """Adds the ``eval`` command to the ``prolong-data`` subparsers."""
    p = sub.add_parser(
        "eval",
        help="long-context evaluation: JSON key-value and needle recall, loss by position",
        description=__doc__.split("\n\nImporting")[0],  # the usage, not the note for developers
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="HF folder or hub id of the causal LM (e.g. runs/sft/hf)")
    p.add_argument(
        "--tasks", default=",".join(ALL_TASKS), help=f"comma-separated, from {', '.join(ALL_TASKS)}"
    )
    p.add_argument(
        "--lengths",
        default="8192,16384,32768,65536",
        help="prompt lengths in the model's tokens (8192 or 8K)",
    )
    p.add_argument(
        "--samples", type=int, default=10, help="examples per recall task and length (HELMET: 100)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every generated example")
    p.add_argument("--depths", type=int, default=5, help="answer depths, evenly spaced in [0, 1]")
    p.add_argument(
        "--heldout",
        default=str(DEFAULT_HELDOUT),
        help="folder of held-out long documents (.txt[.gz], .jsonl[.gz])",
    )
    p.add_argument(
        "--window", type=int, default=4096, help="doc_loss: the short window compared with the full context"
    )
    p.add_argument(
        "--documents", type=int, default=None, help="doc_loss: at most this many held-out documents"
    )
    p.add_argument(
        "--chat",
        choices=("auto", "on", "off"),
        default="auto",
        help="chat template (instruct) or base format with the answer prefix",
    )
    p.add_argument(
        "--backend", choices=("hf", "vllm"), default="hf", help="transformers, or vLLM when installed"
    )
    p.add_argument("--device", default="auto", help="hf: auto (CUDA if present), cuda or cpu")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), bf16, fp16 or fp32")
    p.add_argument(
        "--out", default="runs/eval", help="result folder (resumed if it holds the same evaluation)"
    )
    p.add_argument("--fresh", action="store_true", help="discard results already in --out and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), help="show two result folders side by side and exit"
    )
    p.set_defaults(func=main)
    return p


def run(args: argparse.Namespace) -> int:
    from evaluation import report

    if args.compare:
        a, b = (report.load_results(folder) for folder in args.compare)
        print(report.compare_markdown(a, b, *args.compare), end="")
        return 0
    if not args.model:
        raise EvalUsageError("--model is required (an HF folder or hub id), unless you --compare two folders")
    require_train_extra("prolong-data eval", ("torch", "transformers"))
    from evaluation.backends import load_backend
    from evaluation.runner import EvalSettings, run_evaluation
    from prolong_data.path_safety import UnsafeOutputError, check_output_apart

    try:  # a local model folder and the held-out documents; a hub id names no local path
        check_output_apart(args.out, [p for p in (args.model, args.heldout) if Path(p).exists()])
    except UnsafeOutputError as error:
        raise EvalUsageError(str(error)) from None

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    lengths = parse_lengths(args.lengths)
    settings = EvalSettings(
        model=args.model,
        tasks=tasks,
        lengths=lengths,
        samples=args.samples,
        seed=args.seed,
        depths=args.depths,
        heldout=args.heldout,
        window=args.window,
        documents=args.documents,
        backend=args.backend,
    )  # validates before the model loads
    if settings_need_heldout(tasks) and not Path(args.heldout).is_dir():
        raise EvalUsageError(
            f"held-out folder {args.heldout} does not exist; pass --heldout DIR (long .txt/.txt.gz/.jsonl "
            "documents the model was not trained on)"
        )
    backend = load_backend(
        args.backend, args.model, device=args.device, dtype=args.dtype, max_length=max(lengths) + 128
    )
    settings.chat = resolve_chat(args.chat, backend.tokenizer, args.model)
    settings.extra = {"chat_mode": args.chat}
    summary = run_evaluation(settings, backend, args.out, fresh=args.fresh, progress=not args.no_progress)
    print(report.results_markdown(summary), end="")
    print(f"\nresults in {args.out}: results.json, results.md, prompts.jsonl, plots")
    return 0


def settings_need_heldout(tasks) -> bool:
    """Whether any task reads the held-out documents (needles' haystack, doc_loss)."""
    from evaluation.tasks import DOC_LOSS, RECALL_TASKS

    return any(t == DOC_LOSS or (t in RECALL_TASKS and RECALL_TASKS[t].needs_haystack) for t in tasks)


def main(args: argparse.Namespace) -> int:
    """Entry point of ``prolong-data eval``: usage errors print one line and exit with status 2;
    Ctrl-C or SIGTERM stop it (exit 130 / 143) and the same command resumes."""
    from prolong_data.signals import stop_on_signals

    try:
        with stop_on_signals("eval"):
            return run(args)
    except (EvalUsageError, TrainExtraMissing) as error:
        print(f"prolong-data eval: error: {error}", file=sys.stderr)
        return 2

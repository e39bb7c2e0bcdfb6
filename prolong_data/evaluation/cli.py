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

from prolong_data.evaluation import report
from prolong_data.evaluation.backends import load_backend
from prolong_data.evaluation.datadir import check_files
from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.evaluation.haystack import DEFAULT_HELDOUT
from prolong_data.evaluation.runner import EvalSettings, run_evaluation, settings_need_heldout
from prolong_data.evaluation.tasks import PROTOCOL_DEFAULTS, PROTOCOL_TASKS, protocol_tasks
from prolong_data.extras import TrainExtraMissing, require_train_extra
from prolong_data.path_safety import UnsafeOutputError, check_output_apart
from prolong_data.signals import stop_on_signals


def parse_lengths(text: str) -> tuple[int, ...]:
    """``"8192,16K,128k"`` -> ``(8192, 16384, 131072)``."""
    lengths = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)([kK]?)", part)
        if not match:
            raise EvalUsageError(f"--lengths: {part!r} is not a token count (write 8192 or 8K)")
        lengths.append(int(match[1]) * (1024 if match[2] else 1))
    return tuple(lengths)


def resolve_chat(mode: str, tokenizer) -> bool:
    """Whether prompts go through the chat template: ``on``/``off`` as said, ``auto`` when the model's
    tokenizer config carries a chat template (an instruct model). The model's path plays no part."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if mode == "on" and not has_template:
        raise EvalUsageError(
            "--chat on, but the model's tokenizer has no chat template; use --chat off (base format)"
        )
    return has_template if mode == "auto" else mode == "on"


def check_out_folder(out: str) -> None:
    """``--out`` must be a folder (or not exist yet), with no file standing where a folder must go."""
    path = Path(out)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise EvalUsageError(
                f"--out {out}: {part} is a file, not a folder; pass a folder for the results"
            )


def check_lengths_fit(lengths: tuple[int, ...], max_positions: int | None, model: str) -> None:
    """Every length (prompt plus generation budget) within the model's ``max_position_embeddings``."""
    too_long = [n for n in lengths if max_positions is not None and n > max_positions]
    if too_long:
        raise EvalUsageError(
            f"--lengths {','.join(map(str, too_long))} exceed the {max_positions:,} positions of {model} "
            "(max_position_embeddings in its config.json); pass shorter --lengths or a model trained "
            "or RoPE-scaled for them"
        )


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
        "--protocol",
        choices=tuple(PROTOCOL_TASKS),
        default="default",
        help="default: ours (fast, any length); helmet: HELMET's recall category (json_kv, niah_mk_2, "
        "niah_mk_3, niah_mv; base format, 100 samples); ruler: RULER's niah_multiquery, vt, cwe, fwe",
    )
    p.add_argument(
        "--tasks",
        default=None,
        help="comma-separated (default: all of the protocol's): "
        + "; ".join(f"{p}: {', '.join(protocol_tasks(p))}" for p in PROTOCOL_TASKS),
    )
    p.add_argument(
        "--lengths",
        default="8192,16384,32768,65536",
        help="lengths in the model's tokens (8192 or 8K): prompt plus generation budget",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="examples per recall task and length (default 10; --protocol helmet or ruler: 100)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every generated example")
    p.add_argument(
        "--depths", type=int, default=5, help="rows of the depth heatmap (depths are sampled, stratified)"
    )
    p.add_argument(
        "--heldout",
        default=str(DEFAULT_HELDOUT),
        help="folder of held-out long documents (.txt[.gz], .jsonl[.gz])",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="--protocol helmet or ruler: evaluate on the anchor's released files in this folder "
        "(HELMET's data/, or RULER's {root}/{model}/synthetic) instead of generated examples",
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
        help="chat template (instruct) or base format with the answer prefix; auto: the chat template "
        "when the model's tokenizer config has one (--protocol helmet: base format, as HELMET's recall)",
    )
    p.add_argument(
        "--backend", choices=("hf", "vllm"), default="hf", help="transformers, or vLLM when installed"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="prompts generated together, sorted by length (default: hf 1, vllm 256: vLLM batches "
        "them within its memory)",
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
    if args.compare:
        a, b = (report.load_results(folder) for folder in args.compare)
        print(report.compare_markdown(a, b, *args.compare), end="")
        return 0
    if not args.model:
        raise EvalUsageError("--model is required (an HF folder or hub id), unless you --compare two folders")
    batch_size = args.batch_size if args.batch_size is not None else (256 if args.backend == "vllm" else 1)
    if batch_size < 1:
        raise EvalUsageError("--batch-size must be at least 1")
    require_train_extra("prolong-data eval", ("torch", "transformers"))
    check_out_folder(args.out)
    from prolong_data.evaluation.backends.hf import load_tokenizer, model_max_positions

    try:  # a local model folder and the held-out documents; a hub id names no local path
        check_output_apart(args.out, [p for p in (args.model, args.heldout) if Path(p).exists()])
    except UnsafeOutputError as error:
        raise EvalUsageError(str(error)) from None

    defaults = PROTOCOL_DEFAULTS[args.protocol]
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip()) if args.tasks else defaults["tasks"]
    lengths = parse_lengths(args.lengths)
    settings = EvalSettings(
        model=args.model,
        tasks=tasks,
        lengths=lengths,
        samples=args.samples if args.samples is not None else defaults["samples"],
        seed=args.seed,
        depths=args.depths,
        heldout=args.heldout,
        window=args.window,
        documents=args.documents,
        backend=args.backend,
        protocol=args.protocol,
        data_dir=args.data_dir,
    )  # validates before the model loads
    if settings_need_heldout(args.protocol, tasks, args.data_dir) and not Path(args.heldout).is_dir():
        raise EvalUsageError(
            f"held-out folder {args.heldout} does not exist; pass --heldout DIR (long .txt/.txt.gz/.jsonl "
            "documents the model was not trained on)"
        )
    if args.data_dir is not None:
        check_files(args.protocol, args.data_dir, settings.tasks, settings.lengths)
    base_only = args.protocol == "helmet" or args.data_dir is not None  # the anchors' base format
    chat_mode = "off" if base_only and args.chat == "auto" else args.chat
    settings.chat = resolve_chat(chat_mode, load_tokenizer(args.model))
    check_lengths_fit(settings.lengths, model_max_positions(args.model), args.model)
    backend = load_backend(
        args.backend, args.model, device=args.device, dtype=args.dtype, max_length=max(lengths)
    )
    settings.extra = {"chat_mode": args.chat}
    summary = run_evaluation(
        settings, backend, args.out, fresh=args.fresh, progress=not args.no_progress, batch_size=batch_size
    )
    print(report.results_markdown(summary), end="")
    print(f"\nresults in {args.out}: results.json, results.md, prompts.jsonl, plots")
    return 0


def main(args: argparse.Namespace) -> int:
    """Entry point of ``prolong-data eval``: usage errors print one line and exit with status 2;
    Ctrl-C or SIGTERM stop it (exit 130 / 143) and the same command resumes."""
    try:
        with stop_on_signals("eval"):
            return run(args)
    except (EvalUsageError, TrainExtraMissing) as error:
        print(f"prolong-data eval: error: {error}", file=sys.stderr)
        return 2

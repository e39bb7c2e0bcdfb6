"""`prolong-data shards`: build a recipe's shards, mixture.json and reports.

    prolong-data shards --recipe demo --out data/shards/demo [--corpus PATH]
        [--tasks N] [--workers N] [--executor local|slurm|ray] [--cpus|--mem-gb|--time [PASS=]V]
        [--slurm-partition P --slurm-time T ...] [--ray-address A ...]
        [--long-share 0.6] [--proportion DOMAIN=P ...] [--token-budget N] [--max-repeat X]
        [--mixture-only [--mixture-file NAME]] [--fresh] [--no-report] [--verbose]
        [--FIELD=VALUE ...]

Any recipe field can be overridden with a dotted flag: `--seq_len=32768`,
`--domains.book-65536.pack.chunk_len=32768`, `--domains.0.max_tasks=1` (a list item by its
position or its `name`). Values are read as YAML; the recipe is validated after all overrides.

Run the same command again after a crash or a kill: finished tasks are skipped and the shards
come out identical to an uninterrupted build; finished tasks whose outputs were damaged since are
run again. Exit status: 0 built; 1 a task failed or the disk is full (the message or the task's
log says why; rerun to resume); 2 a user error (the message says what to fix; nothing in --out
was changed); 130 / 143 stopped by Ctrl-C / SIGTERM (rerun to resume). docs/guarantees.md has
the details.
A live display shows each pass's progress; the tasks' log lines and stats go to
OUT/.build/logs/ (`--verbose` shows them here too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from pipelines.build import BuildError, BuildOptions, check_out_folder, run_build
from pipelines.executors import DEFAULT_EXECUTOR, executor_kind, executor_names
from pipelines.finalize import remix
from pipelines.recipe import load_recipe, recipe_names
from pipelines.resources import PASSES
from prolong_data.build_lock import hold_lock
from prolong_data.config import parse_overrides
from prolong_data.disk_space import is_out_of_space, out_of_space_message
from prolong_data.layout import MIXTURE, BuildLayout
from prolong_data.signals import stop_on_signals
from prolong_data.sources import SourcePathError


def _proportion(text: str) -> tuple[str, float]:
    domain, sep, value = text.partition("=")
    try:
        if not sep or not domain:
            raise ValueError
        return domain, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--proportion takes DOMAIN=SHARE, e.g. fineweb-edu=0.12, got {text!r}"
        ) from None


def _per_pass(flag: str, example: str):
    """The parser of a per-pass flag: `[PASS=]VALUE`, PASS one of read, build, finalize (none: all)."""

    def parse(text: str) -> tuple[tuple[str, ...], str]:
        name, sep, value = text.rpartition("=")
        if not sep:
            return PASSES, value
        if name not in PASSES:
            raise argparse.ArgumentTypeError(
                f"{flag} takes [PASS=]VALUE with PASS one of {', '.join(PASSES)}, e.g. {example}, got {text!r}"
            )
        return (name,), value

    return parse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `shards` command on the `prolong-data` sub-command parser."""
    p = subparsers.add_parser(
        "shards",
        help=f"build a recipe ({', '.join(recipe_names())}, or a YAML file) into MDS shards and mixture.json",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # an unknown flag is a recipe override, never a prefix of a known one
    )
    p.add_argument(
        "--recipe",
        required=True,
        help=f"a shipped recipe ({', '.join(recipe_names())}) or a recipe YAML file",
    )
    p.add_argument("--out", required=True, help="output folder (domain folders, mixture.json, report/)")
    p.add_argument("--corpus", default=None, help="folder substituted for {corpus} in the recipe")
    p.add_argument("--tasks", type=int, default=None, help="tasks per domain (default: the recipe's)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="tasks at the same time (default: CPU count; slurm: no limit)",
    )
    p.add_argument(
        "--executor",
        choices=executor_names(),
        default=DEFAULT_EXECUTOR,
        help="where the tasks run: "
        + "; ".join(f"{name}: {executor_kind(name).help}" for name in executor_names()),
    )
    p.add_argument("--tokenizer", default=None, help="override the recipe's tokenizer")
    p.add_argument("--long-share", type=float, default=None, help="share of the long group (e.g. 0.6)")
    p.add_argument(
        "--proportion",
        type=_proportion,
        action="append",
        default=[],
        metavar="DOMAIN=P",
        help="set a domain's proportion; the rest of its group is rescaled (repeatable)",
    )
    p.add_argument("--token-budget", type=int, default=None, help="training tokens of the stage")
    p.add_argument("--max-repeat", type=float, default=None, help="warn when a domain repeats more often")
    p.add_argument(
        "--mixture-only", action="store_true", help="only rewrite the mixture and budget of built shards"
    )
    p.add_argument("--mixture-file", default=MIXTURE, help="name of the mixture file written in --out")
    p.add_argument("--fresh", action="store_true", help="delete a previous build in --out first")
    p.add_argument("--no-report", action="store_true", help="skip report/report.md and the PNG plots")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show datatrove's log lines and per-task stats here (always in OUT/.build/logs/)",
    )
    res = p.add_argument_group(
        "resources per task (slurm, ray; PASS is read, build or finalize, none: every pass)"
    )
    for flag, example, metavar, meaning in (
        ("--cpus", "build=2", "[PASS=]N", "CPUs per task (default 1)"),
        ("--mem-gb", "build=24", "[PASS=]GB", "memory per task (default: 2; build: more for longer seq_len)"),
        ("--time", "build=12:00:00", "[PASS=]LIMIT", "time limit per task (default: --slurm-time)"),
    ):
        res.add_argument(
            flag, type=_per_pass(flag, example), action="append", default=[], metavar=metavar, help=meaning
        )
    for name in executor_names():
        executor_kind(name).add_arguments(p)
    p.set_defaults(func=run, takes_overrides=True)
    return p


NAMED_OVERRIDES = ("long_share", "token_budget", "max_repeat", "tokenizer")
"""Recipe fields that have their own flag (`--long-share`, ...)."""


def resolve_recipe(args: argparse.Namespace):
    """The recipe of the command, with every override applied and paths expanded."""
    overrides = parse_overrides(getattr(args, "overrides", None) or [])
    for name in NAMED_OVERRIDES:
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    _merge_into(overrides, {"executor": executor_overrides(args)})
    recipe = load_recipe(args.recipe, overrides)
    if args.proportion:
        recipe = recipe.with_proportions(dict(args.proportion))
    return recipe.resolved(args.corpus)


def executor_overrides(args: argparse.Namespace) -> dict:
    """The recipe's `executor:` block as the engine and resource flags set it."""
    settings: dict = {}
    for field, read in (("cpus", yaml.safe_load), ("mem_gb", yaml.safe_load), ("time", str)):
        for passes, value in getattr(args, field):
            for name in passes:
                settings.setdefault(name, {})[field] = read(value)
    for name in executor_names():
        settings.update(executor_kind(name).settings_overrides(args))
    return settings


def _merge_into(tree: dict, more: dict) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge_into(tree[key], value)
        elif not (isinstance(value, dict) and not value):
            tree[key] = value


def build_options(args: argparse.Namespace):
    if "://" in args.out:
        raise ValueError(
            f"--out {args.out}: output to a URL is not supported; build into a folder on a file system the "
            "workers share, then copy it to object storage (docs/scale-out.md)"
        )
    return BuildOptions(
        out=Path(args.out),
        tasks=args.tasks,
        workers=args.workers,
        executor=args.executor,
        report=not args.no_report,
        verbose=args.verbose,
    )


def run(args: argparse.Namespace) -> int:
    with stop_on_signals("shards"):
        return run_checked(args)


def remix_locked(recipe, out: Path, mixture_file: str) -> None:
    """`--mixture-only`: rewrite the mixture of the build in `out`, holding its lock."""
    check_out_folder(out)
    if not out.is_dir():  # nothing to remix: remix says so, and no folder is created
        remix(recipe, out, mixture_file)
        return
    with hold_lock(BuildLayout(out).lock):
        remix(recipe, out, mixture_file)


def run_command(args: argparse.Namespace) -> int:
    """Build (or remix) as `args` say; a full disk is one line and exit status 1."""
    try:
        recipe = resolve_recipe(args)
        options = build_options(args)
        if args.mixture_only:
            remix_locked(recipe, options.out, args.mixture_file)
            return 0
        if args.mixture_file != MIXTURE:
            raise ValueError("--mixture-file goes with --mixture-only (a build always writes mixture.json)")
        run_build(recipe, options, fresh=args.fresh)
    except Exception as err:
        if not is_out_of_space(err):
            raise
        # files were written: not a user error; the same command resumes once there is space
        print(f"shards: {out_of_space_message(err, args.out)}", file=sys.stderr)
        return 1
    return 0


def run_checked(args: argparse.Namespace) -> int:
    """`run_command` with every error turned into one line and an exit status (see the module docstring)."""
    try:
        return run_command(args)
    except (ValueError, SourcePathError, BuildError, OSError) as err:
        # every error a user can cause: one message saying what to fix, no traceback
        print(f"shards: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a task failed (its log says why); a rerun resumes
        print(f"shards: {err}", file=sys.stderr)
        return 1

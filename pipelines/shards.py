"""`prolong-data shards`: build a recipe's shards, mixture.json and reports.

    prolong-data shards --recipe demo --out data/shards/demo [--corpus PATH]
        [--tasks N] [--workers N] [--executor local|slurm|ray]
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
import os
import sys
from pathlib import Path

from pipelines.build import BuildError, BuildOptions, check_out_folder, run_build
from pipelines.finalize import remix
from pipelines.recipe import load_recipe, recipe_names
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


def _sbatch_args(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--slurm-sbatch takes KEY=VALUE, e.g. account=myproj, got {text!r}")
    return key, value


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
    p.add_argument("--workers", type=int, default=None, help="tasks at the same time (default: CPU count)")
    p.add_argument(
        "--executor",
        choices=("local", "slurm", "ray"),
        default="local",
        help="where the tasks run: local processes (default), Slurm array jobs, or a Ray cluster",
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
    slurm = p.add_argument_group("slurm (--executor slurm)")
    slurm.add_argument("--slurm-partition", default=None)
    slurm.add_argument("--slurm-time", default=None, help="time limit per job, e.g. 04:00:00")
    slurm.add_argument("--slurm-cpus-per-task", type=int, default=1)
    slurm.add_argument("--slurm-mem-per-cpu-gb", type=int, default=2)
    slurm.add_argument("--slurm-venv", default=None, help="virtualenv to activate in the jobs")
    slurm.add_argument("--slurm-sbatch", type=_sbatch_args, action="append", default=[], metavar="KEY=VALUE")
    ray = p.add_argument_group("ray (--executor ray)")
    ray.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    ray.add_argument("--ray-cpus-per-task", type=int, default=1)
    ray.add_argument("--ray-mem-per-cpu-gb", type=float, default=2.0)
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
    recipe = load_recipe(args.recipe, overrides)
    if args.proportion:
        recipe = recipe.with_proportions(dict(args.proportion))
    return recipe.resolved(args.corpus)


def build_options(args: argparse.Namespace):
    slurm = {
        "partition": args.slurm_partition,
        "time": args.slurm_time,
        "cpus_per_task": args.slurm_cpus_per_task,
        "mem_per_cpu_gb": args.slurm_mem_per_cpu_gb,
    }
    if args.slurm_venv:
        slurm["venv_path"] = args.slurm_venv
    if args.slurm_sbatch:
        slurm["sbatch_args"] = dict(args.slurm_sbatch)
    ray = {"cpus_per_task": args.ray_cpus_per_task, "mem_per_cpu_gb": args.ray_mem_per_cpu_gb}
    if args.ray_address:
        ray["address"] = args.ray_address
    return BuildOptions(
        out=Path(args.out),
        tasks=args.tasks,
        workers=args.workers if args.workers is not None else os.cpu_count() or 1,
        executor=args.executor,
        slurm=slurm,
        ray=ray,
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

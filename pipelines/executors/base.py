"""Executors: where a pass's tasks run, one class per executor, registered by its `name`.

An executor is one module in `pipelines/executors/` holding a subclass of `Executor` that says
which command-line flags it adds to `prolong-data shards`, how they become the recipe's
`executor:` block, what it checks before anything is submitted or written, and how it makes the
datatrove executor of a pass::

    @register_executor
    class Local(Executor):
        name = "local"
        help = "processes on this machine"

        def make(self, options, pipeline, tasks, logging_dir, name, *, depends, log_file, resources, settings):
            return LocalPipelineExecutor(pipeline, tasks=tasks, logging_dir=str(logging_dir), ...)

Every module of this package is imported the first time an executor is looked up, so a new
module registers itself (and its flags, and its `--executor` choice) with no other file to edit.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import ClassVar

from pipelines.resources import ExecutorConfig, PassResources, default_resources
from prolong_data.registry import Registry

DEFAULT_EXECUTOR = "local"
"""The executor of a build that names none."""

_REGISTRY = Registry("executor", "pipelines.executors")


class Executor:
    """Where the tasks of each pass run. Subclasses are the executors; they set `name` and `help`."""

    name: ClassVar[str] = ""
    """The `--executor` value that picks this executor."""
    help: ClassVar[str] = ""
    """What `--executor NAME` means, in a few words (shown by `prolong-data shards --help`)."""
    submits_all_passes: ClassVar[bool] = False
    """The executor queues every pass at once, each depending on the one before, and returns
    before they run (the build then prints where the jobs went instead of finalizing)."""
    forks_workers: ClassVar[bool] = False
    """Workers start from this process (forked on Linux): the build loads the tokenizer first, so
    they inherit it."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this executor's flags to the `shards` command (an argument group of its own)."""

    def settings_overrides(self, args: argparse.Namespace) -> dict:
        """The part of the recipe's `executor:` block that this executor's flags set."""
        return {}

    def check(self, options, settings: ExecutorConfig) -> None:
        """Raise ValueError (saying which flag to give) when the executor cannot start as asked;
        run once, before anything is submitted or written."""

    def make(
        self,
        options,
        pipeline: list,
        tasks: int,
        logging_dir: Path,
        name: str,
        *,
        depends,
        log_file: Path | None,
        resources: PassResources,
        settings: ExecutorConfig,
    ):
        """The datatrove executor running `pipeline` of pass `name` on `tasks` tasks, each given
        `resources`, logging to `logging_dir` (and its own lines to `log_file`), after `depends`."""
        raise NotImplementedError


def register_executor(cls: type[Executor]) -> type[Executor]:
    """Class decorator: make `cls` the executor of `--executor {cls.name}`."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a `name` (its --executor value) to be registered")
    return _REGISTRY.add(cls.name, cls)


def executor_names() -> list[str]:
    """The registered executor names, sorted."""
    return _REGISTRY.names()


def executor_kind(name: str) -> Executor:
    """The executor registered as `name`; `ValueError` naming the executors if there is none."""
    cls = _REGISTRY.find(name)
    if cls is None:
        raise ValueError(f"executor must be one of {', '.join(sorted(_REGISTRY))}, got {name!r}")
    return cls()


def check_executor_options(options, settings: ExecutorConfig | None = None) -> None:
    """Raise ValueError (saying which flag to give) when the executor cannot start as asked: run
    before anything is submitted or written."""
    executor_kind(options.executor).check(options, settings or ExecutorConfig())


def make_executor(
    options,
    pipeline: list,
    tasks: int,
    logging_dir: Path,
    name: str,
    depends=None,
    log_file: Path | None = None,
    settings: ExecutorConfig | None = None,
    seq_len: int = 0,
):
    """A datatrove executor running `pipeline` on `tasks` tasks, logging to `logging_dir`;
    `check_executor_options(options, settings)` has passed.

    Completion markers in `logging_dir/completions/` make reruns skip finished tasks. Tasks get
    the CPUs, memory and time of pass `name` (`settings`, else the defaults of a recipe of
    `seq_len`) and the executor's own `settings`.
    """
    settings = settings or ExecutorConfig()
    resources = settings.resources(name, default_resources(name, seq_len))
    return executor_kind(options.executor).make(
        options,
        pipeline,
        tasks,
        logging_dir,
        name,
        depends=depends,
        log_file=log_file,
        resources=resources,
        settings=settings,
    )


def local_workers(options, tasks: int) -> int:
    """Tasks at once on this machine (local) or in Ray: `--workers`, else one per CPU here."""
    return min(options.workers or os.cpu_count() or 1, tasks)


def key_value(flag: str, example: str):
    """The parser of a repeatable `KEY=VALUE` flag (`--slurm-sbatch constraint=avx2`)."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{flag} takes KEY=VALUE, e.g. {example}, got {text!r}")
        return key, value

    return parse


def require_complete(executor, name: str) -> None:
    """Raise when some task of a pass did not finish (the Ray executor only logs that)."""
    missing = executor.get_incomplete_ranks(skip_completed=True)
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise RuntimeError(
            f"pass {name}: tasks {shown} did not complete; see {executor.logging_dir.path}/logs, fix the cause and "
            "run the same command again (finished tasks are skipped)"
        )

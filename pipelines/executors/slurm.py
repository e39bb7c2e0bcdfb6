"""`--executor slurm`: each pass is a Slurm array job, submitted at once after the one before."""

from __future__ import annotations

import math
from pathlib import Path

from datatrove.executor import SlurmPipelineExecutor

from pipelines.executors.base import Executor, key_value, register_executor
from pipelines.resources import PASSES, SlurmSettings


def venv_activate(venv: str) -> str:
    """The `activate` script of a virtualenv given by its folder or the script itself; ValueError
    when neither exists (the jobs would fail at their first line)."""
    path = Path(venv).expanduser()
    script = path / "bin" / "activate" if path.is_dir() else path
    if not script.is_file():
        raise ValueError(
            f"--slurm-venv {venv}: no virtualenv there (no bin/activate); give a virtualenv folder on a file "
            "system the nodes share"
        )
    return str(script.resolve())


class SlurmExecutor(SlurmPipelineExecutor):
    """datatrove's Slurm executor with the memory of a task in MB, and the user's sbatch options
    applied after datatrove's own (`qos`, `mem-per-cpu`, `requeue`, ...) so that they always win.

    `extra_sbatch` holds the `account`, `qos` and other options of `SlurmSettings`; `--mem` given
    there replaces `--mem-per-cpu` (sbatch refuses both)."""

    def __init__(self, *args, mem_per_cpu_mb: int, extra_sbatch: dict, **kwargs):
        super().__init__(*args, qos="", **kwargs)
        self.mem_per_cpu_mb, self.extra_sbatch = mem_per_cpu_mb, dict(extra_sbatch)

    def get_sbatch_args(self, max_array: int = 1) -> dict:
        args = super().get_sbatch_args(max_array)
        args["mem-per-cpu"] = f"{self.mem_per_cpu_mb}M"
        if "mem" in self.extra_sbatch:
            args.pop("mem-per-cpu")
        args.update(self.extra_sbatch)
        return args


def slurm_sbatch_options(slurm: SlurmSettings) -> dict:
    """The sbatch options of `slurm` beyond partition and time, in the order they are applied."""
    extra = {key: getattr(slurm, key) for key in ("qos", "account") if getattr(slurm, key)}
    extra.update({key: "" if value is None else str(value) for key, value in slurm.sbatch.items()})
    return extra


SLURM_FLAGS = (
    ("partition", "--slurm-partition", "partition of every job (required)"),
    ("time", "--slurm-time", "time limit of each job of every pass, e.g. 04:00:00"),
    ("qos", "--slurm-qos", "quality of service (default: the cluster's)"),
    ("account", "--slurm-account", "account the jobs are charged to"),
    ("venv", "--slurm-venv", "virtualenv folder the jobs activate"),
    ("condaenv", "--slurm-conda", "conda environment the jobs activate"),
    ("env_command", "--slurm-env-command", "shell command the jobs run first"),
)
"""The `executor.slurm` fields that have a flag of their own: (field, flag, help)."""


@register_executor
class Slurm(Executor):
    """Slurm array jobs, one per pass, each depending on the one before; the build returns once
    they are submitted. Tasks get the CPUs, memory and time of their pass and `executor.slurm`."""

    name = "slurm"
    help = "Slurm array jobs (submitted at once; the build returns)"
    submits_all_passes = True

    def add_arguments(self, parser):
        group = parser.add_argument_group("slurm (--executor slurm)")
        for _, flag, meaning in SLURM_FLAGS:
            group.add_argument(flag, default=None, help=meaning)
        group.add_argument(
            "--slurm-sbatch",
            type=key_value("--slurm-sbatch", "constraint=avx2"),
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="any sbatch option (repeatable); it wins over the executor's own",
        )
        group.add_argument(
            "--slurm-srun",
            type=key_value("--slurm-srun", "cpu-bind=cores"),
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="an option of the srun that starts each task (repeatable)",
        )

    def settings_overrides(self, args):
        slurm = {field: getattr(args, _dest(flag)) for field, flag, _ in SLURM_FLAGS}
        slurm = {k: v for k, v in slurm.items() if v is not None}
        if args.slurm_sbatch:
            slurm["sbatch"] = dict(args.slurm_sbatch)
        if args.slurm_srun:
            slurm["srun"] = dict(args.slurm_srun)
        return {"slurm": slurm} if slurm else {}

    def check(self, options, settings):
        slurm = settings.slurm
        missing = ["--slurm-partition"] if not slurm.partition else []
        untimed = [name for name in PASSES if not (getattr(settings, name).time or slurm.time)]
        if untimed:
            missing.append("--slurm-time (or --time PASS=LIMIT for " + ", ".join(untimed) + ")")
        if missing:
            raise ValueError(f"--executor slurm needs {' and '.join(missing)}")
        if slurm.venv is not None:
            venv_activate(slurm.venv)

    def make(self, options, pipeline, tasks, logging_dir, name, *, depends, log_file, resources, settings):
        slurm = settings.slurm
        return SlurmExecutor(
            pipeline,
            tasks=tasks,
            workers=options.workers or -1,  # unset: as many at once as the cluster gives
            job_name=f"prolong-{name}",
            logging_dir=str(logging_dir),
            depends=depends,
            partition=slurm.partition,
            time=resources.time,
            cpus_per_task=resources.cpus,
            mem_per_cpu_mb=math.ceil(resources.mem_gb * 1024 / resources.cpus),
            extra_sbatch=slurm_sbatch_options(slurm),
            srun_args=dict(slurm.srun) or None,
            venv_path=None if slurm.venv is None else venv_activate(slurm.venv),
            condaenv=slurm.condaenv,
            env_command=slurm.env_command,
            max_array_size=slurm.max_array_size,
        )


def _dest(flag: str) -> str:
    """argparse's attribute name of `flag` (`--slurm-env-command` -> `slurm_env_command`)."""
    return flag.lstrip("-").replace("-", "_")

"""The datatrove executor of each pass: local processes, Slurm array jobs, or Ray tasks."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor, RayPipelineExecutor, SlurmPipelineExecutor
from datatrove.utils.logging import logger, setup_default_logger

from pipelines.resources import (
    PASSES,
    ExecutorConfig,
    RaySettings,
    SlurmSettings,
    check_ray,
    default_resources,
    time_seconds,
)

LOCAL_START_METHOD = "fork" if sys.platform == "linux" else "forkserver"
"""How the local executor starts workers: forked on Linux, so they inherit what this process has
loaded (the tokenizer above all); datatrove's fork server elsewhere (fork is unsafe on macOS)."""


LOG_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"
"""datatrove's own log line format (without its colours)."""


def route_logs(log_file: str | Path | None) -> None:
    """Send this process's loguru records at INFO and above to `log_file`, and only warnings and
    errors to the terminal (datatrove's default sends everything to the terminal)."""
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format=LOG_FORMAT, colorize=False)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        logger.add(str(log_file), level="INFO", format=LOG_FORMAT, mode="a", encoding="utf-8")


def restore_logs() -> None:
    """datatrove's default logging (everything to the terminal), as before `route_logs`."""
    setup_default_logger()


class QuietLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, its tasks' INFO lines and stats kept off the terminal.

    Each task still logs everything to `logging_dir/logs/task_NNNNN.log`. datatrove gives a
    console sink at INFO to the task of worker slot 0 and at ERROR to the others (`local_rank`
    serves only that purpose), so every task is started as a non-zero slot: errors still reach
    the terminal. After a task, datatrove puts its default (DEBUG) console sink back;
    `route_logs` replaces it again.
    """

    def __init__(self, *args, log_file: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_file = log_file

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        try:
            return super()._run_for_rank(rank, local_rank + 1, node_rank)
        finally:
            route_logs(self.log_file)


def check_executor_options(options, settings: ExecutorConfig | None = None) -> None:
    """Raise ValueError (saying which flag to give) when the executor cannot start as asked: run
    before anything is submitted or written."""
    settings = settings or ExecutorConfig()
    if options.executor == "slurm":
        slurm = settings.slurm
        missing = ["--slurm-partition"] if not slurm.partition else []
        untimed = [name for name in PASSES if not (getattr(settings, name).time or slurm.time)]
        if untimed:
            missing.append("--slurm-time (or --time PASS=LIMIT for " + ", ".join(untimed) + ")")
        if missing:
            raise ValueError(f"--executor slurm needs {' and '.join(missing)}")
        if slurm.venv is not None:
            venv_activate(slurm.venv)
    if options.executor == "ray":
        if importlib.util.find_spec("ray") is None:
            raise ValueError("--executor ray needs ray: pip install 'prolong-data[ray]'")
        check_ray(settings.ray)


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

    Completion markers in `logging_dir/completions/` make reruns skip finished tasks. Local
    workers start as `LOCAL_START_METHOD` says. Unless `options.verbose`, local tasks keep their
    INFO lines and stats to their log files, and the executor's own lines go to `log_file`.
    Slurm and Ray tasks get the CPUs, memory and time of pass `name` (`settings`, else the
    defaults of a recipe of `seq_len`) and the engine's `settings`.
    """
    settings = settings or ExecutorConfig()
    resources = settings.resources(name, default_resources(name, seq_len))
    if options.executor == "local":
        kwargs = {}
        executor_class = LocalPipelineExecutor
        if not options.verbose:
            executor_class = QuietLocalExecutor
            kwargs["log_file"] = None if log_file is None else str(log_file)
        return executor_class(
            pipeline,
            tasks=tasks,
            workers=_local_workers(options, tasks),
            logging_dir=str(logging_dir),
            depends=depends,
            start_method=LOCAL_START_METHOD,
            **kwargs,
        )
    if options.executor == "slurm":
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
    _init_ray(settings.ray)
    return RayPipelineExecutor(
        pipeline,
        tasks=tasks,
        workers=_local_workers(options, tasks),
        logging_dir=str(logging_dir),
        cpus_per_task=resources.cpus,
        mem_per_cpu_gb=resources.mem_gb / resources.cpus,
        ray_remote_kwargs=dict(settings.ray.remote) or None,
        time=None if resources.time is None else time_seconds(resources.time),
    )


def _local_workers(options, tasks: int) -> int:
    """Tasks at once on this machine (local) or in Ray: `--workers`, else one per CPU here."""
    return min(options.workers or os.cpu_count() or 1, tasks)


def _init_ray(ray_settings: RaySettings) -> None:
    import ray  # present: check_executor_options ran before the build started

    if not ray.is_initialized():
        ray.init(
            address=ray_settings.address,
            runtime_env=dict(ray_settings.runtime_env) or None,
            include_dashboard=False,
            log_to_driver=False,
        )


def require_complete(executor, name: str) -> None:
    """Raise when some task of a pass did not finish (the Ray executor only logs that)."""
    missing = executor.get_incomplete_ranks(skip_completed=True)
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise RuntimeError(
            f"pass {name}: tasks {shown} did not complete; see {executor.logging_dir.path}/logs, fix the cause and "
            "run the same command again (finished tasks are skipped)"
        )

"""The datatrove executor of each pass: local processes, Slurm array jobs, or Ray tasks."""

from __future__ import annotations

import sys
from pathlib import Path

LOCAL_START_METHOD = "fork" if sys.platform == "linux" else "forkserver"
"""How the local executor starts workers: forked on Linux, so they inherit what this process has
loaded (the tokenizer above all); datatrove's fork server elsewhere (fork is unsafe on macOS)."""


def check_executor_options(options) -> None:
    """Raise ValueError (saying which flag to give) when the executor cannot start as asked."""
    if options.executor == "slurm":
        missing = [k for k in ("partition", "time") if not options.slurm.get(k)]
        if missing:
            raise ValueError(f"--executor slurm needs {', '.join('--slurm-' + m for m in missing)}")
    if options.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ValueError("--executor ray needs ray: pip install 'prolong-data[ray]'")


def make_executor(options, pipeline: list, tasks: int, logging_dir: Path, name: str, depends=None):
    """A datatrove executor running `pipeline` on `tasks` tasks, logging to `logging_dir`.

    Completion markers in `logging_dir/completions/` make reruns skip finished tasks. Local
    workers start as `LOCAL_START_METHOD` says.
    """
    if options.executor == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(
            pipeline,
            tasks=tasks,
            workers=min(options.workers, tasks),
            logging_dir=str(logging_dir),
            depends=depends,
            start_method=LOCAL_START_METHOD,
        )
    if options.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        check_executor_options(options)
        slurm = dict(options.slurm)
        return SlurmPipelineExecutor(
            pipeline,
            tasks=tasks,
            workers=options.workers if options.workers > 1 else -1,
            job_name=f"prolong-{name}",
            logging_dir=str(logging_dir),
            depends=depends,
            **slurm,
        )
    from datatrove.executor import RayPipelineExecutor

    ray_options = dict(options.ray)
    address = ray_options.pop("address", None)
    _init_ray(address)
    return RayPipelineExecutor(
        pipeline,
        tasks=tasks,
        workers=min(options.workers, tasks),
        logging_dir=str(logging_dir),
        **ray_options,
    )


def _init_ray(address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs ray: pip install 'prolong-data[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)


def require_complete(executor, name: str) -> None:
    """Raise when some task of a pass did not finish (the Ray executor only logs that)."""
    missing = executor.get_incomplete_ranks(skip_completed=True)
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise RuntimeError(
            f"pass {name}: tasks {shown} did not complete; see {executor.logging_dir.path}/logs, fix the cause and "
            "run the same command again (finished tasks are skipped)"
        )

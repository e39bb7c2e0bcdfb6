"""The datatrove executor of each pass: local processes, Slurm array jobs, or Ray tasks."""

from __future__ import annotations

import sys
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.logging import logger, setup_default_logger

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
        terminal = sys.stderr
        sys.stderr = FirstLines(terminal)  # datatrove's console sink of the task writes here
        try:
            return super()._run_for_rank(rank, local_rank + 1, node_rank)
        finally:
            sys.stderr = terminal
            route_logs(self.log_file)


class FirstLines:
    """A task's terminal: the first line of each record (a failed task's error, without its
    traceback, which its log file keeps), and nothing of loguru's reports about a log file it
    cannot write (a full disk: the command's own message says so)."""

    def __init__(self, stream):
        self.stream = stream
        self.in_report = False

    def write(self, text: str) -> int:
        if text.startswith("--- Logging error"):
            self.in_report = True
        if not self.in_report and text.strip():
            self.stream.write(text.split("\n", 1)[0] + "\n")
        if text.startswith("--- End of logging error"):
            self.in_report = False
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self.stream, name)


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


def make_executor(
    options,
    pipeline: list,
    tasks: int,
    logging_dir: Path,
    name: str,
    depends=None,
    log_file: Path | None = None,
):
    """A datatrove executor running `pipeline` on `tasks` tasks, logging to `logging_dir`;
    `check_executor_options(options)` has passed.

    Completion markers in `logging_dir/completions/` make reruns skip finished tasks. Local
    workers start as `LOCAL_START_METHOD` says. Unless `options.verbose`, local tasks keep their
    INFO lines and stats to their log files, and the executor's own lines go to `log_file`.
    """
    if options.executor == "local":
        kwargs = {}
        executor_class = LocalPipelineExecutor
        if not options.verbose:
            executor_class = QuietLocalExecutor
            kwargs["log_file"] = None if log_file is None else str(log_file)
        return executor_class(
            pipeline,
            tasks=tasks,
            workers=min(options.workers, tasks),
            logging_dir=str(logging_dir),
            depends=depends,
            start_method=LOCAL_START_METHOD,
            **kwargs,
        )
    if options.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

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
    import ray  # present: check_executor_options ran before the build started

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

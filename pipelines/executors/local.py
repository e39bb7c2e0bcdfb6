"""`--executor local`: the tasks run as processes on this machine."""

from __future__ import annotations

import sys

from datatrove.executor import LocalPipelineExecutor

from pipelines.executors.base import Executor, local_workers, register_executor
from pipelines.executors.logs import route_logs

LOCAL_START_METHOD = "fork" if sys.platform == "linux" else "forkserver"
"""How the local executor starts workers: forked on Linux, so they inherit what this process has
loaded (the tokenizer above all); datatrove's fork server elsewhere (fork is unsafe on macOS)."""


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


@register_executor
class Local(Executor):
    """Processes on this machine, `--workers` at once (default: one per CPU).

    Workers start as `LOCAL_START_METHOD` says. Unless `options.verbose`, tasks keep their INFO
    lines and stats to their log files, and the executor's own lines go to `log_file`."""

    name = "local"
    help = "processes on this machine (the default)"
    forks_workers = True

    def make(self, options, pipeline, tasks, logging_dir, name, *, depends, log_file, resources, settings):
        kwargs = {}
        executor_class = LocalPipelineExecutor
        if not options.verbose:
            executor_class = QuietLocalExecutor
            kwargs["log_file"] = None if log_file is None else str(log_file)
        return executor_class(
            pipeline,
            tasks=tasks,
            workers=local_workers(options, tasks),
            logging_dir=str(logging_dir),
            depends=depends,
            start_method=LOCAL_START_METHOD,
            **kwargs,
        )

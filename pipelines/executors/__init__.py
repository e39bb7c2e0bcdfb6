"""The executors of a build (one module each, registered in `base`) and where their logs go."""

from pipelines.executors.base import (
    DEFAULT_EXECUTOR,
    Executor,
    check_executor_options,
    executor_kind,
    executor_names,
    make_executor,
    register_executor,
    require_complete,
)
from pipelines.executors.logs import LOG_FORMAT, restore_logs, route_logs

__all__ = [
    "DEFAULT_EXECUTOR",
    "LOG_FORMAT",
    "Executor",
    "check_executor_options",
    "executor_kind",
    "executor_names",
    "make_executor",
    "register_executor",
    "require_complete",
    "restore_logs",
    "route_logs",
]

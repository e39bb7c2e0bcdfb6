"""Where a build's log lines go: datatrove's to the log file, only warnings to the terminal."""

from __future__ import annotations

import sys
from pathlib import Path

from datatrove.utils.logging import logger, setup_default_logger

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

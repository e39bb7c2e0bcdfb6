"""Helpers of the signal tests: the processes of a session, and bounded waiting."""

from __future__ import annotations

import os
import time
from pathlib import Path

WAIT_SECONDS = 60
"""Upper bound on waiting for a process to reach a point or to end (a loaded machine is slow)."""


def session_processes(sid: int) -> list[int]:
    """The processes of session `sid` that still run (zombies have ended already)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        state, _ppid, _pgrp, session = stat[stat.rfind(b")") + 2 :].split()[:4]
        if int(session) == sid and state != b"Z":
            found.append(int(entry))
    return found


def wait_for(condition, what: str, seconds: float = WAIT_SECONDS):
    """The first true value of `condition()`, polled until `seconds` pass (then AssertionError)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")

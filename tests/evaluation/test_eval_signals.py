"""Ctrl-C and SIGTERM stop `prolong-data eval` cleanly, and the same command resumes.

A real eval of the tiny model in its own session gets SIGTERM after its first result: exit 143,
one line "stopped; run the same command to resume", no traceback, no process left; the same
command then completes the results, each prompt scored once, as an uninterrupted run scores it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from process_helpers import WAIT_SECONDS, session_processes, wait_for

from prolong_data.signals import RESUME_LINE

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def eval_command(model: Path, heldout: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "eval", "--model", str(model), "--heldout", str(heldout),
            "--tasks", "json_kv,niah_single", "--lengths", "512", "--samples", "3", "--depths", "3",
            "--out", str(out), "--seed", "7", "--chat", "off", "--no-progress"]  # fmt: skip


def results(out: Path) -> dict[str, tuple]:
    """prompt id -> (output, score) of results.jsonl; every id once."""
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)
    return {r["id"]: (r["output"], r["score"]) for r in rows}


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_sigterm_stops_eval_and_the_same_command_resumes(tiny_model_dir, heldout_dir, tmp_path):
    signum, status = (
        signal.SIGTERM,
        143,
    )  # Ctrl-C takes the same handler (tests/pipelines/test_hostile_signals.py)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = tmp_path / "eval"
    run = subprocess.Popen(
        eval_command(tiny_model_dir, heldout_dir, out),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: lines(out / "results.jsonl") >= 1 or run.poll() is not None, "a first result")
        assert run.poll() is None, "the evaluation ended before the signal"
        run.send_signal(signum)
        _stdout, stderr = run.communicate(timeout=WAIT_SECONDS)
        assert run.returncode == status, stderr
        assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == f"eval: {RESUME_LINE}"
        wait_for(lambda: not session_processes(run.pid), "the evaluation's processes to end")
    finally:
        if session_processes(run.pid):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    partial = results(out)
    resumed = subprocess.run(
        eval_command(tiny_model_dir, heldout_dir, out), cwd=REPO, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "reference"
    done = subprocess.run(
        eval_command(tiny_model_dir, heldout_dir, reference), cwd=REPO, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(partial) < len(results(reference))
    assert results(out) == results(reference)

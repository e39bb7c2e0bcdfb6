"""SIGTERM and Ctrl-C stop a training run at a step boundary, and the same command resumes.

A real CPU run (the tiny model on the toy shards) in its own session gets the signal after a few
steps. SIGTERM (a scheduler's preemption): exit 143, one line "stopped; run the same command to
resume", a complete checkpoint at the step it stopped after, no process left; the same command
then ends with the metrics of an uninterrupted run (every loss equal: the same arithmetic on
the same batches in the same order). Ctrl-C: exit 130 and no checkpoint beyond the configured ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_overrides
from process_helpers import WAIT_SECONDS, session_processes, wait_for

from prolong_data.signals import RESUME_LINE
from trainer.checkpoint import latest_checkpoint

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
STAGE1 = str(ROOT / "trainer" / "configs" / "stage1-64k.yaml")
STEPS = 40


def command(toy_shards: Path, out: Path) -> list[str]:
    settings = {"train.steps": STEPS, "checkpoint.every_steps": 1000, "checkpoint.export_hf": "false"}
    return [
        sys.executable,
        "-m",
        "trainer.train",
        "--config",
        STAGE1,
        *tiny_overrides(toy_shards, out, 64, **settings),
    ]


def losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def stop_after_some_steps(toy_shards: Path, out: Path, signum: int) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.Popen(
        command(toy_shards, out), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: lines(out / "metrics.jsonl") >= 3 or run.poll() is not None, "three steps")
        assert run.poll() is None, "the run ended before the signal"
        run.send_signal(signum)
        _stdout, stderr = run.communicate(timeout=WAIT_SECONDS)
        assert run.returncode == 128 + signum, stderr
        assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == f"train: {RESUME_LINE}"
        wait_for(lambda: not session_processes(run.pid), "the run's processes to end")
    finally:
        if session_processes(run.pid):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    return stderr


def resume(toy_shards: Path, out: Path) -> None:
    done = subprocess.run(
        command(toy_shards, out), cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_sigterm_checkpoints_at_the_step_and_the_run_resumes_to_the_same_losses(toy_shards, tmp_path):
    out = tmp_path / "run"
    stop_after_some_steps(toy_shards, out, signal.SIGTERM)
    stopped_at = max(losses(out))
    saved = latest_checkpoint(out / "checkpoints")
    assert saved is not None and saved.name == f"step-{stopped_at:08d}"
    resume(toy_shards, out)
    reference = tmp_path / "reference"
    resume(toy_shards, reference)
    assert losses(out) == losses(reference) and len(losses(out)) == STEPS


def test_ctrl_c_stops_without_a_checkpoint(toy_shards, tmp_path):
    out = tmp_path / "run"
    stop_after_some_steps(toy_shards, out, signal.SIGINT)
    assert latest_checkpoint(out / "checkpoints") is None


def test_an_out_inside_a_domain_of_the_shards_is_refused(toy_shards, tmp_path):
    domain = toy_shards.parent / "a"  # toy_shards is the mixture.json beside domains a and b
    done = subprocess.run(
        command(toy_shards, domain / "run"), cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "choose an output folder apart" in done.stderr and not (domain / "run").exists()

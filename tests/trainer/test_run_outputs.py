"""What a run leaves for its user: metrics.jsonl that survives a kill mid-line, TensorBoard scalars
that read back, W&B when asked, and one message with exit status 2 for a user error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import tiny_overrides

from trainer.metrics import read_metrics, truncate_metrics
from trainer.train import main

ROOT = Path(__file__).resolve().parents[2]
STAGE1 = str(ROOT / "trainer" / "configs" / "stage1-64k.yaml")


def run(toy_shards, out, **extra):
    return main(["--config", STAGE1, *tiny_overrides(toy_shards, out, 64, **extra)])


def test_a_torn_last_line_is_dropped_and_the_file_repaired_on_resume(toy_shards, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    settings = {"train.steps": 6, "checkpoint.every_steps": 3, "checkpoint.export_hf": "false"}
    run(toy_shards, out, **settings, **{"train.stop_at_step": 3})
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "loss": 5.1')  # killed while writing step 4's line
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3]
    run(toy_shards, out, **settings)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is whole JSON again
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("train/loss")
    assert [s.step for s in scalars] == [1, 2, 3, 4, 5, 6]
    assert [s.value for s in scalars] == pytest.approx([r["loss"] for r in records], rel=1e-6)
    assert {"train/lr", "train/grad_norm", "train/tokens_per_s"} <= set(events.Tags()["scalars"])


def test_a_broken_line_inside_the_file_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, \n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_metrics(path)
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"st')
    assert truncate_metrics(path, 2) == 2 and read_metrics(path) == [{"step": 1}, {"step": 2}]


def test_wandb_gets_every_metrics_line_when_switched_on(toy_shards, tmp_path, monkeypatch):
    calls = []

    class FakeRun:
        def log(self, values, step):
            calls.append(("log", step, values))

        def finish(self):
            calls.append(("finish",))

    def init(project, name, config):
        calls.append(("init", project, name, config["data"]["mixture"]))
        return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    extra = {"train.steps": 2, "checkpoint.export_hf": "false", "log.tensorboard": "false"}
    out = run(toy_shards, tmp_path / "run", **extra, **{"log.wandb": "true", "log.wandb_project": "p"})
    assert calls[0] == ("init", "p", "run", str(toy_shards)) and calls[-1] == ("finish",)
    logged = [c for c in calls if c[0] == "log"]
    assert [c[1] for c in logged] == [1, 2] and "train/loss" in logged[0][2]
    assert not (out / "tensorboard").exists()


def test_wandb_switched_on_but_not_installed_says_how_to_install(toy_shards, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ValueError, match="pip install wandb"):
        run(toy_shards, tmp_path / "run", **{"train.steps": 1, "log.wandb": "true"})


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "trainer.train", "--config", STAGE1, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


def test_user_errors_are_one_message_and_exit_status_2(toy_shards, tmp_path):
    root = toy_shards.parent
    streams = [{"domain": d, "path": str(root / d), "proportion": 0.9} for d in ("a", "b")]
    (tmp_path / "mixture.json").write_text(json.dumps({"seq_len": 64, "streams": streams}))
    bad_sum = _cli(*tiny_overrides(tmp_path / "mixture.json", tmp_path / "run", 64))
    assert bad_sum.returncode == 2 and "Traceback" not in bad_sum.stderr
    assert "sum to 1.800000, not 1" in bad_sum.stderr

    streams = [
        {"domain": "a", "path": str(root / "a"), "proportion": 1.0},
        {"domain": "gone", "path": "gone", "proportion": 0.0},
    ]
    (tmp_path / "mixture.json").write_text(json.dumps({"seq_len": 64, "streams": streams}))
    missing = _cli(*tiny_overrides(tmp_path / "mixture.json", tmp_path / "run", 64))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "domain 'gone'" in missing.stderr and "holds no index.json" in missing.stderr

"""A run killed after step 3 and resumed ends exactly where an uninterrupted run does."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import tiny_overrides

from trainer.checkpoint import latest_checkpoint
from trainer.metrics import read_metrics
from trainer.train import main

STAGE1 = str(Path(__file__).resolve().parents[2] / "trainer" / "configs" / "stage1-64k.yaml")


def run(toy_shards, out, **extra):
    return main(["--config", STAGE1, *tiny_overrides(toy_shards, out, 64, **extra)])


def weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / "hf" / "model.safetensors")


def test_six_steps_equal_three_stop_resume_three(toy_shards, tmp_path):
    straight = run(toy_shards, tmp_path / "straight", **{"train.steps": 6})
    resumed_dir = tmp_path / "resumed"
    run(toy_shards, resumed_dir, **{"train.steps": 6, "train.stop_at_step": 3, "checkpoint.every_steps": 2})
    assert latest_checkpoint(resumed_dir / "checkpoints").name == "step-00000003"
    assert not (resumed_dir / "hf").exists()  # the stage is not finished
    # a partial save (no .metadata) is never picked for resuming
    (resumed_dir / "checkpoints" / "step-00000005").mkdir()
    run(toy_shards, resumed_dir, **{"train.steps": 6, "checkpoint.every_steps": 2})

    losses = [r["loss"] for r in read_metrics(straight / "metrics.jsonl")]
    resumed = read_metrics(resumed_dir / "metrics.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in resumed] == losses
    assert [r["lr"] for r in resumed] == [r["lr"] for r in read_metrics(straight / "metrics.jsonl")]
    final_a, final_b = weights(straight), weights(resumed_dir)
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert latest_checkpoint(resumed_dir / "checkpoints").name == "step-00000006"

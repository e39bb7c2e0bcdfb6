"""Stage hand-off: a stage starts from the previous stage's HF export (the tiny smoke model too),
with its own rope_theta, and can carry over the previous stage's AdamW state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

from trainer.checkpoint import find_checkpoint, latest_checkpoint, load_optimizer_state
from trainer.config import ModelConfig, OptimConfig, ParallelConfig, TinyConfig
from trainer.model import CausalLMWithLoss, load_lm, rope_theta_of
from trainer.parallelize import DistEnv, parallelize
from trainer.schedule import build_optimizer
from trainer.train import main

STAGE1 = str(Path(__file__).resolve().parents[2] / "trainer" / "configs" / "stage1-64k.yaml")


@pytest.fixture(scope="module")
def stage1(toy_shards, tmp_path_factory) -> Path:
    """A finished tiny stage-1 run: checkpoints and the HF export."""
    out = tmp_path_factory.mktemp("stage1")
    main(["--config", STAGE1, *tiny_overrides(toy_shards, out, 64, **{"train.steps": 2})])
    return out


def _optimizer(model_config: ModelConfig, lr: float):
    lm = load_lm(model_config, TinyConfig(vocab_size=256), 64)
    model = parallelize(
        CausalLMWithLoss(lm), ParallelConfig(mixed_precision="fp32"), DistEnv(), torch.device("cpu")
    )
    return model, build_optimizer(model, OptimConfig(lr=lr), total_steps=10)[0]


def test_next_stage_starts_from_the_export_with_its_rope_theta(stage1):
    lm = load_lm(ModelConfig(path=str(stage1 / "hf"), rope_theta=1.28e8), TinyConfig(), 128)
    assert rope_theta_of(lm.config) == 1.28e8 and lm.config.max_position_embeddings >= 128
    exported = load_lm(ModelConfig(path=str(stage1 / "hf")), TinyConfig(), 64)
    for (name, a), (_, b) in zip(lm.named_parameters(), exported.named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_optimizer_state_is_carried_over_and_the_new_lr_kept(stage1):
    model, optimizer = _optimizer(ModelConfig(path=str(stage1 / "hf")), lr=5e-6)
    lrs = [group["lr"] for group in optimizer.param_groups]
    load_optimizer_state(latest_checkpoint(stage1 / "checkpoints"), model, optimizer)
    assert [group["lr"] for group in optimizer.param_groups] == lrs
    steps = {float(state["step"]) for state in optimizer.state.values()}
    assert steps == {2.0}  # stage 1 took two AdamW steps
    moments = [state["exp_avg"] for state in optimizer.state.values()]
    assert all(m.abs().sum() > 0 for m in moments)


def test_next_stage_run_continues_the_optimizer_from_the_command_line(stage1, toy_shards, tmp_path):
    args = tiny_overrides(toy_shards, tmp_path / "stage2", 64, **{"train.steps": 1, "model.tiny": "false"})
    args += [
        f"--model.path={stage1 / 'hf'}",
        "--model.rope_theta=1.28e8",
        f"--checkpoint.init_optimizer_from={stage1}",  # the run folder: its newest checkpoint
    ]
    out = main(["--config", STAGE1, *args])
    model, optimizer = _optimizer(ModelConfig(path=str(out / "hf")), lr=1e-3)
    load_optimizer_state(latest_checkpoint(out / "checkpoints"), model, optimizer)
    assert {float(state["step"]) for state in optimizer.state.values()} == {3.0}  # 2 in stage 1, then 1


def test_missing_export_or_checkpoint_explains_the_fix(tmp_path):
    with pytest.raises(ValueError, match="make train-64k"):
        load_lm(ModelConfig(path=str(tmp_path / "runs" / "stage1-64k" / "hf")), TinyConfig(), 64)
    model, optimizer = _optimizer(ModelConfig(tiny=True), lr=1e-3)
    with pytest.raises(ValueError, match="init_optimizer_from"):
        load_optimizer_state(tmp_path, model, optimizer)


def test_the_optimizer_source_may_be_a_run_a_checkpoints_folder_or_a_checkpoint(stage1):
    newest = latest_checkpoint(stage1 / "checkpoints")
    assert (
        find_checkpoint(stage1)
        == find_checkpoint(stage1 / "checkpoints")
        == find_checkpoint(newest)
        == newest
    )

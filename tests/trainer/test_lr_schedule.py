"""Linear warmup then cosine to a floor of 10% of the peak."""

from __future__ import annotations

import pytest
import torch

from trainer.config import OptimConfig
from trainer.schedule import build_optimizer, lr_factor


def test_warmup_then_cosine_to_floor():
    factors = [lr_factor(step, 100, 0.1, 0.1) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[10 + 45] == pytest.approx(0.55, abs=0.02)  # half way down the cosine


def test_optimizer_follows_schedule_and_skips_decay_on_vectors():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer, scheduler = build_optimizer(model, OptimConfig(lr=1e-3), total_steps=10)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert len(optimizer.param_groups[0]["params"]) == 1  # only the Linear weight is a matrix
    seen = []
    for _ in range(10):
        seen.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx(1e-3) and seen[-1] == pytest.approx(1e-4)

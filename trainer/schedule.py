"""Learning-rate schedule: linear warmup, then cosine decay to a floor (ProLong: 10% / 10%)."""

from __future__ import annotations

import math

import torch

from trainer.config import OptimConfig


def lr_factor(step: int, total_steps: int, warmup_fraction: float, min_lr_ratio: float) -> float:
    """Multiplier of the peak lr for optimizer step ``step`` (0-based) of ``total_steps``.

    Warmup rises linearly to 1 over ``round(warmup_fraction * total_steps)`` steps (the first step
    already gets 1/warmup, never 0); then a half cosine falls from 1 to ``min_lr_ratio`` at the
    last step.
    """
    warmup = round(warmup_fraction * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = max(1, total_steps - warmup - 1)
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: torch.nn.Module, optim: OptimConfig, total_steps: int, fused: bool = False):
    """AdamW and its LambdaLR schedule; weight decay on matrices only (not on norms or biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(
        groups,
        lr=optim.lr,
        betas=optim.betas,
        eps=optim.eps,
        fused=fused or None,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, optim.warmup_fraction, optim.min_lr_ratio)
    )
    return optimizer, scheduler

"""Typed config: YAML, smoke block, dotted command-line overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import load_config, parse_overrides

STAGE1 = Path(__file__).resolve().parents[2] / "trainer" / "configs" / "stage1-64k.yaml"


def test_stage1_yaml_carries_prolong_values():
    cfg = load_config(STAGE1, smoke=False)
    assert cfg.model.rope_theta == 8e6 and cfg.data.seq_len == 65536
    assert cfg.optim.lr == 1e-5 and cfg.optim.betas == (0.9, 0.95) and cfg.optim.weight_decay == 0.1
    assert cfg.optim.grad_clip == 1.0 and cfg.optim.warmup_fraction == 0.1 and cfg.optim.min_lr_ratio == 0.1
    assert cfg.train.steps == 5000 and cfg.train.tokens_per_step == 64 * 65536
    assert cfg.parallel.fsdp and cfg.parallel.activation_checkpointing and not cfg.model.tiny
    assert not cfg.data.apply_masks  # pre-training ignores masks, as ProLong's does by default


def test_smoke_mode_is_decided_by_load_config(monkeypatch):
    import trainer.config

    monkeypatch.setattr(trainer.config, "_has_cuda", lambda: False)
    assert load_config(STAGE1).smoke  # no CUDA device: a smoke run
    monkeypatch.setattr(trainer.config, "_has_cuda", lambda: True)
    assert not load_config(STAGE1).smoke and load_config(STAGE1, ["--smoke"]).smoke


def test_smoke_block_keeps_stage_length():
    cfg = load_config(STAGE1, smoke=True)
    assert cfg.smoke and cfg.model.tiny and cfg.data.seq_len == 65536 and cfg.train.steps == 3
    assert cfg.tiny.vocab_size == 128256


def test_dotted_overrides_win_and_are_typed():
    cfg = load_config(
        STAGE1,
        [
            "--optim.lr=2e-5",
            "--train.steps",
            "7",
            "--optim.betas=0.8,0.9",
            "--model.rope_theta=1.28e8",
            "--train.stop_at_step=3",
            "--log.progress_bar=false",
            "--smoke",
        ],
    )
    assert cfg.smoke and cfg.optim.lr == 2e-5 and isinstance(cfg.optim.lr, float)
    assert cfg.train.steps == 7 and cfg.optim.betas == (0.8, 0.9) and cfg.model.rope_theta == 1.28e8
    assert cfg.train.stop_at_step == 3 and cfg.log.progress_bar is False


def test_parse_overrides_nests_keys():
    assert parse_overrides(["--a.b=1", "--a.c", "x", "--flag"]) == {"a": {"b": 1, "c": "x"}, "flag": True}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--optim.lr=0"], "optim.lr"),
        (["--optim.nope=1"], "unknown OptimConfig field"),
        (["--model.tiny=false", "--model.path="], "model.path"),
        (["--parallel.mixed_precision=fp8"], "mixed_precision"),
        (["--tiny.num_heads=3"], "num_heads"),
        (["--checkpoint.every_steps=0"], "every_steps"),
        (["stray"], "section.field=value"),
    ],
)
def test_bad_values_raise_with_a_fix(args, message):
    with pytest.raises(ValueError, match=message):
        load_config(STAGE1, args, smoke=True)

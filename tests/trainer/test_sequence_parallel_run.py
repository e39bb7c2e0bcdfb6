"""Sequence parallelism end to end: the loader replicates within an SP group, the stage-2 config
holds ProLong's values, ``--parallel.sp=2`` trains, resumes and exports, and bad sizes are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import run_ranks, tiny_overrides

from trainer.config import ParallelConfig, load_config
from trainer.data import build_loader
from trainer.metrics import read_metrics
from trainer.parallelize import DistEnv, build_sp_group
from trainer.train import main

ROOT = Path(__file__).resolve().parents[2]
STAGE1 = str(ROOT / "trainer" / "configs" / "stage1-64k.yaml")
STAGE2 = ROOT / "trainer" / "configs" / "stage2-512k.yaml"


def test_stage2_yaml_carries_prolong_values():
    cfg = load_config(STAGE2, smoke=False)
    assert cfg.model.rope_theta == 1.28e8 and cfg.model.path == "runs/stage1-64k/hf" and not cfg.model.tiny
    assert cfg.data.seq_len == 524288 and cfg.train.tokens_per_step == 16 * 524288 and cfg.train.steps == 2500
    assert cfg.optim.lr == 5e-6 and cfg.optim.betas == (0.9, 0.95) and cfg.optim.weight_decay == 0.1
    assert cfg.optim.warmup_fraction == 0.1 and cfg.optim.min_lr_ratio == 0.1 and cfg.optim.grad_clip == 1.0
    assert cfg.parallel.sp == 8 and cfg.parallel.fsdp and cfg.parallel.activation_checkpointing
    smoke = load_config(STAGE2, ["--model.path=runs/stage1-64k/hf"], smoke=True)
    assert smoke.data.seq_len == 524288 and smoke.parallel.sp == 2 and smoke.train.tokens_per_step == 524288
    assert smoke.data.mixture == "data/shards/demo-512k/mixture.json" and not smoke.model.tiny


def test_bad_sp_sizes_raise_with_a_fix():
    with pytest.raises(ValueError, match="parallel.sp"):
        ParallelConfig(sp=0)
    with pytest.raises(ValueError, match="multiple of 2 ranks"):
        build_sp_group(ParallelConfig(sp=2), DistEnv(), torch.device("cpu"))


def _loader_worker(rank: int, mixture: str, out: str) -> None:
    dist.init_process_group("gloo")
    try:
        loader, _ = build_loader(mixture, 1, seed=5, replication=2)
        ids = torch.stack([batch["input_ids"][0] for _, batch in zip(range(3), loader)])  # (3, T)
        gathered = [torch.empty_like(ids) for _ in range(4)]
        dist.all_gather(gathered, ids)
        if rank == 0:
            torch.save(gathered, out)
    finally:
        dist.destroy_process_group()


def test_loader_gives_an_sp_group_the_same_sequences(toy_shards, tmp_path):
    out = tmp_path / "ids.pt"
    run_ranks(_loader_worker, 4, str(toy_shards), str(out))
    ids = torch.load(out)
    assert torch.equal(ids[0], ids[1]) and torch.equal(ids[2], ids[3])  # SP groups (0, 1) and (2, 3)
    assert not torch.equal(ids[0], ids[2])  # the two data-parallel groups see different sequences


def _train_worker(rank: int, toy_shards: str, out: str, extra: dict) -> None:
    overrides = tiny_overrides(
        Path(toy_shards), Path(out), 64, **{"parallel.sp": 2, "tiny.num_kv_heads": 1, **extra}
    )
    main(["--config", STAGE1, *overrides])


@pytest.mark.slow
def test_sp2_run_resumes_exactly_and_exports(toy_shards, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_ranks(_train_worker, 2, str(toy_shards), str(straight), {"train.steps": 4})
    stop = {"train.steps": 4, "train.stop_at_step": 2, "checkpoint.every_steps": 2}
    run_ranks(_train_worker, 2, str(toy_shards), str(resumed), stop)
    run_ranks(_train_worker, 2, str(toy_shards), str(resumed), {"train.steps": 4})
    a, b = read_metrics(straight / "metrics.jsonl"), read_metrics(resumed / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-6)
    assert a[0]["tokens"] == 64 * 4  # tokens_per_step, counted once although 2 ranks share each sequence
    assert (straight / "hf" / "model.safetensors").is_file()

"""The HF export loads with plain transformers and gives the trained model's logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

from trainer.attention import DocMask
from trainer.checkpoint import latest_checkpoint, load_checkpoint
from trainer.config import load_config
from trainer.model import rope_theta_of
from trainer.parallelize import DistEnv
from trainer.train import build, main

STAGE1 = str(Path(__file__).resolve().parents[2] / "trainer" / "configs" / "stage1-64k.yaml")


def test_export_loads_and_matches_trained_model(toy_shards, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = ["--config", STAGE1, *tiny_overrides(toy_shards, tmp_path / "run", 64, **{"train.steps": 2})]
    run_dir = main(args)
    hf = run_dir / "hf"
    exported = AutoModelForCausalLM.from_pretrained(hf).eval()
    assert rope_theta_of(exported.config) == 8e6 and exported.config._attn_implementation != "prolong_doc"
    assert AutoTokenizer.from_pretrained(hf).bos_token_id == 128000

    cfg = load_config(args[1], args[2:], smoke=True)
    run = build(cfg, DistEnv(), torch.device("cpu"))
    model = run.model
    step = load_checkpoint(
        latest_checkpoint(run.checkpoints), model, run.optimizer, run.scheduler, run.loader
    )
    assert step == 2 and run.attention == "sdpa_docs" and cfg.model.attention == "sdpa_docs"
    model.eval()
    torch.manual_seed(0)
    ids = torch.randint(0, 256, (1, 40))
    positions = torch.cat([torch.arange(15), torch.arange(25)])[None]  # two documents: 15 + 25 tokens
    cu = torch.tensor([0, 15, 40])
    with torch.no_grad():
        trained = model.logits(ids, positions, DocMask.from_cu_seqlens(cu, torch.device("cpu"), "sdpa_docs"))
        loaded = torch.cat([exported(ids[:, :15]).logits, exported(ids[:, 15:]).logits], dim=1)
    assert (trained - loaded).abs().max().item() <= 1e-5


def test_missing_mixture_asks_for_make_shards(tmp_path):
    args = tiny_overrides(tmp_path / "none" / "mixture.json", tmp_path / "run", 64)
    with pytest.raises(ValueError, match="make shards"):
        main(["--config", STAGE1, *args])


@pytest.mark.parametrize(
    "extra, message",
    [({"data.seq_len": 128}, "seq_len"), ({"train.tokens_per_step": 100}, "tokens_per_step")],
)
def test_inconsistent_run_settings_are_refused(toy_shards, tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        main(["--config", STAGE1, *tiny_overrides(toy_shards, tmp_path / "run", 64, **extra)])


def test_metrics_lines_carry_every_figure(toy_shards, tmp_path):
    from trainer.metrics import read_metrics

    extra = {
        "train.steps": 2,
        "checkpoint.export_hf": "false",
        "log.peak_tflops": 1.0,
        "model.attention": "auto",
    }
    run_dir = main(["--config", STAGE1, *tiny_overrides(toy_shards, tmp_path / "run", 64, **extra)])
    record = read_metrics(run_dir / "metrics.jsonl")[-1]
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "peak_mem_gib", "tflops_per_device"):
        assert record[key] is not None and record[key] > 0, key
    assert record["tokens"] == 256 and (run_dir / "config.yaml").is_file()

"""Evaluation while training: doc_loss by position bucket in metrics.jsonl, equal to a direct computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides

from trainer.config import ModelConfig, TinyConfig
from trainer.evaluate import doc_loss_by_bucket
from trainer.metrics import read_metrics
from trainer.model import CausalLMWithLoss, load_lm
from trainer.train import main

STAGE1 = str(Path(__file__).resolve().parents[2] / "trainer" / "configs" / "stage1-64k.yaml")


def direct_losses(lm, ids: np.ndarray) -> np.ndarray:
    """Per-token losses of ``ids[1:]`` from a plain SDPA copy of ``lm`` (no document masks, no chunking)."""
    from transformers import LlamaForCausalLM

    plain = LlamaForCausalLM._from_config(lm.config, attn_implementation="sdpa")
    plain.load_state_dict(lm.state_dict())
    with torch.no_grad():
        logits = plain(torch.from_numpy(ids)[None]).logits[0, :-1].double()  # (T-1, V)
    return -torch.log_softmax(logits, -1).gather(1, torch.from_numpy(ids[1:])[:, None])[:, 0].numpy()


def test_doc_loss_by_bucket_equals_a_direct_computation():
    torch.manual_seed(0)
    lm = load_lm(ModelConfig(tiny=True, attention="sdpa_docs"), TinyConfig(vocab_size=256, init_seed=3), 1500)
    model = CausalLMWithLoss(lm, loss_chunk_size=100)
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 256, 1500), rng.integers(0, 256, 900)]
    window = 512
    record = doc_loss_by_bucket(model, docs, window, torch.device("cpu"), "sdpa_docs")

    full, win = {"0-1K": [], "1K-4K": []}, {"0-1K": [], "1K-4K": []}
    for ids in docs:
        whole = direct_losses(lm, ids)
        for start in range(0, len(ids), window):  # each window alone; its first token is no target
            piece = direct_losses(lm, ids[start : start + window])
            for offset, loss in enumerate(piece):
                position = start + offset + 1
                bucket = "0-1K" if position < 1024 else "1K-4K"
                full[bucket].append(whole[position - 1])
                win[bucket].append(loss)
    # fp32 forward of a tiny model against float64 softmax of the same fp32 logits: ~1e-6 per token
    for bucket in ("0-1K", "1K-4K"):
        assert record[f"doc_loss/{bucket}"] == pytest.approx(np.mean(full[bucket]), abs=1e-4)
        assert record[f"doc_loss_window/{bucket}"] == pytest.approx(np.mean(win[bucket]), abs=1e-4)
        gain = np.mean(win[bucket]) - np.mean(full[bucket])
        assert record[f"doc_loss_gain/{bucket}"] == pytest.approx(gain, abs=2e-4)
    assert set(record) == {f"{k}/{b}" for k in ("doc_loss", "doc_loss_window", "doc_loss_gain") for b in full}
    assert model.training  # left in the mode it was in


def test_eval_block_logs_doc_loss_into_metrics(corpus_shards, book_texts, tmp_path):
    heldout = tmp_path / "heldout"
    heldout.mkdir()
    for name in sorted(book_texts)[-2:]:
        (heldout / name).write_text(book_texts[name][:20_000])
    out = tmp_path / "run"
    extra = {
        "eval.every_steps": 2,
        "eval.heldout": heldout,
        "eval.length": 600,
        "eval.window": 256,
        "train.steps": 3,
    }
    main(["--config", STAGE1, *tiny_overrides(corpus_shards, out, 256, vocab=128256, **extra)])
    rows = read_metrics(out / "metrics.jsonl")
    evals = [r for r in rows if "doc_loss/0-1K" in r]
    assert [r["step"] for r in evals] == [2, 3]
    for row in evals:
        assert np.isfinite(row["doc_loss/0-1K"]) and np.isfinite(row["doc_loss_gain/0-1K"])
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]

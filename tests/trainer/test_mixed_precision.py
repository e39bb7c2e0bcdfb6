"""The bf16 path on CPU: FSDP2 mixed precision (bf16 compute, fp32 master weights and fp32
gradient reduction) against the same step in fp32, within a tolerance derived from bf16's rounding.

bf16 keeps 8 significant bits: each rounding to bf16 moves a value by at most u = 2^-8 (0.39%) of
itself. Under the policy every matmul reads bf16 copies of its weight and input and writes a bf16
output, while norms, softmax and the loss run in fp32 (HF's RMSNorm and our chunked loss upcast).

- Gradients: from the loss down to the deepest weight of this 2-layer model a gradient passes at
  most 12 bf16 roundings (LM head, final norm, two layers of attention and MLP projections), so its
  relative error is at most 12u = 4.7% even if all of them pushed the same way; random signs
  make it ~1% in practice. A relative error above 1e-4 also proves that bf16 was really used (fp32
  reordering noise is ~1e-6).
- Loss: the cross-entropy moves by at most twice the largest logit change (its gradient in the
  logits has an L1 norm <= 2 per token), and the logits are at most 12u off relative to the largest
  logit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from conftest import random_row, run_ranks

from trainer.attention import DocMask
from trainer.config import Config, ModelConfig, ParallelConfig, TinyConfig
from trainer.data import collate
from trainer.model import CausalLMWithLoss, checkpoint_dtype, load_lm
from trainer.parallelize import DistEnv, parallelize
from trainer.train import forward_backward, host_dtype

CPU = torch.device("cpu")
SEQ, VOCAB = 64, 96
U_BF16 = 2.0**-8
ROUNDINGS = 12


def _batch() -> list[dict]:
    rng = np.random.default_rng(3)
    rows = [random_row(rng, SEQ, VOCAB) for _ in range(2)]
    return [collate([{"input_ids": ids, "indices": spans} for ids, spans, _ in rows])]


def _step(mixed_precision: str, batch: list[dict]) -> dict:
    lm = load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=VOCAB, num_layers=2), SEQ)
    mask = DocMask.from_cu_seqlens(batch[0]["cu_seqlens"], CPU, "sdpa_docs")
    with torch.no_grad():  # the fp32 logits, before sharding
        logits = CausalLMWithLoss(lm).logits(batch[0]["input_ids"], batch[0]["position_ids"], mask)
    model = parallelize(
        CausalLMWithLoss(lm, 48), ParallelConfig(mixed_precision=mixed_precision), DistEnv(), CPU
    )
    result = forward_backward(model, batch, DistEnv(), CPU, "sdpa_docs")
    return {
        "loss": result.loss,
        "max_logit": float(logits.float().abs().max()),
        "grads": {n: p.grad.full_tensor() for n, p in model.named_parameters()},
        "dtypes": {(p.dtype, p.grad.dtype) for p in model.parameters()},
    }


def _worker(rank: int, out: str) -> None:
    dist.init_process_group("gloo")
    try:
        batch = _batch()
        torch.save({mp: _step(mp, batch) for mp in ("fp32", "bf16")}, out)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    out = tmp_path_factory.mktemp("mp") / "steps.pt"
    run_ranks(_worker, 1, str(out))
    return torch.load(out)


def test_master_weights_and_reduced_gradients_stay_fp32(steps):
    assert steps["bf16"]["dtypes"] == {(torch.float32, torch.float32)}


def test_bf16_gradients_match_fp32_within_the_rounding_bound(steps):
    fp32, bf16 = steps["fp32"]["grads"], steps["bf16"]["grads"]
    assert fp32.keys() == bf16.keys()
    errors = {name: float((bf16[name] - g).norm() / g.norm()) for name, g in fp32.items()}
    assert max(errors.values()) <= ROUNDINGS * U_BF16, errors
    assert min(errors.values()) > 1e-4, errors  # bf16 really ran


def test_bf16_loss_matches_fp32_within_the_rounding_bound(steps):
    fp32, bf16 = steps["fp32"], steps["bf16"]
    bound = 2 * ROUNDINGS * U_BF16 * fp32["max_logit"]
    assert abs(bf16["loss"] - fp32["loss"]) <= bound
    assert bf16["loss"] != fp32["loss"]


def test_rank0_reads_a_bf16_checkpoint_in_bf16_for_bf16_training(tmp_path):
    lm = load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=VOCAB, num_layers=1), SEQ)
    lm.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    lm.float().save_pretrained(tmp_path / "fp32")
    assert checkpoint_dtype(str(tmp_path / "bf16")) == torch.bfloat16
    assert checkpoint_dtype(str(tmp_path / "fp32")) == torch.float32

    def host(path, mixed_precision):
        cfg = Config(
            model=ModelConfig(path=str(path)), parallel=ParallelConfig(mixed_precision=mixed_precision)
        )
        return host_dtype(cfg, CPU)

    assert host(tmp_path / "bf16", "bf16") == torch.bfloat16  # no fp32 copy of a bf16 checkpoint
    assert host(tmp_path / "fp32", "bf16") == torch.float32  # never rounds the starting weights
    assert host(tmp_path / "bf16", "fp32") == torch.float32

"""Sequence parallelism in the whole trainer equals one process: loss, gradients, an optimizer step.

The tiny Llama (fp32, activation checkpointing, chunked loss, FSDP2 over all ranks) sees packed
rows of 64 tokens whose documents cross the rank boundaries; one document (54 tokens) is longer
than a rank's share under SP 2 (32) and one (40 tokens) spans three ranks under SP 4 (16).
The models have fewer KV heads than the SP group, so the KV heads are repeated. SP 2 x DP 2
(4 ranks: each SP pair holds one of the two sequences) takes one optimizer step and must end
with the single process's weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from conftest import run_ranks

from trainer.checkpoint import full_model_state
from trainer.config import ModelConfig, OptimConfig, ParallelConfig, TinyConfig
from trainer.data import collate
from trainer.model import CausalLMWithLoss, load_lm
from trainer.parallelize import DistEnv, build_sp_group, parallelize
from trainer.schedule import build_optimizer
from trainer.train import forward_backward, optimizer_step

CPU = torch.device("cpu")
SEQ, VOCAB = 64, 96
ROW_SPANS = ([(0, 5), (5, 45), (45, 64)], [(0, 10), (10, 64)])

# name: (ranks, sp, kv heads); every model has 4 query heads
CASES = {"sp2": (2, 2, 1), "sp4": (4, 4, 2), "sp2xdp2": (4, 2, 1)}


def rows() -> list[dict]:
    """The two packed sequences (random tokens, the spans above; the second with an SFT mask)."""
    rng = np.random.default_rng(3)
    samples = []
    for index, spans in enumerate(ROW_SPANS):
        mask = (rng.random(SEQ) < 0.7).astype(np.uint8) if index == 1 else None
        samples.append({"input_ids": rng.integers(0, VOCAB, SEQ), "indices": np.array(spans), "mask": mask})
    return samples


def run(env: DistEnv, sp_size: int, kv_heads: int, micro_batches: list[dict]) -> dict:
    """One optimizer step; returns the loss, the gradients before the step and the weights after it."""
    parallel = ParallelConfig(mixed_precision="fp32", activation_checkpointing=True, sp=sp_size)
    sp = build_sp_group(parallel, env, CPU)
    lm = load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=VOCAB, num_kv_heads=kv_heads), SEQ)
    model = parallelize(CausalLMWithLoss(lm, loss_chunk_size=24), parallel, env, CPU)
    optimizer, scheduler = build_optimizer(model, OptimConfig(lr=1e-2, warmup_fraction=0.0), total_steps=2)
    result = forward_backward(model, micro_batches, env, CPU, "sdpa_docs", sp)
    grads = {
        name: (p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).clone()
        for name, p in model.named_parameters()
    }
    optimizer_step(model, optimizer, scheduler, grad_clip=1.0)
    return {"loss": result.loss, "tokens": result.tokens, "grads": grads, "weights": full_model_state(model)}


def _rank_worker(rank: int, world: int, sp_size: int, kv_heads: int, out_path: str) -> None:
    dist.init_process_group("gloo")
    try:
        dp_rank, samples = rank // sp_size, rows()
        dp_size = world // sp_size
        # one DP group holds both rows; two DP groups hold one row each
        mine = [collate(samples)] if dp_size == 1 else [collate([samples[dp_rank]])]
        result = run(DistEnv(rank=rank, world_size=world, local_rank=rank), sp_size, kv_heads, mine)
        if rank == 0:
            torch.save(result, out_path)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=list(CASES))
def runs(request, tmp_path_factory):
    world, sp_size, kv_heads = CASES[request.param]
    out = tmp_path_factory.mktemp(request.param) / "rank0.pt"
    run_ranks(_rank_worker, world, world, sp_size, kv_heads, str(out))
    return run(DistEnv(), 1, kv_heads, [collate(rows())]), torch.load(out)


def test_documents_cross_rank_boundaries():
    for spans in ROW_SPANS:
        cuts = {SEQ // 4 * i for i in range(1, 4)}
        assert any(start < cut < end for start, end in spans for cut in cuts)
    assert max(end - start for start, end in ROW_SPANS[1]) > SEQ // 2


def test_sp_loss_and_gradients_equal_one_process(runs):
    single, parallel = runs
    assert parallel["tokens"] == single["tokens"] == 2 * SEQ  # distinct tokens, none counted twice
    assert parallel["loss"] == pytest.approx(single["loss"], rel=1e-6)
    assert parallel["grads"].keys() == single["grads"].keys()
    for name, grad in single["grads"].items():
        torch.testing.assert_close(parallel["grads"][name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_sp_weights_after_one_step_equal_one_process(runs):
    single, parallel = runs
    for name, weight in single["weights"].items():
        torch.testing.assert_close(parallel["weights"][name], weight, rtol=1e-5, atol=1e-5, msg=name)

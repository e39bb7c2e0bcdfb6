"""Two ranks give what one process gives: loss and gradients of a step, weights after 3 FSDP2 steps.

Every step has 4 micro-batches with different numbers of target tokens (random spans, SFT masks),
so a mean of per-micro-batch means would not match: the loss must be the global token average.
Rank r takes micro-batches 2r and 2r+1; the single process takes all four.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from conftest import random_row, run_ranks

from trainer.checkpoint import full_model_state
from trainer.config import ModelConfig, OptimConfig, ParallelConfig, TinyConfig
from trainer.data import collate
from trainer.model import CausalLMWithLoss, load_lm
from trainer.parallelize import DistEnv, parallelize
from trainer.schedule import build_optimizer
from trainer.train import forward_backward, optimizer_step

CPU = torch.device("cpu")
STEPS, MICRO, SEQ, VOCAB = 3, 4, 32, 96


def make_steps() -> list[list[dict]]:
    """STEPS optimizer steps of MICRO micro-batches of 2 rows each."""
    rng = np.random.default_rng(7)
    return [
        [collate([_sample(rng, m % 2 == 1) for _ in range(2)]) for m in range(MICRO)] for _ in range(STEPS)
    ]


def _sample(rng, with_mask):
    ids, spans, mask = random_row(rng, SEQ, VOCAB, with_mask)
    return {"input_ids": ids, "indices": spans, "mask": mask}


def run(env: DistEnv, steps: list[list[dict]]) -> dict:
    """Trains STEPS steps; returns step losses, the first step's gradients and the final weights."""
    lm = load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=VOCAB, num_layers=2), SEQ)
    model = parallelize(
        CausalLMWithLoss(lm, loss_chunk_size=24), ParallelConfig(mixed_precision="fp32"), env, CPU
    )
    optimizer, scheduler = build_optimizer(model, OptimConfig(lr=1e-2), total_steps=STEPS)
    per_rank = MICRO // env.world_size
    losses, first_grads = [], None
    for micro_batches in steps:
        mine = micro_batches[env.rank * per_rank : (env.rank + 1) * per_rank]
        result = forward_backward(model, mine, env, CPU, "sdpa_docs")
        if first_grads is None:
            first_grads = {
                name: (p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).clone()
                for name, p in model.named_parameters()
            }
        optimizer_step(model, optimizer, scheduler, grad_clip=1.0)
        losses.append(result.loss)
    return {"losses": losses, "grads": first_grads, "weights": full_model_state(model)}


def _rank_worker(rank: int, out_path: str) -> None:
    dist.init_process_group("gloo")
    try:
        result = run(DistEnv(rank=rank, world_size=2, local_rank=rank), make_steps())
        if rank == 0:
            torch.save(result, out_path)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "rank0.pt"
    run_ranks(_rank_worker, 2, str(out))
    return run(DistEnv(), make_steps()), torch.load(out)


def test_micro_batches_differ_in_target_count():
    counts = [int((mb["labels"] != -100).sum()) for mb in make_steps()[0]]
    assert len(set(counts)) > 1


def test_two_ranks_same_loss_and_gradients_as_one_process(both_runs):
    single, double = both_runs
    assert double["losses"][0] == pytest.approx(single["losses"][0], rel=1e-6)
    assert single["grads"].keys() == double["grads"].keys()
    for name, grad in single["grads"].items():
        torch.testing.assert_close(double["grads"][name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_fsdp_two_ranks_match_one_process_after_three_steps(both_runs):
    single, double = both_runs
    assert double["losses"] == pytest.approx(single["losses"], rel=1e-5)
    for name, weight in single["weights"].items():
        # Adam turns fp32 summation-order noise into at most ~1e-3 of one update (lr 1e-2)
        torch.testing.assert_close(double["weights"][name], weight, rtol=1e-5, atol=1e-5, msg=name)

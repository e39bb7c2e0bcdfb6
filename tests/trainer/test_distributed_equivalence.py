"""Two ranks give what one process gives: loss and gradients of a step, weights after 3 FSDP2 steps.

Every step has 4 micro-batches with different numbers of target tokens (random spans, SFT masks),
so a mean of per-micro-batch means would not match: the loss must be the global token average.
Rank r takes micro-batches 2r and 2r+1; the single process takes all four.

Both runs compute in float64. What is exact (token counts, parameter names) is compared exactly.
The rest differs only by summation order (FSDP's reduce-scatter adds the two ranks' gradients in
another order than one process's backward does), and AdamW amplifies such differences: its update
``lr * m / (sqrt(v) + eps)`` has a derivative in the gradient of at most ``lr / eps`` (= 1e6 here, at
a gradient near 0). A reordered sum of n terms differs by at most about ``n * u * sum|terms|``; with
the gradients of this model (n <= 512 token contributions, |terms| summing to well under 1) that is
~1e-13 in float64 (u = 1.1e-16), so three AdamW steps move a weight by at most ~3e-7 more than the other
run: atol 1e-6 holds on any machine. In float32 (u = 6e-8) the same bound is ~1e-1, which is why a
float32 comparison at atol 1e-5 failed on some machines (1.24e-5 on one embedding entry).
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
    lm = load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=VOCAB, num_layers=2), SEQ).double()
    model = parallelize(
        CausalLMWithLoss(lm, loss_chunk_size=24), ParallelConfig(mixed_precision="fp32"), env, CPU
    )
    optimizer, scheduler = build_optimizer(model, OptimConfig(lr=1e-2), total_steps=STEPS)
    per_rank = MICRO // env.world_size
    losses, counts, first_grads = [], [], None
    for micro_batches in steps:
        mine = micro_batches[env.rank * per_rank : (env.rank + 1) * per_rank]
        result = forward_backward(model, mine, env, CPU, "sdpa_docs")
        counts.append((result.tokens, result.targets, result.sum_sq_doc_lens))
        if first_grads is None:
            first_grads = {
                name: (p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).clone()
                for name, p in model.named_parameters()
            }
        optimizer_step(model, optimizer, scheduler, grad_clip=1.0)
        losses.append(result.loss)
    return {"losses": losses, "counts": counts, "grads": first_grads, "weights": full_model_state(model)}


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
    assert double["counts"] == single["counts"]  # integers: exact
    # one float64 forward/backward in another summation order: ~1e-13 apart (module docstring)
    assert double["losses"][0] == pytest.approx(single["losses"][0], rel=1e-12)
    assert single["grads"].keys() == double["grads"].keys()
    for name, grad in single["grads"].items():
        assert grad.dtype == torch.float64, name
        torch.testing.assert_close(double["grads"][name], grad, rtol=1e-9, atol=1e-12, msg=name)


def test_fsdp_two_ranks_match_one_process_after_three_steps(both_runs):
    single, double = both_runs
    assert double["losses"] == pytest.approx(single["losses"], rel=1e-9)
    assert single["weights"].keys() == double["weights"].keys()
    for name, weight in single["weights"].items():
        # AdamW's lr / eps amplification of float64 reordering noise: <= ~3e-7 (module docstring)
        torch.testing.assert_close(double["weights"][name], weight, rtol=0, atol=1e-6, msg=name)

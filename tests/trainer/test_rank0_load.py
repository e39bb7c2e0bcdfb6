"""Several FSDP ranks starting from a checkpoint: only rank 0 reads it, the others get their
shards by broadcast, and every rank ends with exactly the checkpoint's weights and buffers."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from conftest import run_ranks

from trainer.config import Config, ModelConfig, ParallelConfig, TinyConfig
from trainer.model import load_lm, rope_theta_of
from trainer.parallelize import DistEnv
from trainer.train import build_model

CPU = torch.device("cpu")
SEQ, VOCAB = 32, 96


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny Llama saved as an HF folder (its own random init, not the trainer's seed)."""
    folder = tmp_path_factory.mktemp("ckpt") / "hf"
    lm = load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=VOCAB, num_layers=2, init_seed=11), SEQ)
    lm.save_pretrained(folder)
    return folder, {name: t.clone() for name, t in lm.state_dict().items()}


def _rank_worker(rank: int, folder: str, out: str) -> None:
    dist.init_process_group("gloo")
    try:
        cfg = Config(model=ModelConfig(path=folder), parallel=ParallelConfig(mixed_precision="fp32"))
        env = DistEnv(rank=rank, world_size=2, local_rank=rank)
        model = build_model(cfg, env, CPU, SEQ)
        weights = {  # every rank gathers every parameter from the shards it holds
            _plain_name(name): (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone()
            for name, p in model.named_parameters()
        }
        buffers = {name: b.clone() for name, b in model.named_buffers()}
        torch.save({"weights": weights, "buffers": buffers}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _plain_name(name: str) -> str:
    return name.replace("_checkpoint_wrapped_module.", "").removeprefix("lm.")


def test_other_ranks_receive_the_checkpoint_from_rank0(checkpoint, tmp_path):
    folder, saved = checkpoint
    out = tmp_path / "state"
    run_ranks(_rank_worker, 2, str(folder), str(out))
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    single = load_lm(ModelConfig(path=str(folder)), TinyConfig(), SEQ)
    for r, state in enumerate(ranks):
        assert state["weights"].keys() == saved.keys(), r
        for name, tensor in state["weights"].items():
            torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0, msg=f"rank {r}: {name}")
        (inv_freq,) = [b for n, b in state["buffers"].items() if n.endswith("rotary_emb.inv_freq")]
        torch.testing.assert_close(inv_freq, single.model.rotary_emb.inv_freq, rtol=0, atol=0)


def test_without_weights_the_model_takes_no_memory(checkpoint):
    folder, saved = checkpoint
    lm = load_lm(ModelConfig(path=str(folder), rope_theta=1e6), TinyConfig(), SEQ, weights=False)
    assert all(p.is_meta for p in lm.parameters())
    assert rope_theta_of(lm.config) == 1e6 and sum(p.numel() for p in lm.parameters()) == sum(
        t.numel() for t in saved.values()
    )

"""Peak memory per rank of one 524,288-token training step with sequence parallelism 2 vs 1.

Usage: ``python bench/trainer_sp_memory.py [--seq-len 524288] [--doc-len 4096] [--vocab 16384]
[--out bench/results/trainer_sp_memory.md]``

Each configuration runs as its own ``torchrun`` job (gloo, CPU, one thread per rank): the tiny
Llama of the smoke runs (hidden 64, 2 layers, 4 heads, 2 KV heads; fp32, FSDP2, activation
checkpointing, chunked loss of 4,096 tokens) takes one forward/backward and
AdamW step on one packed sequence; every rank reports its peak RSS (``ru_maxrss``, so imports and
the model are included) and the step's time. Documents are ``--doc-len`` tokens long: attention
memory is linear in the document length on this path, so short documents keep the step's time
down without changing what is measured. The vocabulary defaults to 16,384 instead of Llama-3's
128,256: the LM head is most of a CPU step (with 128,256, SP 1 alone would take over 10 minutes),
and the vocabulary only changes the loss's logits buffer, a constant ``4,096 x vocab x 4`` bytes
per rank (0.25 GiB here, 2 GiB with 128,256) whatever the SP size. (With 32,768 the peaks were
the same: 4.29 GiB for SP 1, 2.60 / 2.62 GiB for SP 2.) The all-to-all volume per layer is computed from
the shapes (see ``all_to_all_bytes``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def all_to_all_bytes(
    seq_len: int, sp: int, heads: int, kv_heads: int, head_dim: int, dtype_bytes: int
) -> int:
    """Bytes one rank sends to the other ranks of its SP group per decoder layer, forward pass.

    Four all-to-alls (q, k, v in; the attention output back), each of a (T/P, heads, head_dim)
    tensor of which (P - 1) / P leaves the rank; KV heads are repeated up to P first:
    ``(P - 1) / P * T / P * head_dim * (2 H + 2 max(Hkv, P)) * dtype_bytes``.
    The backward pass moves the same again (the gradients), and activation checkpointing repeats
    the forward, so a training step moves 3x this per layer.
    """
    if sp == 1:
        return 0
    per_token = head_dim * (2 * heads + 2 * max(kv_heads, sp)) * dtype_bytes
    return (sp - 1) * (seq_len // sp) * per_token // sp


def rank_main(seq_len: int, doc_len: int, vocab: int, out: str) -> None:
    """One rank of one configuration: a training step, then peak RSS and time to ``out`` (rank 0)."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from trainer.config import ModelConfig, OptimConfig, ParallelConfig, TinyConfig
    from trainer.data import collate
    from trainer.model import CausalLMWithLoss, load_lm
    from trainer.parallelize import DistEnv, build_sp_group, parallelize
    from trainer.schedule import build_optimizer
    from trainer.train import forward_backward, optimizer_step

    dist.init_process_group("gloo")
    env = DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=dist.get_rank())
    cpu = torch.device("cpu")
    parallel = ParallelConfig(mixed_precision="fp32", sp=env.world_size)
    sp = build_sp_group(parallel, env, cpu)
    lm = load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=vocab), seq_len)
    model = parallelize(CausalLMWithLoss(lm, 4096), parallel, env, cpu)
    optimizer, scheduler = build_optimizer(model, OptimConfig(), total_steps=1)
    rng = np.random.default_rng(0)
    bounds = np.unique(np.concatenate([np.arange(0, seq_len, doc_len) + doc_len // 3, [0, seq_len]]))
    bounds = bounds[bounds <= seq_len]
    sample = {
        "input_ids": rng.integers(0, vocab, seq_len),
        "indices": np.stack([bounds[:-1], bounds[1:]], 1),
    }
    batch = collate([sample])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB: imports, model, batch
    began = time.perf_counter()
    forward_backward(model, [batch], env, cpu, "sdpa_docs", sp)
    optimizer_step(model, optimizer, scheduler, grad_clip=1.0)
    seconds = time.perf_counter() - began
    peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, before, seconds])
    gathered = [torch.zeros(3, dtype=peak.dtype) for _ in range(env.world_size)]
    dist.all_gather(gathered, peak)
    if env.rank == 0:
        Path(out).write_text(json.dumps([g.tolist() for g in gathered]))
    dist.destroy_process_group()


def run_config(sp: int, seq_len: int, doc_len: int, vocab: int) -> list[list[float]]:
    """Launches one configuration with torchrun; returns [[peak GiB, GiB before the step, seconds], ...] per rank."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [
            str(torchrun),
            "--standalone",
            f"--nproc_per_node={sp}",
            __file__,
            "--rank-main",
            "--seq-len",
            str(seq_len),
            "--doc-len",
            str(doc_len),
            "--vocab",
            str(vocab),
            "--result",
            str(out),
        ]
        # torchrun sets one thread per process only when it starts several: say it for SP 1 too
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        subprocess.run(command, check=True, cwd=ROOT, env=env)
        return json.loads(out.read_text())


def report(results: dict[int, list[list[float]]], seq_len: int, doc_len: int, vocab: int) -> str:
    """The markdown table of the results and the all-to-all volumes."""
    lines = [
        "# Sequence parallelism: peak memory per rank and all-to-all volume",
        "",
        f"One training step (forward, backward, AdamW) on one sequence of {seq_len:,} tokens",
        f"(documents of {doc_len:,} tokens), tiny Llama (hidden 64, 2 layers, 4 heads, 2 KV heads,",
        f"{vocab:,} vocabulary), fp32, FSDP2, activation checkpointing, chunked loss (4,096 tokens),",
        "CPU, gloo, one thread per rank. Peak RSS includes imports, model and batch (the 'before' column).",
        "",
        "| SP | ranks | tokens per rank | peak RSS per rank (GiB) | of which before the step | step time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for sp, ranks in results.items():
        peaks = ", ".join(f"{p:.2f}" for p, _, _ in ranks)
        before = ", ".join(f"{b:.2f}" for _, b, _ in ranks)
        seconds = max(s for _, _, s in ranks)
        lines.append(f"| {sp} | {len(ranks)} | {seq_len // sp:,} | {peaks} | {before} | {seconds:.0f} |")
    lines += [
        "",
        "All-to-all bytes one rank sends per decoder layer, forward pass (backward moves the same",
        "again, activation checkpointing repeats the forward):",
        "`(P - 1) / P * T / P * head_dim * (2 H + 2 max(Hkv, P)) * bytes`",
        "",
        "| model | T | P | H | Hkv | head_dim | dtype | bytes per layer and rank (forward) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    models = [("tiny (smoke)", 4, 2, 16, 4, "fp32", 2), ("Llama-3-8B", 32, 8, 128, 2, "bf16", 8)]
    for name, heads, kv_heads, head_dim, nbytes, dtype, sp in models:
        volume = all_to_all_bytes(seq_len, sp, heads, kv_heads, head_dim, nbytes)
        lines.append(
            f"| {name} | {seq_len:,} | {sp} | {heads} | {kv_heads} | {head_dim} | {dtype} | "
            f"{volume:,} ({volume / 2**20:.1f} MiB) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=524288)
    parser.add_argument("--doc-len", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=16384)
    parser.add_argument("--sp", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "trainer_sp_memory.md"))
    parser.add_argument("--rank-main", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_main:
        rank_main(args.seq_len, args.doc_len, args.vocab, args.result)
        return
    results = {sp: run_config(sp, args.seq_len, args.doc_len, args.vocab) for sp in args.sp}
    text = report(results, args.seq_len, args.doc_len, args.vocab)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

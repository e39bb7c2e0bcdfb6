"""GPU check of the trainer (run by bench/gpu_check.sh under torchrun, one GPU, < 8 minutes).

1. Every GPU attention backend against the exact per-document SDPA reference (fp32).
2. Tokens/s, MFU and peak memory of a ~1B Llama (Llama-3.2-1B shape, 128,256 vocabulary) on one
   65,536-token packed sequence per step: FSDP2 + bf16 + activation checkpointing + chunked loss.
3. The same batch through plain Hugging Face transformers (sdpa attention, gradient
   checkpointing, its own full-logits loss), for comparison.

Prints a markdown table; writes it to bench/results/trainer_gpu.md (or $OUT/trainer_gpu.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.attention import DocMask, available_backends, doc_attention  # noqa: E402
from trainer.config import ModelConfig, OptimConfig, ParallelConfig, TinyConfig  # noqa: E402
from trainer.metrics import matmul_params, peak_flops, step_flops  # noqa: E402
from trainer.model import CausalLMWithLoss, load_lm  # noqa: E402
from trainer.parallelize import DistEnv, parallelize  # noqa: E402
from trainer.schedule import build_optimizer  # noqa: E402
from trainer.train import forward_backward, optimizer_step  # noqa: E402

SEQ = 65536
ONE_B = TinyConfig(
    vocab_size=128256, hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8, intermediate_size=8192
)
BOUNDS = [0, 30000, 52000, 60000, 65000, SEQ]  # five documents


def check_attention(device) -> list[str]:
    """Max abs difference of each backend from the fp32 per-document reference."""
    torch.manual_seed(0)
    q = torch.randn(1, 8, 8192, 128, device=device)  # (B, H, T, D)
    k = torch.randn(1, 2, 8192, 128, device=device)  # (B, Hkv, T, D)
    v = torch.randn(1, 2, 8192, 128, device=device)
    cu = torch.tensor([0, 1000, 1001, 5000, 8192])
    reference, _ = doc_attention(
        None, q, k, v, None, doc_mask=DocMask.from_cu_seqlens(cu, device, "sdpa_docs")
    )
    lines = []
    for backend in available_backends(device):
        try:
            qb, kb, vb = (t.bfloat16() for t in (q, k, v))
            out, _ = doc_attention(
                None, qb, kb, vb, None, doc_mask=DocMask.from_cu_seqlens(cu, device, backend)
            )
            lines.append(f"| {backend} | bf16 | {(out.float() - reference).abs().max().item():.2e} |")
        except Exception as error:  # report and go on: this is a diagnostic script
            lines.append(f"| {backend} | bf16 | failed: {type(error).__name__}: {str(error)[:80]} |")
    return lines


def batch():
    """One packed 65,536-token micro-batch with BOUNDS as documents."""
    ids = torch.randint(0, ONE_B.vocab_size, (1, SEQ))
    positions = torch.cat([torch.arange(b - a) for a, b in zip(BOUNDS[:-1], BOUNDS[1:])])[None]
    labels = torch.roll(ids, -1, 1)
    labels[0, [b - 1 for b in BOUNDS[1:]]] = -100
    return {"input_ids": ids, "position_ids": positions, "labels": labels, "cu_seqlens": torch.tensor(BOUNDS)}


def ours(device, steps=4) -> dict:
    """Our trainer's step on the 1B model."""
    lm = load_lm(ModelConfig(tiny=True, rope_theta=8e6), ONE_B, SEQ)
    n_params = matmul_params(lm)
    model = parallelize(CausalLMWithLoss(lm, 4096), ParallelConfig(), DistEnv(), device)
    optimizer, scheduler = build_optimizer(model, OptimConfig(), total_steps=100, fused=True)
    mb, times = batch(), []
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(steps):
        torch.cuda.synchronize()
        began = time.perf_counter()
        result = forward_backward(model, [mb], DistEnv(), device, "auto")
        optimizer_step(model, optimizer, scheduler, 1.0)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    seconds = min(times[1:])
    sum_sq = sum((b - a) ** 2 for a, b in zip(BOUNDS[:-1], BOUNDS[1:]))
    flops = step_flops(n_params, ONE_B.num_layers, ONE_B.hidden_size, SEQ, sum_sq)
    return {
        "tokens_per_s": SEQ / seconds,
        "mfu": flops / seconds / (peak_flops(device, None) or float("nan")),
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        "loss": result.loss,
    }


def plain_hf(device, steps=4) -> dict:
    """Plain transformers on the same batch: sdpa, gradient checkpointing, full-logits loss, one document."""
    from transformers import AutoModelForCausalLM

    from trainer.model import tiny_llama_config

    config = tiny_llama_config(ONE_B, SEQ, 8e6)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.bfloat16).to(
        device
    )
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    mb, times = batch(), []
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    try:
        for _ in range(steps):
            torch.cuda.synchronize()
            began = time.perf_counter()
            out = model(input_ids=mb["input_ids"].to(device), labels=mb["input_ids"].to(device))
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - began)
    except torch.OutOfMemoryError:
        return {"oom": True, "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30}
    return {"tokens_per_s": SEQ / min(times[1:]), "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30}


def main() -> None:
    dist.init_process_group("nccl")
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    lines = [
        "## Attention backends vs the fp32 per-document reference",
        "",
        "| backend | dtype | max abs diff |",
        "|---|---|---:|",
        *check_attention(device),
        "",
    ]
    mine = ours(device)
    print(json.dumps({"ours": mine}), flush=True)
    torch.cuda.empty_cache()
    dist.destroy_process_group()
    base = plain_hf(device)
    print(json.dumps({"plain_hf": base}), flush=True)
    lines += [
        "## ~1B Llama (Llama-3.2-1B shape), one 65,536-token sequence of 5 documents per step, "
        f"{torch.cuda.get_device_name(device)}",
        "",
        "| setup | tokens/s | MFU | peak memory (GiB) |",
        "|---|---:|---:|---:|",
        f"| trainer: FSDP2 + bf16 + AC + chunked loss + doc-masked attention | {mine['tokens_per_s']:.0f} | "
        f"{mine['mfu']:.1%} | {mine['peak_gib']:.1f} |",
        "| plain transformers: sdpa + gradient checkpointing + full-logits loss | "
        + ("OOM | | " if base.get("oom") else f"{base['tokens_per_s']:.0f} | | ")
        + f"{base['peak_gib']:.1f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(os.environ.get("OUT", Path(__file__).parent / "results")) / "trainer_gpu.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()

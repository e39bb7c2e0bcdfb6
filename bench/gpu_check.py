"""One prepared GPU check of the trainer (run by bench/gpu_check.sh; < 8 minutes on one H200).

(a) Every document-masked attention backend available on the device (torch varlen, compiled flex,
    sdpa per document, flash-attn when installed) against the per-document fp32 reference, in
    bf16, forward and backward, on a packing whose document lengths come from the demo shards
    (bench/demo_spans.json). Tolerance: the norm of the error over the norm of the reference, at
    most 4u = 1.6% with u = 2^-8 bf16's rounding unit (q, k and v rounded to bf16 once each, the
    output once; accumulation is fp32 in every kernel).
(b) tokens/s, TFLOP/s and MFU of one training step of a ~1B Llama (Llama-3.2-1B shape, Llama-3
    vocabulary, random init) at 65,536 tokens with document masking (FSDP2 bf16 mixed precision,
    activation checkpointing, chunked loss), against plain transformers on the same batch and
    model: its own causal sdpa over the whole row, gradient checkpointing, full-logits loss.
(c) Peak memory of that step with the chunked loss versus full logits (one chunk of all tokens).
(d) If memory allows, one step at 524,288 tokens on the one GPU (no sequence parallelism).

It imports neither mosaicml-streaming nor datatrove (the device has neither): batches are built
here from the span lengths. ``--dry-run`` runs every part on the CPU with a tiny model and short
sequences (CI runs it), writing to bench/work/ unless --out says otherwise. ``--spans-from``
rewrites bench/demo_spans.json from a built demo (prolong_data's native MDS reader).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.attention import DocMask, available_backends, doc_attention  # noqa: E402
from trainer.config import ModelConfig, OptimConfig, ParallelConfig, TinyConfig  # noqa: E402
from trainer.metrics import matmul_params, peak_flops, step_flops  # noqa: E402
from trainer.model import CausalLMWithLoss, load_lm, tiny_llama_config  # noqa: E402
from trainer.parallelize import DistEnv, parallelize  # noqa: E402
from trainer.schedule import build_optimizer  # noqa: E402
from trainer.train import forward_backward, optimizer_step  # noqa: E402

SPANS = ROOT / "bench" / "demo_spans.json"
U_BF16 = 2.0**-8
ATTENTION_TOLERANCE = 4 * U_BF16
ONE_B = TinyConfig(
    vocab_size=128256, hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8, intermediate_size=8192
)
TINY = TinyConfig(
    vocab_size=1024, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
)


@dataclass
class Setup:
    """What one run of the check uses."""

    device: torch.device
    model: TinyConfig
    seq: int
    long_seq: int
    attention_heads: tuple[int, int, int]  # (H, Hkv, D) of the attention check
    steps: int
    dry_run: bool


def setup_for(dry_run: bool) -> Setup:
    if dry_run:
        return Setup(torch.device("cpu"), TINY, 2048, 8192, (4, 2, 16), 2, True)
    return Setup(torch.device("cuda", 0), ONE_B, 65536, 524288, (32, 8, 128), 3, False)


# ---------------------------------------------------------------------------------------------
# document lengths from the demo shards


def write_spans(folder: Path, out: Path, per_domain: int = 4) -> None:
    """Document lengths of the first ``per_domain`` sequences of every domain of a built demo."""
    from prolong_data.mds_format import iter_samples
    from prolong_data.mixture import read_mixture

    mixture, root = read_mixture(folder)
    spans = {}
    for domain, path in mixture.resolved_paths(root).items():
        rows = []
        for _, sample in zip(range(per_domain), iter_samples(path)):
            bounds = sample["indices"].reshape(-1, 2)
            rows.append([int(e - s) for s, e in bounds])
        spans[domain] = rows
    out.write_text(
        json.dumps({"seq_len": mixture.seq_len, "source": str(folder.name), "spans": spans}) + "\n"
    )
    print(f"wrote {out}")


def doc_lengths(total: int) -> list[int]:
    """Document lengths filling ``total`` tokens: the demo's sequences in turn (short-document
    domains first, then the long ones), cut to ``total``."""
    data = json.loads(SPANS.read_text())["spans"]
    order = sorted(data, key=lambda d: -sum(len(row) for row in data[d]))  # most documents first
    lengths, filled = [], 0
    while filled < total:
        for domain in order:
            for row in data[domain]:
                for length in row:
                    take = min(length, total - filled)
                    if take > 0:
                        lengths.append(take)
                        filled += take
    return lengths


def batch_of(lengths: list[int], vocab: int, seed: int = 0) -> dict:
    """One packed row: random ids, per-document positions and labels, cu_seqlens."""
    total = sum(lengths)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, total), generator=g)
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    labels = torch.roll(ids, -1, 1)
    ends = torch.tensor(lengths).cumsum(0)
    labels[0, ends - 1] = -100  # a document's last token predicts nothing of the next one
    cu = torch.cat([torch.zeros(1, dtype=torch.int64), ends]).to(torch.int32)
    return {"input_ids": ids, "position_ids": positions, "labels": labels, "cu_seqlens": cu}


# ---------------------------------------------------------------------------------------------
# (a) attention backends


def attention_check(s: Setup, lengths: list[int]) -> list[str]:
    heads, kv_heads, dim = s.attention_heads
    total = sum(lengths)
    g = torch.Generator().manual_seed(0)
    q, k, v, w = (torch.randn(1, h, total, dim, generator=g) for h in (heads, kv_heads, kv_heads, heads))
    q, k, v, w = (t.to(s.device) for t in (q, k, v, w))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])

    def run(backend, dtype, backward=True):
        leaves = [t.detach().to(dtype).requires_grad_(backward) for t in (q, k, v)]
        mask = DocMask.from_cu_seqlens(cu, s.device, backend)
        out, _ = doc_attention(None, *leaves, None, doc_mask=mask)  # (1, T, H, D)
        if not backward:
            return [out.float()]
        (out.float() * w.transpose(1, 2)).sum().backward()
        return [out.float()] + [t.grad.float() for t in leaves]

    reference = run("sdpa_docs", torch.float32)
    rows = []
    for backend in available_backends(s.device):
        try:
            began = time.perf_counter()
            backward = not (backend == "flex" and s.device.type == "cpu")  # flex has no CPU backward
            got = run(backend, torch.bfloat16, backward)
            seconds = time.perf_counter() - began
            errors = [float((a - b).norm() / b.norm()) for a, b in zip(got, reference)]
            verdict = "ok" if max(errors) <= ATTENTION_TOLERANCE else "FAIL"
            cells = " | ".join([f"{e:.2e}" for e in errors] + ["(no CPU backward)"] * (4 - len(errors)))
            rows.append(f"| {backend} | {cells} | {seconds:.2f} | {verdict} |")
        except Exception as error:  # a diagnostic: report and go on
            rows.append(f"| {backend} | failed: {type(error).__name__}: {str(error)[:100]} | | | FAIL |")
    return rows


# ---------------------------------------------------------------------------------------------
# (b) (c) (d) training steps


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def timed(device, steps: int, step) -> float:
    """Best seconds of ``steps`` calls of ``step`` after one warm-up call."""
    times = []
    for _ in range(steps + 1):
        synchronize(device)
        began = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - began)
    return min(times[1:])


def ours(s: Setup, batch: dict, chunk: int, steps: int) -> dict:
    """Our trainer's step: FSDP2 (bf16 mixed precision on the GPU), AC, doc-masked attention."""
    lm = load_lm(ModelConfig(tiny=True, rope_theta=8e6), s.model, batch["input_ids"].shape[1])
    n_params = matmul_params(lm)
    model = parallelize(CausalLMWithLoss(lm, chunk), ParallelConfig(), DistEnv(), s.device)
    optimizer, scheduler = build_optimizer(
        model, OptimConfig(), total_steps=100, fused=s.device.type == "cuda"
    )
    reset_peak(s.device)
    results = {}

    def step():
        results["loss"] = forward_backward(model, [batch], DistEnv(), s.device, "auto").loss
        optimizer_step(model, optimizer, scheduler, 1.0)

    seconds = timed(s.device, steps, step)
    lengths = batch["cu_seqlens"].diff().long()
    flops = step_flops(
        n_params, s.model.num_layers, s.model.hidden_size, lengths.sum(), int((lengths**2).sum())
    )
    return {"seconds": seconds, "flops": flops, "peak_gib": peak_gib(s.device), "loss": results["loss"]}


def plain_hf(s: Setup, batch: dict, steps: int) -> dict:
    """Plain transformers on the same batch and model shape: causal sdpa over the whole row,
    gradient checkpointing, its own full-logits loss."""
    from transformers import AutoModelForCausalLM

    seq = batch["input_ids"].shape[1]
    dtype = torch.bfloat16 if s.device.type == "cuda" else torch.float32
    config = tiny_llama_config(s.model, seq, 8e6)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype).to(s.device)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    n_params = matmul_params(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=s.device.type == "cuda")
    ids = batch["input_ids"].to(s.device)
    reset_peak(s.device)

    def step():
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        seconds = timed(s.device, steps, step)
    except torch.OutOfMemoryError:
        return {"oom": True, "peak_gib": peak_gib(s.device)}
    flops = step_flops(n_params, s.model.num_layers, s.model.hidden_size, seq, seq**2)  # one causal row
    return {"seconds": seconds, "flops": flops, "peak_gib": peak_gib(s.device)}


def fmt_gib(value) -> str:
    return "n/a (CPU)" if value is None else f"{value:.1f}"


def throughput_row(name: str, r: dict, tokens: int, peak: float | None) -> str:
    if r.get("oom"):
        return f"| {name} | OOM | | | {fmt_gib(r['peak_gib'])} |"
    tflops = r["flops"] / r["seconds"] / 1e12
    mfu = f"{r['flops'] / r['seconds'] / peak:.1%}" if peak else "n/a"
    return f"| {name} | {tokens / r['seconds']:,.0f} | {tflops:.1f} | {mfu} | {fmt_gib(r['peak_gib'])} |"


# ---------------------------------------------------------------------------------------------


def join_one_rank_group(device: torch.device) -> None:
    """A one-rank process group (FSDP2 needs one), without torchrun."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU with a tiny model")
    parser.add_argument(
        "--out", type=Path, help="results file (default bench/results/gpu.md; dry run: bench/work/)"
    )
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the device for MFU")
    parser.add_argument(
        "--spans-from", type=Path, help="rewrite bench/demo_spans.json from a built demo folder"
    )
    args = parser.parse_args(argv)
    if args.spans_from:
        write_spans(args.spans_from, SPANS)
        return 0
    s = setup_for(args.dry_run)
    if s.device.type == "cuda":
        torch.cuda.set_device(s.device)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    out = args.out or (ROOT / "bench" / ("work/gpu-dry-run.md" if s.dry_run else "results/gpu.md"))
    peak = peak_flops(s.device, args.peak_tflops)
    name = "CPU (dry run, tiny model)" if s.dry_run else torch.cuda.get_device_name(s.device)
    lengths = doc_lengths(s.seq)
    lines = [
        f"# GPU check: {name}",
        "",
        f"torch {torch.__version__}; {len(lengths)} documents in the {s.seq:,}-token row "
        f"(lengths from bench/demo_spans.json, longest {max(lengths):,}).",
        "",
    ]
    failures = 0

    def section(title, body):
        nonlocal failures
        part = [f"## {title}", ""]
        try:
            part.extend(body())
        except Exception:
            failures += 1
            part.append("```\n" + traceback.format_exc()[-1500:] + "```")
        lines.extend([*part, ""])
        print("\n".join(part) + "\n", flush=True)

    def attention():
        rows = attention_check(s, lengths)
        nonlocal failures
        failures += sum(row.endswith("FAIL |") for row in rows)
        return [
            f"Norm-wise relative error against fp32 per-document SDPA; tolerance {ATTENTION_TOLERANCE:.2%} (4u, bf16).",
            "",
            "| backend | out | dq | dk | dv | seconds (fwd+bwd) | |",
            "|---|---:|---:|---:|---:|---:|---|",
            *rows,
        ]

    batch = batch_of(lengths, s.model.vocab_size)
    results = {}

    def throughput():
        results["ours"] = ours(s, batch, 4096, s.steps)
        results["hf"] = plain_hf(s, batch, s.steps)
        return [
            f"One optimizer step, {s.seq:,} tokens, model {s.model.num_layers} layers x {s.model.hidden_size}; "
            "FLOPs: 6 N tokens + attention actually computed (per document for ours, the whole causal row for HF).",
            "",
            "| setup | tokens/s | TFLOP/s | MFU | peak memory (GiB) |",
            "|---|---:|---:|---:|---:|",
            throughput_row(
                "trainer: FSDP2 bf16 + AC + chunked loss + doc-masked attention", results["ours"], s.seq, peak
            ),
            throughput_row(
                "plain transformers: causal sdpa + gradient checkpointing + full logits",
                results["hf"],
                s.seq,
                peak,
            ),
        ]

    def memory():
        full = ours(s, batch, s.seq, 1)
        return [
            "| loss | peak memory (GiB) | seconds |",
            "|---|---:|---:|",
            f"| chunked (4,096 tokens per chunk) | {fmt_gib(results['ours']['peak_gib'])} | {results['ours']['seconds']:.2f} |",
            f"| full logits (one chunk) | {fmt_gib(full['peak_gib'])} | {full['seconds']:.2f} |",
        ]

    def long_step():
        long_batch = batch_of(doc_lengths(s.long_seq), s.model.vocab_size, seed=1)
        try:
            r = ours(s, long_batch, 4096, 1)
        except torch.OutOfMemoryError:
            return [f"OOM at {s.long_seq:,} tokens on one device (peak {fmt_gib(peak_gib(s.device))} GiB)"]
        return [
            "| setup | tokens/s | TFLOP/s | MFU | peak memory (GiB) |",
            "|---|---:|---:|---:|---:|",
            throughput_row(f"trainer, SP=1, {s.long_seq:,} tokens", r, s.long_seq, peak),
        ]

    join_one_rank_group(s.device)
    try:
        section("(a) Document-masked attention backends, bf16, forward and backward", attention)
        section("(b) Training step throughput", throughput)
        section("(c) Chunked versus full logits", memory)
        section(f"(d) One step at {s.long_seq:,} tokens", long_step)
    finally:
        dist.destroy_process_group()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}; {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

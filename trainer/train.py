"""The training loop: ``python -m trainer.train --config trainer/configs/stage1-64k.yaml [--a.b=value ...]``.

Read top to bottom: ``main`` parses the config and joins the process group; ``train`` builds the
model, optimizer and data, resumes if a checkpoint exists, and runs ``train_step`` until the
stage ends; ``train_step`` = ``forward_backward`` over the step's micro-batches, then
``optimizer_step``. The loss of a step is the sum of the token losses of all its micro-batches
on all ranks divided by the number of target tokens in all of them (not a mean of means).

Without CUDA the run is a smoke run (``--smoke``): the config's ``smoke:`` block swaps in a tiny
Llama (random-init, or the previous stage's smoke export) and a few steps, at the stage's own
sequence length. With ``parallel.sp > 1`` each sequence is split over a sequence-parallel group
of ranks (trainer/sequence_parallel.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from trainer.attention import DocMask, resolve_backend
from trainer.checkpoint import (
    full_model_state,
    latest_checkpoint,
    load_checkpoint,
    load_optimizer_state,
    save_checkpoint,
)
from trainer.config import Config, load_config, to_dict
from trainer.data import build_loader, endless
from trainer.evaluate import doc_loss_by_bucket, heldout_ids
from trainer.loss import IGNORE_INDEX
from trainer.metrics import MetricsLog, matmul_params, peak_flops, peak_memory_gib, read_metrics, step_flops
from trainer.model import CausalLMWithLoss, export_hf, load_lm, load_tokenizer
from trainer.parallelize import DistEnv, build_sp_group, data_parallel_size, load_from_rank0, parallelize
from trainer.schedule import build_optimizer
from trainer.sequence_parallel import SPGroup, shard_batch


@dataclass
class StepResult:
    """What one optimizer step measured."""

    loss: float
    """Token-averaged loss over the whole global batch."""
    tokens: int
    """Tokens processed by all ranks (targets or not)."""
    targets: int
    """Target tokens of the global batch (the loss denominator)."""
    sum_sq_doc_lens: int
    """Sum of squared document lengths over all ranks (for the attention FLOPs)."""
    grad_norm: float = 0.0
    """Global gradient norm before clipping."""


def all_reduce_sum(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum of ``value`` over ranks (identity on one process)."""
    if env.distributed:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def forward_backward(
    model,
    micro_batches: list[dict],
    env: DistEnv,
    device: torch.device,
    attention: str,
    sp: SPGroup | None = None,
):
    """Accumulates gradients of the global-token-averaged loss over this rank's micro-batches.

    Each micro-batch contributes ``sum of its token losses / global target count`` (times the
    world size, because FSDP averages gradients over ranks), so the summed gradient equals the
    gradient of the loss of the whole global batch. Under sequence parallelism the micro-batches
    hold whole sequences and this rank keeps its slice of them: the ranks of an SP group hold
    disjoint tokens, so the all-reduced counts are counts of distinct tokens.
    """
    micro_batches = [shard_batch(mb, sp) for mb in micro_batches]
    owns_spans = sp is None or sp.rank == 0  # cu_seqlens are replicated within an SP group
    counts = torch.tensor(
        [
            sum(int((mb["labels"] != IGNORE_INDEX).sum()) for mb in micro_batches),
            sum(mb["input_ids"].numel() for mb in micro_batches),
            sum(int((mb["cu_seqlens"].diff().long() ** 2).sum()) for mb in micro_batches)
            if owns_spans
            else 0,
        ],
        dtype=torch.float64,
        device=device,
    )
    targets, tokens, sum_sq = (int(x) for x in all_reduce_sum(counts, env).tolist())
    if targets == 0:
        raise ValueError("a step without any target token; check the shards' spans and masks")
    loss_sum = torch.zeros((), dtype=torch.float32, device=device)
    for mb in micro_batches:
        doc_mask = DocMask.from_cu_seqlens(mb["cu_seqlens"], device, attention, sp)
        summed = model(
            mb["input_ids"].to(device), mb["position_ids"].to(device), mb["labels"].to(device), doc_mask
        )
        (summed * (env.world_size / targets)).backward()
        loss_sum += summed.detach()
    loss = all_reduce_sum(loss_sum, env) / targets
    return StepResult(loss=float(loss), tokens=tokens, targets=targets, sum_sq_doc_lens=sum_sq)


def optimizer_step(model, optimizer, scheduler, grad_clip: float) -> float:
    """Clips the global gradient norm, steps AdamW and the schedule; returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def train_step(model, optimizer, scheduler, micro_batches, env, device, cfg: Config, sp=None) -> StepResult:
    """One optimizer step over the given micro-batches of this rank."""
    result = forward_backward(model, micro_batches, env, device, cfg.model.attention, sp)
    result.grad_norm = optimizer_step(model, optimizer, scheduler, cfg.optim.grad_clip)
    return result


def grad_accum_steps(cfg: Config, seq_len: int, dp_size: int) -> int:
    """Micro-batches per rank and step needed to reach ``train.tokens_per_step``.

    ``dp_size``: groups that see different sequences (ranks / parallel.sp).
    """
    per_pass = seq_len * cfg.data.micro_batch_size * dp_size
    if cfg.train.tokens_per_step % per_pass:
        raise ValueError(
            f"train.tokens_per_step={cfg.train.tokens_per_step} is not a multiple of seq_len x "
            f"micro_batch_size x data-parallel groups (ranks / parallel.sp) = {per_pass}; pick a multiple"
        )
    return cfg.train.tokens_per_step // per_pass


def pick_device(env: DistEnv) -> torch.device:
    """This rank's GPU, or the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return torch.device("cpu")


def build(cfg: Config, env: DistEnv, device: torch.device):
    """Model, optimizer, schedule and data loader of a run (a sequence-parallel group of ranks shares its data)."""
    loader, seq_len = build_loader(
        cfg.data.mixture, cfg.data.micro_batch_size, cfg.train.seed, cfg.data.num_workers, cfg.parallel.sp
    )
    if seq_len != cfg.data.seq_len:
        raise ValueError(
            f"the mixture has seq_len {seq_len} but data.seq_len is {cfg.data.seq_len}; make them agree"
        )
    if seq_len % cfg.parallel.sp:
        raise ValueError(f"seq_len {seq_len} does not split evenly over parallel.sp={cfg.parallel.sp} ranks")
    model = build_model(cfg, env, device, seq_len)
    optimizer, scheduler = build_optimizer(model, cfg.optim, cfg.train.steps, fused=device.type == "cuda")
    return model, optimizer, scheduler, loader, seq_len


def build_model(cfg: Config, env: DistEnv, device: torch.device, seq_len: int) -> CausalLMWithLoss:
    """The LM with its loss, checkpointed and sharded on ``device``.

    Several FSDP ranks starting from a checkpoint: rank 0 alone reads it, the others build the
    model on the meta device and receive their shards from rank 0 (``load_from_rank0``).
    """
    from_rank0 = env.distributed and cfg.parallel.fsdp and not cfg.model.tiny
    lm = load_lm(cfg.model, cfg.tiny, seq_len, weights=env.rank == 0 or not from_rank0)
    model = CausalLMWithLoss(lm, cfg.model.loss_chunk_size)
    full_state = model.state_dict() if from_rank0 and env.rank == 0 else None  # before sharding
    model = parallelize(model, cfg.parallel, env, device)
    if from_rank0:
        load_from_rank0(model, full_state)
    return model


def resume(cfg: Config, ckpt_dir: Path, model, optimizer, scheduler, loader, metrics_path: Path, env) -> int:
    """Loads the newest checkpoint if resuming is on; drops metrics lines past it. Returns the step.

    A fresh run with ``checkpoint.init_optimizer_from`` takes the previous stage's AdamW state.
    """
    path = latest_checkpoint(ckpt_dir) if cfg.checkpoint.resume else None
    if path is None:
        if cfg.checkpoint.init_optimizer_from:
            load_optimizer_state(cfg.checkpoint.init_optimizer_from, model, optimizer)
        return 0
    step = load_checkpoint(path, model, optimizer, scheduler, loader)
    if env.is_main and metrics_path.is_file():
        kept = [r for r in read_metrics(metrics_path) if r["step"] <= step]
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return step


def log_record(step, result: StepResult, seconds: float, lr: float, model, env, device, cfg) -> dict:
    """The metrics line of one step."""
    config = model.lm.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    d_attn = config.num_attention_heads * head_dim
    flops = step_flops(
        matmul_params(model.lm), config.num_hidden_layers, d_attn, result.tokens, result.sum_sq_doc_lens
    )
    peak = peak_flops(device, cfg.log.peak_tflops)
    return {
        "step": step,
        "loss": result.loss,
        "lr": lr,
        "grad_norm": result.grad_norm,
        "tokens": result.tokens,
        "target_tokens": result.targets,
        "tokens_per_s": result.tokens / seconds,
        "tflops_per_device": flops / seconds / env.world_size / 1e12,
        "mfu": flops / seconds / env.world_size / peak if peak else None,
        "peak_mem_gib": peak_memory_gib(device),
        "seconds": seconds,
    }


def export(cfg: Config, model, out: Path, env: DistEnv) -> Path | None:
    """Writes ``<out>/hf`` from the trained weights (collective; rank 0 writes)."""
    state = full_model_state(model)
    if not env.is_main:
        return None
    path = export_hf(state, model.lm.config, load_tokenizer(cfg.model), out / "hf")
    if cfg.smoke:
        check_export_loads(path, state)
    return path


def check_export_loads(path: Path, state: dict) -> None:
    """Loads the export with plain transformers and checks its weights are the trained ones."""
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).state_dict()
    trained = {key.removeprefix("lm."): value for key, value in state.items()}
    for key, value in loaded.items():
        if not torch.equal(value, trained[key].to(value.dtype)):
            raise AssertionError(f"the HF export in {path} differs from the trained model at {key}")
    print(f"HF export {path} loads with AutoModelForCausalLM and holds the trained weights", flush=True)


def train(cfg: Config, env: DistEnv) -> Path:
    """Runs (or resumes) the stage described by ``cfg``; returns the run folder."""
    from tqdm import tqdm

    device = pick_device(env)
    out = Path(cfg.out)
    ckpt_dir, metrics_path = out / "checkpoints", out / "metrics.jsonl"
    torch.manual_seed(cfg.train.seed)
    sp = build_sp_group(cfg.parallel, env, device)
    model, optimizer, scheduler, loader, seq_len = build(cfg, env, device)
    accum = grad_accum_steps(cfg, seq_len, data_parallel_size(cfg.parallel, env))
    cfg.model.attention = resolve_backend(cfg.model.attention, device)
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    start = resume(cfg, ckpt_dir, model, optimizer, scheduler, loader, metrics_path, env)
    stop = min(cfg.train.steps, cfg.train.stop_at_step or cfg.train.steps)
    log = MetricsLog(metrics_path, env.is_main)
    batches = endless(loader)
    heldout = heldout_ids(cfg, load_tokenizer(cfg.model)) if cfg.eval.every_steps else []
    bar = tqdm(total=stop, initial=start, disable=not (env.is_main and cfg.log.progress_bar), unit="step")
    for step in range(start + 1, stop + 1):
        began = time.perf_counter()
        micro_batches = [next(batches) for _ in range(accum)]
        lr = scheduler.get_last_lr()[0]
        result = train_step(model, optimizer, scheduler, micro_batches, env, device, cfg, sp)
        if step % cfg.log.every_steps == 0 or step == stop:
            record = log_record(step, result, time.perf_counter() - began, lr, model, env, device, cfg)
            log.write(record)
            bar.set_postfix(
                loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}"
            )
        bar.update(1)
        if cfg.eval.every_steps and (step % cfg.eval.every_steps == 0 or step == stop):
            log.write(
                {
                    "step": step,
                    **doc_loss_by_bucket(model, heldout, cfg.eval.window, device, cfg.model.attention),
                }
            )
        if step % cfg.checkpoint.every_steps == 0 or step == stop:
            save_checkpoint(ckpt_dir, step, model, optimizer, scheduler, loader)
    bar.close()
    if stop == cfg.train.steps and cfg.checkpoint.export_hf:
        export(cfg, model, out, env)
    return out


def init_distributed() -> DistEnv:
    """Reads the launcher's variables (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK) and joins the group."""
    env = DistEnv(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )
    launched = "RANK" in os.environ  # torchrun sets it, even for a single process
    if launched and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    return env


def parse_args(argv: list[str]) -> tuple[str | None, list[str]]:
    """Splits ``--config PATH`` from the field overrides."""
    args, config_path = list(argv), None
    for index, arg in enumerate(args):
        if arg == "--config":
            config_path = args[index + 1]
            del args[index : index + 2]
            break
        if arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
            del args[index]
            break
    return config_path, args


SMOKE_BANNER = (
    "SMOKE RUN: no CUDA device (or --smoke): a tiny Llama (random-init, or the previous stage's smoke export) "
    "trains for a few steps on the given shards at the stage's sequence length. This checks the pipeline end "
    "to end; it is not real training."
)


def main(argv: list[str] | None = None) -> Path:
    """Command-line entry point."""
    config_path, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    smoke = "--smoke" in overrides or "--smoke=true" in overrides or not torch.cuda.is_available()
    cfg = load_config(config_path, overrides, smoke=smoke)
    env = init_distributed()
    if cfg.smoke and env.is_main:
        print(SMOKE_BANNER, flush=True)
    try:
        out = train(cfg, env)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if env.is_main:
        print(f"run folder: {out}", flush=True)
    return out


if __name__ == "__main__":
    main()

"""The training loop: ``python -m trainer.train --config trainer/configs/stage1-64k.yaml [--a.b=value ...]``.

Read top to bottom: ``main`` loads the config and joins the process group; ``train`` builds a
``Run`` (model, optimizer, schedule, data and where they live), resumes if a checkpoint exists,
and runs ``train_step`` until the stage ends; ``train_step`` = ``forward_backward`` over the
step's micro-batches, then ``optimizer_step``. The loss of a step is the sum of the token losses
of all its micro-batches on all ranks divided by the number of target tokens in all of them (not
a mean of means).

Without CUDA the run is a smoke run (``--smoke``, decided by ``load_config``): the config's
``smoke:`` block swaps in a tiny Llama (random-init, or the previous stage's smoke export) and a
few steps, at the stage's own sequence length. With ``parallel.sp > 1`` each sequence is split
over a sequence-parallel group of ranks (trainer/sequence_parallel.py).

A user error (a bad config value, a missing mixture or checkpoint, shards that do not fit the
model: ``trainer/preflight.py``, checked before anything starts) ends the command with one
message and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prolong_data.extras import exit_unless_train_extra

exit_unless_train_extra("python -m trainer.train")  # the core install: one line saying what to install

import torch
import torch.distributed as dist
import yaml

from prolong_data.atomic_write import write_text_atomic
from prolong_data.layout import MIXTURE
from prolong_data.path_safety import check_output_apart
from prolong_data.signals import RESUME_LINE, Stopped, StopRequest, exit_status, stop_on_signals
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
from trainer.metrics import (
    MetricsLog,
    matmul_params,
    peak_flops,
    peak_memory_gib,
    start_wandb,
    step_flops,
    truncate_metrics,
)
from trainer.model import CausalLMWithLoss, checkpoint_dtype, export_hf, load_lm, load_tokenizer
from trainer.parallelize import (
    DistEnv,
    build_sp_group,
    compute_dtype,
    data_parallel_size,
    load_from_rank0,
    parallelize,
)
from trainer.preflight import check_run
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
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
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


@dataclass
class Run:
    """Everything a running stage holds, built once by ``build`` and handed to the step functions."""

    cfg: Config
    """The stage's configuration (never modified while training)."""
    env: DistEnv
    """Where this process sits in the job."""
    device: torch.device
    """This rank's compute device."""
    model: CausalLMWithLoss
    """The LM with its loss, checkpointed and sharded."""
    optimizer: torch.optim.Optimizer
    """AdamW."""
    scheduler: torch.optim.lr_scheduler.LRScheduler
    """Warmup + cosine schedule."""
    loader: torch.utils.data.DataLoader
    """The resumable micro-batch loader of this rank."""
    seq_len: int
    """Tokens per sequence (the mixture's)."""
    attention: str
    """The attention backend, resolved once for the device (never ``auto``)."""
    accum: int
    """Micro-batches per rank and optimizer step."""
    sp: SPGroup | None = None
    """This rank's sequence-parallel group, or None."""

    @property
    def out(self) -> Path:
        """The run folder."""
        return Path(self.cfg.out)

    @property
    def checkpoints(self) -> Path:
        """Where checkpoints are saved."""
        return self.out / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        """The run's ``metrics.jsonl``."""
        return self.out / "metrics.jsonl"


def train_step(run: Run, micro_batches: list[dict]) -> StepResult:
    """One optimizer step over the given micro-batches of this rank."""
    result = forward_backward(run.model, micro_batches, run.env, run.device, run.attention, run.sp)
    result.grad_norm = optimizer_step(run.model, run.optimizer, run.scheduler, run.cfg.optim.grad_clip)
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


def build(cfg: Config, env: DistEnv, device: torch.device) -> Run:
    """The run's model, optimizer, schedule and data loader (a sequence-parallel group of ranks
    shares its data)."""
    sp = build_sp_group(cfg.parallel, env, device)
    loader, seq_len = build_loader(
        cfg.data.mixture,
        cfg.data.micro_batch_size,
        cfg.train.seed,
        cfg.data.num_workers,
        cfg.parallel.sp,
        apply_masks=cfg.data.apply_masks,
    )
    if seq_len != cfg.data.seq_len:
        raise ValueError(
            f"the mixture has seq_len {seq_len} but data.seq_len is {cfg.data.seq_len}; make them agree"
        )
    if seq_len % cfg.parallel.sp:
        raise ValueError(f"seq_len {seq_len} does not split evenly over parallel.sp={cfg.parallel.sp} ranks")
    model = build_model(cfg, env, device, seq_len)
    optimizer, scheduler = build_optimizer(model, cfg.optim, cfg.train.steps, fused=device.type == "cuda")
    return Run(
        cfg=cfg,
        env=env,
        device=device,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        loader=loader,
        seq_len=seq_len,
        attention=resolve_backend(cfg.model.attention, device),
        accum=grad_accum_steps(cfg, seq_len, data_parallel_size(cfg.parallel, env)),
        sp=sp,
    )


def build_model(cfg: Config, env: DistEnv, device: torch.device, seq_len: int) -> CausalLMWithLoss:
    """The LM with its loss, checkpointed and sharded on ``device``.

    Under FSDP (torchrun, any number of ranks) starting from a checkpoint, every rank builds the
    model on the meta device; rank 0 alone reads the checkpoint, in the training dtype when the
    checkpoint is stored in it (a bf16 Llama-3-8B for bf16 training: 16 GB of host memory, never an
    fp32 copy), and every rank receives its fp32 master shards from it (``load_from_rank0``).
    """
    from_rank0 = dist.is_initialized() and cfg.parallel.fsdp and not cfg.model.tiny
    if not from_rank0:
        lm = load_lm(cfg.model, cfg.tiny, seq_len)
        return parallelize(CausalLMWithLoss(lm, cfg.model.loss_chunk_size), cfg.parallel, env, device)
    full_state = full_buffers = None
    if env.rank == 0:
        loaded = CausalLMWithLoss(load_lm(cfg.model, cfg.tiny, seq_len, dtype=host_dtype(cfg, device)))
        full_state = loaded.state_dict()
        full_buffers = dict(loaded.named_buffers())
        del loaded
    lm = load_lm(cfg.model, cfg.tiny, seq_len, weights=False)
    model = parallelize(CausalLMWithLoss(lm, cfg.model.loss_chunk_size), cfg.parallel, env, device)
    load_from_rank0(model, full_state, full_buffers)
    return model


def host_dtype(cfg: Config, device: torch.device) -> torch.dtype:
    """The dtype rank 0 reads a checkpoint in: the training (compute) dtype when the checkpoint is
    stored in it, else fp32 (never rounding the weights a run starts from)."""
    compute = compute_dtype(cfg.parallel, device)
    return compute if checkpoint_dtype(cfg.model.path) == compute else torch.float32


def resume(run: Run) -> int:
    """Loads the newest checkpoint if resuming is on and cuts ``metrics.jsonl`` back to it (which
    also drops a line half-written by a killed run). Returns the step to continue after.

    A fresh run with ``checkpoint.init_optimizer_from`` takes the previous stage's AdamW state.
    """
    cfg = run.cfg
    path = latest_checkpoint(run.checkpoints) if cfg.checkpoint.resume else None
    if path is None:
        step = 0
        if cfg.checkpoint.init_optimizer_from:
            load_optimizer_state(cfg.checkpoint.init_optimizer_from, run.model, run.optimizer)
    else:
        step = load_checkpoint(path, run.model, run.optimizer, run.scheduler, run.loader)
    if run.env.is_main:
        truncate_metrics(run.metrics_path, step)
    return step


def log_record(run: Run, step: int, result: StepResult, seconds: float, lr: float) -> dict:
    """The metrics line of one step."""
    config = run.model.lm.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    d_attn = config.num_attention_heads * head_dim
    flops = step_flops(
        matmul_params(run.model.lm), config.num_hidden_layers, d_attn, result.tokens, result.sum_sq_doc_lens
    )
    peak = peak_flops(run.device, run.cfg.log.peak_tflops)
    world = run.env.world_size
    return {
        "step": step,
        "loss": result.loss,
        "lr": lr,
        "grad_norm": result.grad_norm,
        "tokens": result.tokens,
        "target_tokens": result.targets,
        "tokens_per_s": result.tokens / seconds,
        "tflops_per_device": flops / seconds / world / 1e12,
        "mfu": flops / seconds / world / peak if peak else None,
        "peak_mem_gib": peak_memory_gib(run.device),
        "seconds": seconds,
    }


def open_metrics(run: Run) -> MetricsLog:
    """The run's metrics sinks (rank 0): metrics.jsonl, TensorBoard and W&B as configured."""
    log, main_rank = run.cfg.log, run.env.is_main
    wandb_run = None
    if log.wandb and main_rank:
        wandb_run = start_wandb(log.wandb_project, log.wandb_run or run.out.name, to_dict(run.cfg))
    return MetricsLog(
        run.metrics_path,
        main_rank,
        tensorboard_dir=run.out / "tensorboard" if log.tensorboard else None,
        wandb_run=wandb_run,
    )


def export(run: Run) -> Path | None:
    """Writes ``<out>/hf`` from the trained weights (collective; rank 0 writes). The export is
    written to ``<out>/.hf.partial`` and renamed when whole, so ``hf`` is never half-written."""
    state = full_model_state(run.model)
    if not run.env.is_main:
        return None
    final, partial = run.out / "hf", run.out / ".hf.partial"
    shutil.rmtree(partial, ignore_errors=True)  # what a killed export left
    tokenizer = load_tokenizer(run.cfg.model)
    export_hf(state, run.model.lm.config, tokenizer, partial, chat=run.cfg.data.apply_masks)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    if run.cfg.smoke:
        check_export_loads(final, state)
    return final


def check_export_loads(path: Path, state: dict) -> None:
    """Loads the export with plain transformers and checks its weights are the trained ones."""
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).state_dict()
    trained = {key.removeprefix("lm."): value for key, value in state.items()}
    for key, value in loaded.items():
        if not torch.equal(value, trained[key].to(value.dtype)):
            raise AssertionError(f"the HF export in {path} differs from the trained model at {key}")
    print(f"HF export {path} loads with AutoModelForCausalLM and holds the trained weights", flush=True)


def mixture_inputs(mixture: str) -> list[str]:
    """The mixture file and the domain folders its streams name (only the file when it does not
    read: the data checks say why)."""
    from prolong_data.mixture import read_mixture

    try:
        parsed, root = read_mixture(mixture)
        folders = parsed.resolved_paths(root)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [mixture]
    file = Path(mixture) / MIXTURE if Path(mixture).is_dir() else Path(mixture)
    return [str(file), *map(str, folders.values())]


def run_inputs(cfg: Config) -> list[str]:
    """The local paths a run reads: the shards' folder, the model and tokenizer, the held-out
    documents, the optimizer state of the previous stage (hub ids and remote paths are left out)."""
    paths = [*mixture_inputs(cfg.data.mixture), cfg.model.path, cfg.model.tokenizer]
    paths += [cfg.eval.heldout if cfg.eval.every_steps else None, cfg.checkpoint.init_optimizer_from]
    return [p for p in paths if p and Path(p).exists()]


def train(cfg: Config, env: DistEnv) -> Path:
    """Runs (or resumes) the stage described by ``cfg``; returns the run folder."""
    from tqdm import tqdm

    check_output_apart(cfg.out, run_inputs(cfg), flag="out")
    torch.manual_seed(cfg.train.seed)
    with stop_on_signals("train"):  # a signal before the first step ends the run at once
        run = build(cfg, env, pick_device(env))
        if env.is_main:
            write_text_atomic(run.out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        start = resume(run)
    stop = min(cfg.train.steps, cfg.train.stop_at_step or cfg.train.steps)
    log = open_metrics(run)
    batches = endless(run.loader)
    heldout = heldout_ids(cfg, load_tokenizer(cfg.model)) if cfg.eval.every_steps else []
    bar = tqdm(total=stop, initial=start, disable=not (env.is_main and cfg.log.progress_bar), unit="step")
    signals = StopRequest("train")
    with signals:
        try:
            _train_steps(run, cfg, start, stop, log, batches, heldout, bar, signals)
        finally:
            bar.close()
            log.close()
    if stop == cfg.train.steps and cfg.checkpoint.export_hf:
        with stop_on_signals("train"):  # a signal now leaves no `hf` folder; the same command exports
            export(run)
    return run.out


def _train_steps(run: Run, cfg: Config, start: int, stop: int, log, batches, heldout, bar, signals) -> None:
    """Steps `start + 1` .. `stop`: train, log, evaluate and checkpoint as configured. A signal
    (`signals`) ends the loop at the next step boundary on every rank; SIGTERM (a scheduler's
    preemption) saves a checkpoint there first, unless the step just saved one."""
    for step in range(start + 1, stop + 1):
        began = time.perf_counter()
        micro_batches = [next(batches) for _ in range(run.accum)]
        lr = run.scheduler.get_last_lr()[0]
        result = train_step(run, micro_batches)
        if step % cfg.log.every_steps == 0 or step == stop:
            record = log_record(run, step, result, time.perf_counter() - began, lr)
            log.write(record)
            bar.set_postfix(
                loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}"
            )
        bar.update(1)
        if cfg.eval.every_steps and (step % cfg.eval.every_steps == 0 or step == stop):
            buckets = doc_loss_by_bucket(run.model, heldout, cfg.eval.window, run.device, run.attention)
            log.write({"step": step, **buckets})
        if step % cfg.checkpoint.every_steps == 0 or step == stop:
            save_checkpoint(run.checkpoints, step, run.model, run.optimizer, run.scheduler, run.loader)
        saved = step % cfg.checkpoint.every_steps == 0 or step == stop
        signum = agreed_signal(signals.signum, run.device)
        if signum:
            if signum == signal.SIGTERM and not saved:
                save_checkpoint(run.checkpoints, step, run.model, run.optimizer, run.scheduler, run.loader)
            raise Stopped(signum)


def agreed_signal(signum: int | None, device) -> int:
    """The signal any rank got (0: none), the same on every rank, so that all stop at one step."""
    if not dist.is_initialized():
        return signum or 0
    flag = torch.tensor([signum or 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


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
    """``--config PATH`` and the ``--section.field=value`` overrides that follow it."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer.train",
        description="Train one ProLong stage; any config field can be overridden as --section.field=value.",
    )
    parser.add_argument("--config", help="the stage's YAML file, e.g. trainer/configs/stage1-64k.yaml")
    args, overrides = parser.parse_known_args(argv)
    return args.config, overrides


SMOKE_BANNER = (
    "SMOKE RUN: no CUDA device (or --smoke): a tiny Llama (random-init, or the previous stage's smoke export) "
    "trains for a few steps on the given shards at the stage's sequence length. This checks the pipeline end "
    "to end; it is not real training."
)


def main(argv: list[str] | None = None) -> Path:
    """Runs a stage from command-line arguments; user errors raise ValueError (see ``cli``)."""
    config_path, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    cfg = load_config(config_path, overrides)
    notices = check_run(cfg)  # shards, vocabulary and masks fit together, before anything starts
    env = init_distributed()
    if cfg.smoke and env.is_main:
        print(SMOKE_BANNER, flush=True)
    for notice in notices if env.is_main else []:
        print(notice, flush=True)
    try:
        out = train(cfg, env)
    except BaseException:
        if dist.is_initialized():  # no barrier: the other ranks may never reach it
            dist.destroy_process_group()
        raise
    leave_process_group()
    if env.is_main:
        print(f"run folder: {out}", flush=True)
    return out


def leave_process_group() -> None:
    """Waits until every rank is done communicating, then destroys the process group.

    Without the barrier a fast rank could tear its group down (and rank 0 its TCP store) while a
    slow rank, on a loaded machine, still finishes its last collective.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def cli(argv: list[str] | None = None) -> int:
    """``main`` for the command line: a user error is one message on stderr and exit status 2."""
    try:
        main(argv)
    except Stopped as stopped:  # at a step boundary; SIGTERM saved a checkpoint there
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"train: {RESUME_LINE}", file=sys.stderr, flush=True)
        return exit_status(stopped.signum)
    except (ValueError, FileNotFoundError) as error:
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())

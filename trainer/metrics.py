"""Throughput, MFU and memory figures, written to the console and to ``metrics.jsonl``.

MFU (model FLOPs utilisation) = model FLOPs of the step / (step seconds x number of devices x peak
FLOP/s of one device), with the model FLOPs of a step counted as

    6 * N * tokens  +  6 * n_layers * d_attn * sum over documents of L_doc^2

where N is the number of parameters used in matrix multiplies (all parameters except the input
embedding; the LM head counts), ``d_attn = n_heads * head_dim``, and ``L_doc`` the document
lengths of the step. The first term is the forward (2 N per token) plus the backward (4 N); the
second is the causal, document-masked attention score and value products (2 * d_attn * L^2 per
layer and document in the forward, three times that with the backward). Activation
recomputation is not counted, as is usual for MFU.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import torch

PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}
"""Dense bf16 tensor-core peaks (TFLOP/s) of known GPUs, looked up by device name."""


def matmul_params(lm: torch.nn.Module) -> int:
    """N of the MFU formula: parameters that take part in matrix multiplies."""
    embed = lm.get_input_embeddings().weight
    head = lm.get_output_embeddings().weight
    total = sum(p.numel() for p in lm.parameters())
    return total if embed is head else total - embed.numel()


def step_flops(n_params: int, n_layers: int, d_attn: int, tokens: int, sum_sq_doc_lens: int) -> float:
    """Model FLOPs of one optimizer step (see the module docstring)."""
    return 6.0 * n_params * tokens + 6.0 * n_layers * d_attn * sum_sq_doc_lens


def peak_flops(device: torch.device, configured_tflops: float | None) -> float | None:
    """Peak FLOP/s of one device: the configured value, else a known GPU's, else None (no MFU)."""
    if configured_tflops:
        return configured_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in PEAK_TFLOPS.items() if key in name), None)


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated GPU memory, or on CPU the process's peak resident set size, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib * (1 if sys.platform == "darwin" else 1024) / 2**30


class MetricsLog:
    """Writes one record per logged step: a JSON line in ``metrics.jsonl``, and optionally the same
    numbers as TensorBoard scalars and to Weights & Biases. Only rank 0 writes (``enabled``).
    """

    def __init__(
        self,
        path: str | Path,
        enabled: bool,
        *,
        tensorboard_dir: str | Path | None = None,
        wandb_run=None,
    ):
        self.path = Path(path)
        self.enabled = enabled
        self.tensorboard = None
        self.wandb = wandb_run if enabled else None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard_dir is not None:
                self.tensorboard = tensorboard_writer(tensorboard_dir)

    def write(self, record: dict) -> None:
        """Appends ``record`` (a dict with ``step``) to every sink."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        scalars = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(f"train/{key}", value, global_step=record["step"])
            self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.log({f"train/{k}": v for k, v in scalars.items()}, step=record["step"])

    def close(self) -> None:
        """Flushes and closes the TensorBoard file and the W&B run."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def tensorboard_writer(folder: str | Path):
    """A ``SummaryWriter`` on ``folder``; a ValueError with the fix when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "log.tensorboard=true needs the tensorboard package: pip install 'prolong-data[train]' "
            "(or pip install tensorboard), or pass --log.tensorboard=false"
        ) from None
    return SummaryWriter(log_dir=str(folder))


def start_wandb(project: str, name: str, config: dict):
    """A W&B run (``wandb.init``); a ValueError with the fix when wandb is not installed."""
    try:
        import wandb
    except ImportError:
        raise ValueError(
            "log.wandb=true needs the wandb package: pip install wandb, then `wandb login` (or set "
            "WANDB_API_KEY; WANDB_MODE=offline logs locally), or pass --log.wandb=false"
        ) from None
    return wandb.init(project=project, name=name, config=config)


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a ``metrics.jsonl``.

    A last line that is not complete JSON (the process was killed while writing it) is left out;
    a broken line anywhere else is damage and raises ValueError naming the line.
    """
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(
                f"{path} line {number} is not JSON ({line[:60]!r}); fix or delete that line"
            ) from None
    return records


def truncate_metrics(path: str | Path, last_step: int) -> int:
    """Keeps the records up to ``last_step`` (where a resumed run continues) and rewrites the file
    whole, which also drops a half-written last line. Returns the number of records dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    raw = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in read_metrics(path) if r["step"] <= last_step]
    temporary = path.with_suffix(".jsonl.tmp")
    temporary.write_text("".join(json.dumps(r) + "\n" for r in kept))
    temporary.replace(path)
    return len(raw) - len(kept)

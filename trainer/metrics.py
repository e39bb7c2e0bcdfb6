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
    """Appends one JSON object per logged step to ``metrics.jsonl`` (rank 0 only)."""

    def __init__(self, path: str | Path, enabled: bool):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        """Appends ``record`` as a line."""
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a ``metrics.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

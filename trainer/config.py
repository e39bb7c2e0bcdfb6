"""Typed training configuration: dataclasses, a YAML file, and dotted command-line overrides.

Precedence: dataclass defaults < YAML file < the YAML's ``smoke:`` block (with ``--smoke``) <
command line. Every field can be set on the command line as ``--section.field=value`` (or
``--section.field value``), e.g. ``--optim.lr=1e-5 --train.steps=10``. Loading, type conversion
and overrides are `prolong_data.config`'s, shared with the recipes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prolong_data.assets import SAMPLE_CORPUS
from prolong_data.config import from_dict, merge, parse_overrides, read_yaml
from prolong_data.config import to_dict as config_to_dict


@dataclass(kw_only=True)
class ModelConfig:
    path: str | None = None
    """Hugging Face checkpoint: a local folder or a hub id (Llama / Qwen2 / Mistral-style decoder)."""
    tokenizer: str | None = None
    """Tokenizer folder or hub id; defaults to ``path``. Required for the tiny model."""
    tiny: bool = False
    """Ignore ``path`` and train a randomly initialised tiny Llama (see ``TinyConfig``)."""
    rope_theta: float | None = None
    """RoPE base frequency for this stage (ProLong stage 1: 8e6); None keeps the checkpoint's."""
    rope_scaling: str | None = None
    """What a stage that sets ``rope_theta`` does with a checkpoint's RoPE scaling (Llama-3.1's
    ``llama3`` type, a ``linear`` or ``yarn`` factor): ``keep`` it (scaled on top of the new base)
    or ``drop`` it (plain RoPE with the new base, as ProLong's Llama-3 recipe has). None is allowed
    only when there is nothing to decide (no scaling, or no ``rope_theta``); otherwise the run
    stops and asks for one of the two."""
    attention: str = "auto"
    """Document-masked attention backend: auto, sdpa_docs, flex, varlen or flash (see trainer/attention.py)."""
    loss_chunk_size: int = 4096
    """Tokens per chunk of the LM-head cross-entropy; bounds the logits memory to chunk x vocab."""

    def __post_init__(self):
        if not self.tiny and not self.path:
            raise ValueError(
                "model.path is empty; pass --model.path=<HF folder or hub id> or --model.tiny=true"
            )
        if self.rope_theta is not None and self.rope_theta <= 0:
            raise ValueError(f"model.rope_theta must be positive, got {self.rope_theta}")
        if self.rope_scaling not in (None, "keep", "drop"):
            raise ValueError(f"model.rope_scaling must be keep or drop, got {self.rope_scaling!r}")
        if self.loss_chunk_size < 1:
            raise ValueError(f"model.loss_chunk_size must be >= 1, got {self.loss_chunk_size}")


@dataclass(kw_only=True)
class TinyConfig:
    """Shape of the random-init Llama used by smoke runs and tests (Llama-3 vocabulary by default)."""

    vocab_size: int = 128256
    """Vocabulary size; 128,256 is Llama-3's."""
    hidden_size: int = 64
    """Model width."""
    num_layers: int = 2
    """Decoder layers."""
    num_heads: int = 4
    """Query heads."""
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention)."""
    intermediate_size: int = 128
    """MLP inner width."""
    init_seed: int = 0
    """Seed of the random weights."""

    def __post_init__(self):
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("tiny: hidden_size must divide by num_heads and num_heads by num_kv_heads")


@dataclass(kw_only=True)
class DataConfig:
    mixture: str = "data/shards/stage1-64k/mixture.json"
    """Path of the ``mixture.json`` that lists the domain folders and proportions."""
    seq_len: int = 65536
    """Expected sequence length; must equal the mixture's ``seq_len``."""
    micro_batch_size: int = 1
    """Sequences per forward/backward pass on one rank."""
    num_workers: int = 0
    """DataLoader worker processes per rank."""
    apply_masks: bool = False
    """Train only on the tokens a shard's ``mask`` column marks (SFT: the assistant turns).
    False ignores masks, as ProLong's pre-training does unless asked (``--apply_instruct_masks``):
    its 64K data carries masks in ``tuluv2``. A stage that ignores masks its shards carry says so
    at start."""

    def __post_init__(self):
        if self.micro_batch_size < 1 or self.seq_len < 2:
            raise ValueError("data.micro_batch_size must be >= 1 and data.seq_len >= 2")


@dataclass(kw_only=True)
class OptimConfig:
    lr: float = 1e-5
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay."""
    grad_clip: float = 1.0
    """Maximum global gradient norm; 0 disables clipping."""
    warmup_fraction: float = 0.1
    """Fraction of the steps spent in linear warmup."""
    min_lr_ratio: float = 0.1
    """Cosine floor as a fraction of the peak learning rate."""

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_fraction < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("optim.warmup_fraction must be in [0, 1) and optim.min_lr_ratio in [0, 1]")


@dataclass(kw_only=True)
class TrainConfig:
    steps: int = 5000
    """Optimizer steps of the whole stage (the schedule's length)."""
    tokens_per_step: int = 4194304
    """Tokens per optimizer step over all ranks; sets the gradient accumulation."""
    seed: int = 42
    """Seed of the data order."""
    stop_at_step: int | None = None
    """End this run after this step (with a checkpoint), e.g. to fit a job's time limit; rerun to resume."""

    def __post_init__(self):
        if self.steps < 1 or self.tokens_per_step < 1:
            raise ValueError("train.steps and train.tokens_per_step must be >= 1")


@dataclass(kw_only=True)
class ParallelConfig:
    fsdp: bool = True
    """Shard with FSDP2 per decoder layer and root when launched on several ranks."""
    activation_checkpointing: bool = True
    """Recompute each decoder layer in the backward pass instead of storing its activations."""
    mixed_precision: str = "auto"
    """Compute dtype: auto (bf16 on GPU, fp32 on CPU), bf16 or fp32; master weights stay fp32."""
    sp: int = 1
    """Sequence-parallel group size: each sequence is split over this many consecutive ranks
    (Ulysses all-to-all attention, see trainer/sequence_parallel.py); data-parallel groups =
    ranks / sp. Must divide the number of ranks and the attention heads. ProLong stage 2: 8."""

    def __post_init__(self):
        if self.mixed_precision not in ("auto", "bf16", "fp32"):
            raise ValueError(
                f"parallel.mixed_precision must be auto, bf16 or fp32, got {self.mixed_precision!r}"
            )
        if self.sp < 1:
            raise ValueError(f"parallel.sp must be >= 1 (1 = no sequence parallelism), got {self.sp}")


@dataclass(kw_only=True)
class CheckpointConfig:
    every_steps: int = 250
    """Save a checkpoint every this many steps (and always at the end of a run)."""
    resume: bool = True
    """Continue from the newest complete checkpoint in ``<out>/checkpoints`` if there is one."""
    export_hf: bool = True
    """Write ``<out>/hf`` (safetensors + tokenizer + config) when the stage finishes."""
    init_optimizer_from: str | None = None
    """A previous stage's run folder (``runs/stage1-64k``: its newest checkpoint), ``checkpoints``
    folder, or one checkpoint (``runs/stage1-64k/checkpoints/step-00005000``) whose AdamW state
    (moments and step counts) starts this stage, as ProLong's stage 2 does; the weights still come
    from ``model.path`` and the learning rate from this stage's schedule. None starts AdamW fresh.
    Ignored when this run resumes from its own checkpoint."""

    def __post_init__(self):
        if self.every_steps < 1:
            raise ValueError(f"checkpoint.every_steps must be >= 1, got {self.every_steps}")


@dataclass(kw_only=True)
class LogConfig:
    every_steps: int = 1
    """Write a metrics line every this many steps."""
    peak_tflops: float | None = None
    """Peak dense TFLOP/s of one device for MFU; None looks the GPU up (H100/H200: 989) or skips MFU."""
    progress_bar: bool = True
    """Show a tqdm progress bar on rank 0."""
    tensorboard: bool = True
    """Also write every metrics line as TensorBoard scalars to ``<out>/tensorboard`` (rank 0;
    needs the ``tensorboard`` package, part of the ``train`` extra)."""
    wandb: bool = False
    """Also send every metrics line to Weights & Biases (rank 0; needs ``pip install wandb`` and
    ``wandb login`` or ``WANDB_API_KEY``; ``WANDB_MODE=offline`` keeps it local)."""
    wandb_project: str = "prolong-data"
    """The W&B project of the run."""
    wandb_run: str | None = None
    """The W&B run name; None names it after the run folder."""


@dataclass(kw_only=True)
class EvalConfig:
    """Held-out ``doc_loss`` by position bucket while training (trainer/evaluate.py); off by default."""

    every_steps: int = 0
    """Evaluate every this many steps (and after the last one); 0 turns it off."""
    heldout: str = str(SAMPLE_CORPUS / "heldout")
    """Folder of held-out long documents (.txt, .txt.gz, .jsonl, .jsonl.gz) the stage does not train on;
    by default the sample corpus's held-out books, installed with the package."""
    length: int | None = None
    """Tokens of each document scored (the longest context evaluated); None: data.seq_len, at most 65,536."""
    window: int = 4096
    """The short context the full one is compared with."""
    documents: int = 2
    """How many held-out documents (the first ones by file name)."""

    def __post_init__(self):
        if self.every_steps < 0 or self.window < 2 or self.documents < 1 or (self.length or 2) < 2:
            raise ValueError("eval: every_steps >= 0, window >= 2, documents >= 1 and length >= 2 are needed")


@dataclass(kw_only=True)
class Config:
    out: str = "runs/stage1-64k"
    """Run folder: metrics.jsonl, config.yaml, checkpoints/, hf/."""
    smoke: bool = False
    """A short CPU-sized run of the same stage (tiny model); chosen automatically without CUDA."""
    model: ModelConfig = field(default_factory=lambda: ModelConfig(tiny=True))
    tiny: TinyConfig = field(default_factory=TinyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def load_config(path: str | Path | None, args: list[str] | None = None, smoke: bool | None = None) -> Config:
    """Builds the Config from a YAML file and CLI overrides.

    ``smoke``: None decides it here: ``--smoke``/``--smoke=false`` if given, else a saved config's
    ``smoke: true|false``, else on exactly when this machine has no CUDA device; the YAML's
    ``smoke:`` block is applied when smoke mode is on.
    """
    raw = read_yaml(path) if path else {}
    overrides = parse_overrides(args or [])
    smoke_value = raw.pop("smoke", None)  # the smoke block, or a saved config's `smoke: true`
    smoke_block = smoke_value if isinstance(smoke_value, dict) else {}
    if smoke is None:
        if "smoke" in overrides:
            smoke = bool(overrides["smoke"])
        elif isinstance(smoke_value, bool):  # a saved config says what it was
            smoke = smoke_value
        else:
            smoke = not _has_cuda()
    tree = merge(Config, raw, smoke_block, "smoke") if smoke else raw
    tree = merge(Config, tree, overrides)
    tree["smoke"] = smoke
    return from_dict(Config, tree)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def to_dict(config: Config) -> dict:
    """Plain nested dict of a Config (for saving beside the run; `load_config` reads it back)."""
    return config_to_dict(config)

"""All parallel wrapping in one place: the device mesh, sequence-parallel groups, activation
checkpointing and FSDP2.

The ranks form a (dp, sp) mesh: ranks ``[g * sp, (g + 1) * sp)`` share one sequence (SP group
``g``), and the ``world / sp`` SP groups are the data-parallel groups. FSDP shards over all ranks
of the mesh (as torchtitan does with its ``dp_shard_cp`` dimension): every rank holds distinct
tokens, so FSDP's average of the gradients over all ranks times ``world_size / target tokens``
is the token-averaged gradient either way.

```
 world 4, sp 2:        sp rank 0   sp rank 1
           dp group 0 [ rank 0   |  rank 1  ]  <- sequence A, tokens [0, T/2) | [T/2, T)
           dp group 1 [ rank 2   |  rank 3  ]  <- sequence B
           FSDP shards parameters over all 4 ranks
```

Order matters: each decoder layer is first wrapped for activation checkpointing, then sharded with
``fully_shard``; the root (embeddings, final norm, LM head) is sharded last. Under FSDP the
parameters are fp32 shards (the master weights); with bf16 mixed precision each layer gathers
bf16 copies for its forward and backward, and gradients are reduce-scattered in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainer.config import ParallelConfig
from trainer.sequence_parallel import SPGroup


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job, as given by the launcher (torchrun)."""

    rank: int = 0
    """Global rank."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank on this node (the GPU index)."""

    @property
    def distributed(self) -> bool:
        """Whether a process group is in use."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes logs and the HF export."""
        return self.rank == 0


def build_sp_group(parallel: ParallelConfig, env: DistEnv, device: torch.device) -> SPGroup | None:
    """This rank's sequence-parallel group from a (dp, sp) device mesh, or None when ``sp == 1``.

    Collective: every rank builds the whole mesh (all its process groups).
    """
    if parallel.sp == 1:
        return None
    if not torch.distributed.is_initialized() or env.world_size % parallel.sp:
        raise ValueError(
            f"parallel.sp={parallel.sp} needs a launch on a multiple of {parallel.sp} ranks "
            f"(torchrun --nproc_per_node=...); got {env.world_size}"
        )
    if not parallel.fsdp:
        raise ValueError("parallel.sp > 1 needs parallel.fsdp=true (FSDP reduces the gradients of all ranks)")
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(
        device.type, (env.world_size // parallel.sp, parallel.sp), mesh_dim_names=("dp", "sp")
    )
    return SPGroup(group=mesh["sp"].get_group(), rank=mesh["sp"].get_local_rank(), size=parallel.sp)


def data_parallel_size(parallel: ParallelConfig, env: DistEnv) -> int:
    """Number of groups that see different sequences (ranks / sp)."""
    return env.world_size // parallel.sp


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a ``CausalLMWithLoss`` (HF models keep them at ``get_decoder().layers``)."""
    layers = getattr(model.lm.get_decoder(), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            "the model's decoder has no `layers` ModuleList; only Llama-style HF decoders are supported"
        )
    return layers


def compute_dtype(parallel: ParallelConfig, device: torch.device) -> torch.dtype:
    """The dtype of the forward/backward computation (master weights stay fp32)."""
    if parallel.mixed_precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return torch.bfloat16 if parallel.mixed_precision == "bf16" else torch.float32


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Wraps every decoder layer so its activations are recomputed in the backward pass."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    layers = decoder_layers(model)
    for index, layer in enumerate(layers):
        layers[index] = checkpoint_wrapper(layer, preserve_rng_state=False)


def apply_fsdp(model: nn.Module, dtype: torch.dtype) -> None:
    """FSDP2: one ``fully_shard`` unit per decoder layer, and the root for everything else."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # full precision: no casts at all (the parameters' own dtype, fp32 or, in tests, fp64)
    policy = (
        MixedPrecisionPolicy()
        if dtype == torch.float32
        else MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    )
    layers = decoder_layers(model)
    for index, layer in enumerate(layers):
        # the last layer's parameters are needed again right away by the backward pass
        fully_shard(layer, mp_policy=policy, reshard_after_forward=index < len(layers) - 1)
    fully_shard(model, mp_policy=policy)


def parallelize(model: nn.Module, parallel: ParallelConfig, env: DistEnv, device: torch.device) -> nn.Module:
    """Applies checkpointing and sharding as configured and moves the model to ``device``."""
    if parallel.activation_checkpointing:
        apply_activation_checkpointing(model)
    dtype = compute_dtype(parallel, device)
    if parallel.fsdp and torch.distributed.is_initialized():  # under torchrun, even with one rank
        apply_fsdp(model, dtype)
        if any(p.is_meta for p in model.parameters()):  # weights still to come from rank 0
            return model.to_empty(device=device)
        return model.to(device)
    if env.distributed:
        raise ValueError(
            "several ranks need parallel.fsdp=true (this trainer has no plain data-parallel mode)"
        )
    if dtype != torch.float32:
        raise ValueError(
            "bf16 compute needs FSDP mixed precision; launch with torchrun or set parallel.mixed_precision=fp32"
        )
    return model.to(device)


def load_from_rank0(
    model: nn.Module,
    full_state: dict[str, torch.Tensor] | None,
    full_buffers: dict[str, torch.Tensor] | None = None,
) -> None:
    """Fills a sharded model built on the meta device from rank 0's full state dict and buffers;
    the other ranks pass None.

    Only rank 0 reads the checkpoint from disk (held once, not once per GPU); every rank receives
    its shards by broadcast, cast into its fp32 master shards. Buffers that no state dict holds
    (the rotary embedding's ``inv_freq``) come from rank 0's loaded model and are broadcast too.
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full_state or {}, options=options)
    for name, buffer in model.named_buffers():
        if full_buffers is not None:
            buffer.copy_(full_buffers[plain_name(name)])
        dist.broadcast(buffer, src=0)


def plain_name(name: str) -> str:
    """A parameter or buffer name without the activation-checkpointing wrapper's segments."""
    return name.replace("_checkpoint_wrapped_module.", "")

"""Resumable checkpoints with ``torch.distributed.checkpoint`` (DCP).

A checkpoint is the folder ``<out>/checkpoints/step-NNNNNNNN`` holding, in one DCP save:
``model`` and ``optim`` (sharded the way they live in memory, so every rank writes its own shard
and a run may resume on another number of ranks), ``scheduler``, and ``train`` = the step and the
data loader's state (as a JSON string: DCP only fills keys that already exist when loading, and
the loader's keys are streaming's business). DCP writes ``.metadata`` last, so a folder without it is an interrupted save
and is ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)

PREFIX = "step-"


def checkpoint_path(folder: str | Path, step: int) -> Path:
    """The folder of the checkpoint taken after optimizer step ``step``."""
    return Path(folder) / f"{PREFIX}{step:08d}"


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint under ``folder``, or None."""
    complete = [p for p in Path(folder).glob(f"{PREFIX}*") if (p / ".metadata").is_file()]
    return max(complete, key=lambda p: int(p.name.removeprefix(PREFIX)), default=None)


def _state(model, optimizer, scheduler, step: int, data_state: dict | None) -> dict:
    """The nested dict that DCP saves or fills in place."""
    model_state, optim_state = get_state_dict(model, optimizer)
    return {
        "model": model_state,
        "optim": optim_state,
        "scheduler": scheduler.state_dict(),
        "train": {"step": step, "data": json.dumps(data_state or {})},
    }


def save_checkpoint(folder, step: int, model, optimizer, scheduler, loader) -> Path:
    """Saves everything needed to continue exactly after ``step``; collective over all ranks."""
    path = checkpoint_path(folder, step)
    state = _state(model, optimizer, scheduler, step, loader.state_dict())
    dcp.save(state, checkpoint_id=path, no_dist=not dist.is_initialized())
    return path


def load_checkpoint(path, model, optimizer, scheduler, loader) -> int:
    """Restores a checkpoint into live objects and returns its step; collective over all ranks."""
    state = _state(model, optimizer, scheduler, 0, None)
    dcp.load(state, checkpoint_id=Path(path), no_dist=not dist.is_initialized())
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    scheduler.load_state_dict(state["scheduler"])
    data_state = json.loads(state["train"]["data"])
    if data_state:
        loader.load_state_dict(data_state)
    return int(state["train"]["step"])


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint that ``path`` names: a checkpoint folder itself, or the newest complete one in
    a ``checkpoints`` folder or in a run folder that holds one."""
    path = Path(path)
    if (path / ".metadata").is_file():
        return path
    for folder in (path, path / "checkpoints"):
        found = latest_checkpoint(folder) if folder.is_dir() else None
        if found is not None:
            return found
    raise ValueError(
        f"{path} holds no complete checkpoint (a step-NNNNNNNN folder with .metadata); point "
        "checkpoint.init_optimizer_from at the previous stage's run folder (e.g. runs/stage1-64k) or "
        "one of its checkpoints, run that stage first, or pass --checkpoint.init_optimizer_from=null "
        "to start AdamW fresh"
    )


def load_optimizer_state(path, model, optimizer) -> None:
    """Starts ``optimizer`` from the AdamW state (moments, step counts) of another run's checkpoint.

    For a stage that continues the previous one (``checkpoint.init_optimizer_from``): the
    per-parameter state is loaded, while this run's hyperparameters (lr, betas, weight decay) are
    kept. ``path``: see ``find_checkpoint``. Collective over all ranks; the other run may have used
    another number of ranks.
    """
    path = find_checkpoint(path)
    hyper = [
        {key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups
    ]
    _, optim_state = get_state_dict(model, optimizer)  # creates the state tensors DCP fills in place
    state = {"optim": optim_state}
    dcp.load(state, checkpoint_id=path, no_dist=not dist.is_initialized())
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state["optim"])
    for group, kept in zip(optimizer.param_groups, hyper):
        group.update(kept)


def full_model_state(model) -> dict[str, torch.Tensor]:
    """Unsharded CPU weights (on every rank; collective under FSDP), wrapper prefixes removed."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)

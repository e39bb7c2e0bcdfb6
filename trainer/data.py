"""Training batches from the MDS shards of a ``mixture.json``.

A sample is one packed sequence: ``input_ids`` (seq_len,), ``indices`` (n_docs, 2) document spans
``[start, end)`` covering the sequence, and for SFT ``mask`` (seq_len,) marking trained tokens. A
micro-batch is a dict of tensors:

- ``input_ids`` (B, T) int64
- ``position_ids`` (B, T) int64: position inside the document, restarting at 0 at each start
- ``labels`` (B, T) int64: the next token, or ``IGNORE_INDEX`` where the next token starts a
  document, is masked out (SFT), or lies past the end of the row
- ``cu_seqlens`` (n_docs_total + 1,) int32: document boundaries over the flattened B * T tokens

The stream order comes from ``streaming.StreamingDataset``: deterministic for a seed, partitioned
across ranks (replicated within a sequence-parallel group), and resumable from
``loader.state_dict()``. A micro-batch always holds whole sequences; a sequence-parallel rank cuts
its slice afterwards (``trainer.sequence_parallel.shard_batch``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch

from prolong_data.contract import check_spans  # the shard contract's span rule (a ValueError)
from prolong_data.layout import index_file
from prolong_data.mixture import Mixture, read_mixture, to_streams
from trainer.loss import IGNORE_INDEX


def load_mixture(path: str | Path) -> tuple[Mixture, Path]:
    """Reads and checks a ``mixture.json`` with the library's own rules: (mixture, its folder).

    Proportions must sum to 1 (``prolong_data.mixture``'s tolerance) and every domain folder must
    hold an MDS ``index.json``; anything else is a ValueError that says what to fix.
    """
    try:
        mixture, root = read_mixture(path)
    except FileNotFoundError:
        raise ValueError(
            f"mixture file {path} does not exist; build the shards first (e.g. `make shards`)"
        ) from None
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a valid mixture.json ({error!r}); rebuild it") from None
    except ValueError as error:  # the message names the file when the file's shape is wrong
        raise ValueError(str(error) if str(path) in str(error) else f"{path}: {error}") from None
    for domain, folder in mixture.resolved_paths(root).items():
        if not index_file(folder).is_file():
            raise ValueError(
                f"{path} names domain {domain!r} at {folder}, which holds no index.json; build that "
                "domain (rerun the `prolong-data shards` command of this mixture) or fix mixture.json"
            )
    return mixture, root


def masked_domains(mixture: Mixture, root: Path) -> list[str]:
    """Domains of the mixture whose shards carry a ``mask`` column."""
    found = []
    for domain, folder in mixture.resolved_paths(root).items():
        index = json.loads(index_file(folder).read_text())
        if any("mask" in shard.get("column_names", []) for shard in index.get("shards", [])):
            found.append(domain)
    return found


def position_ids_from_spans(indices: np.ndarray, seq_len: int) -> np.ndarray:
    """(T,) position of each token inside its document, restarting at 0 at every span start."""
    starts = indices[:, 0].astype(np.int64)
    lengths = (indices[:, 1] - indices[:, 0]).astype(np.int64)
    return np.arange(seq_len) - np.repeat(starts, lengths)  # (T,)


def labels_from_spans(input_ids: np.ndarray, indices: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(T,) next-token labels; a document's first token, masked tokens and the row end are ignored."""
    is_target = np.ones(len(input_ids), dtype=bool)  # (T,) may token t be predicted?
    is_target[indices[:, 0].astype(np.int64)] = False
    if mask is not None:
        is_target &= mask.astype(bool)
    labels = np.full(len(input_ids), IGNORE_INDEX, dtype=np.int64)  # (T,)
    labels[:-1] = np.where(is_target[1:], input_ids[1:].astype(np.int64), IGNORE_INDEX)
    return labels


def collate(samples: list[dict], apply_masks: bool = True) -> dict[str, torch.Tensor]:
    """Turns MDS samples into one micro-batch (see the module docstring for the keys).

    ``apply_masks``: whether a sample's ``mask`` column limits the targets (SFT) or is ignored.
    """
    seq_len = len(samples[0]["input_ids"])
    rows: dict[str, list] = {"input_ids": [], "position_ids": [], "labels": []}
    bounds = [0]
    for row, sample in enumerate(samples):
        ids, spans = np.asarray(sample["input_ids"]), np.asarray(sample["indices"]).reshape(-1, 2)
        if len(ids) != seq_len:
            raise ValueError(
                f"samples of one batch differ in length ({len(ids)} vs {seq_len}); check the mixture"
            )
        check_spans(spans, seq_len)
        rows["input_ids"].append(ids.astype(np.int64))
        rows["position_ids"].append(position_ids_from_spans(spans, seq_len))
        mask = sample.get("mask") if apply_masks else None
        rows["labels"].append(labels_from_spans(ids, spans, mask))
        bounds.extend((row * seq_len + spans[:, 1].astype(np.int64)).tolist())
    batch = {key: torch.from_numpy(np.stack(value)) for key, value in rows.items()}  # each (B, T)
    batch["cu_seqlens"] = torch.tensor(bounds, dtype=torch.int32)  # (n_docs + 1,)
    return batch


CANONICAL_NODES = 1
"""The nodes streaming shuffles and partitions the samples for, whatever the nodes that run.
Streaming's default is the run's own node count, so 2 nodes would see another data order than 1
and a run could not resume on another node count with the same data; with one canonical node
every step holds the same samples on any number of nodes (what a one-node run always had)."""


def build_loader(
    mixture_path: str | Path,
    micro_batch_size: int,
    seed: int,
    num_workers: int = 0,
    replication: int = 1,
    apply_masks: bool = False,
) -> tuple[torch.utils.data.DataLoader, int]:
    """A resumable loader of micro-batches over the mixture's streams, and the mixture's seq_len.

    Every rank gets its own part of the stream (streaming reads RANK / WORLD_SIZE as set by
    torchrun), except that ``replication`` consecutive ranks (one sequence-parallel group) get the
    same samples. ``apply_masks``: see ``DataConfig.apply_masks``; shards whose masks are ignored
    are named in a warning.
    """
    from streaming import StreamingDataset
    from streaming.base.dataloader import StreamingDataLoader

    mixture, root = load_mixture(mixture_path)
    masked = [] if apply_masks else masked_domains(mixture, root)
    if masked:
        warnings.warn(
            f"domains {masked} carry `mask` columns that this stage ignores (data.apply_masks=false: "
            "every token is a target, as in ProLong's pre-training); set --data.apply_masks=true to "
            "train on the masked tokens only",
            stacklevel=2,
        )
    dataset = StreamingDataset(
        streams=to_streams(mixture, root),
        shuffle=True,
        shuffle_seed=seed,
        batch_size=micro_batch_size,
        replication=replication if replication > 1 else None,
        num_canonical_nodes=CANONICAL_NODES,
    )
    loader = StreamingDataLoader(
        dataset,
        batch_size=micro_batch_size,
        collate_fn=partial(collate, apply_masks=apply_masks),
        num_workers=num_workers,
        drop_last=True,
    )
    return loader, mixture.seq_len


def endless(loader: torch.utils.data.DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    """Micro-batches forever, starting a new epoch whenever one ends."""
    while True:
        produced = 0
        for batch in loader:
            produced += 1
            yield batch
        if produced == 0:
            raise ValueError(
                "the data loader yields no batch; the shards hold fewer samples than a micro-batch"
            )

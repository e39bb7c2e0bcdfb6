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
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from prolong_data.contract import check_spans  # the shard contract's span rule (a ValueError)
from trainer.loss import IGNORE_INDEX


def load_mixture(path: str | Path) -> tuple[list[tuple[str, str, float]], int]:
    """Reads a ``mixture.json``: ([(domain, absolute folder, proportion), ...], seq_len)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"mixture file {path} does not exist; build the shards first (`make shards`)")
    spec = json.loads(path.read_text())
    streams = [
        (s["domain"], str((path.parent / s["path"]).resolve()), float(s["proportion"]))
        for s in spec["streams"]
    ]
    return streams, int(spec["seq_len"])


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


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Turns MDS samples into one micro-batch (see the module docstring for the keys)."""
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
        rows["labels"].append(labels_from_spans(ids, spans, sample.get("mask")))
        bounds.extend((row * seq_len + spans[:, 1].astype(np.int64)).tolist())
    batch = {key: torch.from_numpy(np.stack(value)) for key, value in rows.items()}  # each (B, T)
    batch["cu_seqlens"] = torch.tensor(bounds, dtype=torch.int32)  # (n_docs + 1,)
    return batch


def build_loader(
    mixture_path: str | Path, micro_batch_size: int, seed: int, num_workers: int = 0, replication: int = 1
) -> tuple[torch.utils.data.DataLoader, int]:
    """A resumable loader of micro-batches over the mixture's streams, and the mixture's seq_len.

    Every rank gets its own part of the stream (streaming reads RANK / WORLD_SIZE as set by
    torchrun), except that ``replication`` consecutive ranks (one sequence-parallel group) get the
    same samples.
    """
    from streaming import Stream, StreamingDataset
    from streaming.base.dataloader import StreamingDataLoader

    entries, seq_len = load_mixture(mixture_path)
    streams = [Stream(local=folder, proportion=proportion) for _, folder, proportion in entries]
    dataset = StreamingDataset(
        streams=streams,
        shuffle=True,
        shuffle_seed=seed,
        batch_size=micro_batch_size,
        replication=replication if replication > 1 else None,
    )
    loader = StreamingDataLoader(
        dataset, batch_size=micro_batch_size, collate_fn=collate, num_workers=num_workers, drop_last=True
    )
    return loader, seq_len


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

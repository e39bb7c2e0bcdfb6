"""Held-out ``doc_loss`` while training: is the long-range loss falling?

Every ``eval.every_steps`` steps the model scores a few held-out documents (the ``eval.heldout``
folder, read as ``prolong-data eval`` reads it) twice, through the training forward itself (so
FSDP and activation checkpointing behave as in a step): once with the whole document as context,
and once cut into ``eval.window``-token windows packed as separate documents. Both passes score
the same target tokens (a window's first token is never a target, as a document's first token is
not in training). ``metrics.jsonl`` gets one line per evaluation with, per position bucket
(``prolong_data.evaluation.tasks.doc_loss.BUCKETS``), the mean loss with the full context
(``doc_loss/0-1K``), in windows (``doc_loss_window/0-1K``) and their difference
(``doc_loss_gain/0-1K``, nats per token the longer context saves).

The forward returns one summed loss, so a bucket costs one pass of each kind: with the four
buckets of a 64K document that is eight forward passes per document, without gradients. Every
rank runs them on the same documents (whole, without sequence parallelism); rank 0 logs.
"""

from __future__ import annotations

import numpy as np
import torch

from prolong_data.evaluation.haystack import read_documents
from prolong_data.evaluation.tasks.doc_loss import BUCKETS, bucket_name
from trainer.attention import DocMask
from trainer.config import Config
from trainer.data import labels_from_spans, position_ids_from_spans
from trainer.loss import IGNORE_INDEX


def heldout_ids(cfg: Config, tokenizer) -> list[np.ndarray]:
    """The held-out documents as token ids (BOS first when the tokenizer has one), each cut to the eval length."""
    length = cfg.eval.length or min(cfg.data.seq_len, 65536)
    bos = tokenizer.bos_token_id
    docs = read_documents(cfg.eval.heldout)[: cfg.eval.documents]
    out = []
    for doc in docs:
        ids = tokenizer(doc.text[: length * 16], add_special_tokens=False)["input_ids"]
        ids = ([bos] if bos is not None else []) + ids
        out.append(np.asarray(ids[:length], dtype=np.int64))
    return out


def _spans(length: int, window: int) -> np.ndarray:
    starts = np.arange(0, length, window)
    return np.stack([starts, np.minimum(starts + window, length)], axis=1)  # (n, 2)


@torch.no_grad()
def doc_loss_by_bucket(
    model, documents: list[np.ndarray], window: int, device, attention: str
) -> dict[str, float]:
    """Token-weighted mean losses per position bucket over ``documents`` (see the module docstring)."""
    sums: dict[str, list[float]] = {}
    was_training = model.training
    model.eval()
    for ids in documents:
        n = len(ids)
        windows = _spans(n, window)
        targets = labels_from_spans(ids, windows, None)  # (T,) next tokens, none that starts a window
        x = torch.from_numpy(ids)[None].to(device)  # (1, T)
        passes = {
            "full": (torch.arange(n)[None], DocMask.from_cu_seqlens(torch.tensor([0, n]), device, attention)),
            "window": (
                torch.from_numpy(position_ids_from_spans(windows, n))[None],
                DocMask.from_cu_seqlens(torch.tensor([*windows[:, 0], n]), device, attention),
            ),
        }
        predicted_at = np.arange(1, n + 1)  # the label at index t is the token at position t + 1
        for lo, hi in BUCKETS:
            keep = (predicted_at >= lo) & (predicted_at < hi) & (targets != IGNORE_INDEX)
            if not keep.any():
                continue
            labels = torch.from_numpy(np.where(keep, targets, IGNORE_INDEX))[None].to(device)  # (1, T)
            row = sums.setdefault(bucket_name(lo, hi), [0.0, 0.0, 0])
            for slot, (positions, mask) in enumerate(passes.values()):
                row[slot] += float(model(x, positions.to(device), labels, mask))
            row[2] += int(keep.sum())
    model.train(was_training)
    record = {}
    for name, (full, win, count) in sums.items():
        record[f"doc_loss/{name}"] = full / count
        record[f"doc_loss_window/{name}"] = win / count
        record[f"doc_loss_gain/{name}"] = (win - full) / count
    return record

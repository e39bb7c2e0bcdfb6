"""``doc_loss``: what the long context is worth, in nats per token, by position.

Each held-out document is tokenized (BOS first when the tokenizer has one) and cut to the
evaluated context length. Its tokens are scored twice:

* full context: one forward pass over the whole document prefix; the token at position ``p``
  is predicted from all ``p`` tokens before it;
* windows: the same tokens cut into windows of ``window`` tokens (4,096 by default), each scored
  on its own after a BOS, so no token sees more than the window before it.

Per-token losses are averaged in position buckets (0-1K, 1K-4K, 4K-16K, 16K-64K, 64K-512K, as far
as the documents reach); ``window - full`` is the loss the long context saves. In the first window
both passes see the same tokens, so the two agree there up to floating-point noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

BUCKETS = ((0, 1024), (1024, 4096), (4096, 16384), (16384, 65536), (65536, 524288))
"""Position ranges ``[start, end)`` of the predicted token (its index in the document's ids)."""

DEFAULT_WINDOW = 4096


def _k(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 and n else str(n)


def bucket_name(start: int, end: int) -> str:
    """``(1024, 4096)`` -> ``"1K-4K"``."""
    return f"{_k(start)}-{_k(end)}"


def document_ids(tokenizer, text: str, max_tokens: int) -> list[int]:
    """BOS (if the tokenizer has one) and the document's tokens, at most ``max_tokens`` in all."""
    head = text[: max_tokens * 16]  # no tokenizer averages 16 characters a token on prose
    ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None:
        ids = [bos, *ids]
    return ids[:max_tokens]


def windowed_losses(
    ids: list[int], window: int, bos: int | None, token_losses: Callable[[list[int]], np.ndarray]
) -> np.ndarray:
    """Loss of each ``ids[1:]`` token when the document is scored in windows of ``window`` tokens.

    Window ``w`` holds the tokens at positions ``[1 + w*window, 1 + (w+1)*window)``; with a BOS it
    is scored as ``[BOS] + tokens`` so every token gets a loss; without one its first token has
    none (NaN).
    """
    out = np.full(len(ids) - 1, np.nan)
    for start in range(1, len(ids), window):
        piece = ids[start : start + window]
        if bos is not None:
            out[start - 1 : start - 1 + len(piece)] = token_losses([bos, *piece])
        elif len(piece) > 1:
            out[start : start - 1 + len(piece)] = token_losses(piece)
    return out


def curve_bins(positions: int) -> int:
    """Number of power-of-two position bins ``[2^b, 2^(b+1))`` covering positions up to ``positions``."""
    return max(1, math.ceil(math.log2(max(positions, 2))))


def document_record(name: str, full: np.ndarray, windowed: np.ndarray) -> dict:
    """Per-bucket and per-power-of-two-bin sums of one document (what ``doc_loss.jsonl`` holds)."""
    positions = np.arange(1, len(full) + 1)
    both = ~np.isnan(full) & ~np.isnan(windowed)
    buckets = {}
    for start, end in BUCKETS:
        sel = both & (positions >= start) & (positions < end)
        if sel.any():
            buckets[bucket_name(start, end)] = [
                float(full[sel].sum()),
                float(windowed[sel].sum()),
                int(sel.sum()),
            ]
    bins = np.floor(np.log2(positions)).astype(int)
    curve = []
    for b in range(curve_bins(len(full) + 1)):
        sel = both & (bins == b)
        curve.append([float(full[sel].sum()), float(windowed[sel].sum()), int(sel.sum())])
    return {
        "id": f"doc_loss/{name}",
        "document": name,
        "tokens": len(full) + 1,
        "buckets": buckets,
        "curve": curve,
    }


def aggregate(records: list[dict], context: int, window: int) -> dict:
    """Token-weighted means over documents: per bucket, full-context and windowed loss and their gap."""
    rows = []
    for start, end in BUCKETS:
        name = bucket_name(start, end)
        sums = [r["buckets"][name] for r in records if name in r["buckets"]]
        if not sums:
            continue
        full, win, count = (sum(s[i] for s in sums) for i in range(3))
        rows.append(
            {
                "bucket": name,
                "start": start,
                "end": end,
                "tokens": count,
                "documents": len(sums),
                "full": full / count,
                "window": win / count,
                "gain": (win - full) / count,
            }
        )
    width = max((len(r["curve"]) for r in records), default=0)
    curve = []
    for b in range(width):
        sums = [r["curve"][b] for r in records if b < len(r["curve"])]
        full, win, count = (sum(s[i] for s in sums) for i in range(3))
        if count:
            curve.append(
                {
                    "start": 2**b,
                    "end": 2 ** (b + 1),
                    "tokens": count,
                    "full": full / count,
                    "window": win / count,
                }
            )
    return {"context": context, "window": window, "documents": len(records), "buckets": rows, "curve": curve}

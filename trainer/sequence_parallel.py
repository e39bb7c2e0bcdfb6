"""Sequence parallelism (DeepSpeed-Ulysses style) with exact document masking.

A 524,288-token sequence is split into `P` equal contiguous slices, one per rank of a sequence
parallel (SP) group. Everything outside attention is per token, so each rank runs it on its own
slice. Attention needs the whole sequence: an all-to-all trades "all heads of my slice" for
"my heads of the whole sequence", the document-masked kernel runs with the *global* cu_seqlens
(so a document that crosses a rank boundary is attended exactly as if unsplit), and a second
all-to-all trades back.

```
 rank r: q (T/P tokens, H heads) ──all-to-all──► (T tokens, H/P heads) ──doc attention──►
         (T tokens, H/P heads) ──all-to-all──► (T/P tokens, H heads)
```

When the model has fewer KV heads than `P`, KV heads are repeated until there are `P` of them
(the gradient of the repeat sums them back). Positions and labels are cut from the *global*
ones, so RoPE and the shifted next-token labels are those of the unsplit sequence; the loss sums
over each rank's distinct tokens and divides by the global count.

Communication per layer and rank (forward): 2 all-to-alls of q-sized tensors plus 2 of k/v, each
moving (P - 1) / P of `T/P * heads * head_dim` elements.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class SPGroup:
    """The ranks that share one sequence."""

    group: object
    """The torch.distributed process group of this SP group (None: the default group)."""
    rank: int
    """This rank's index inside the group: it holds slice `rank` of every sequence."""
    size: int
    """Number of ranks a sequence is split over."""


def _all_to_all(x: torch.Tensor, group) -> torch.Tensor:
    """all_to_all_single over dim 0 of x: chunk i goes to rank i, chunk i of the result came from rank i."""
    x = x.contiguous()
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    dist.all_to_all_single(out, x, group=group)
    return out


class _SeqToHeads(torch.autograd.Function):
    """(B, T/P, H, D) local tokens, all heads -> (B, T, H/P, D) all tokens, local heads."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sp: SPGroup) -> torch.Tensor:
        ctx.sp = sp
        return seq_to_heads(x, sp)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return heads_to_seq(grad, ctx.sp), None


class _HeadsToSeq(torch.autograd.Function):
    """(B, T, H/P, D) -> (B, T/P, H, D): the inverse of `_SeqToHeads`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sp: SPGroup) -> torch.Tensor:
        ctx.sp = sp
        return heads_to_seq(x, sp)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return seq_to_heads(grad, ctx.sp), None


def seq_to_heads(x: torch.Tensor, sp: SPGroup) -> torch.Tensor:
    """(B, Tl, H, D) -> (B, P*Tl, H/P, D), no autograd."""
    b, tl, h, d = x.shape
    p = sp.size
    chunks = x.reshape(b, tl, p, h // p, d).permute(2, 0, 1, 3, 4)  # (P, B, Tl, H/P, D): chunk j -> rank j
    got = _all_to_all(chunks, sp.group)  # (P, B, Tl, H/P, D): chunk j came from rank j (its slice)
    return got.permute(1, 0, 2, 3, 4).reshape(b, p * tl, h // p, d)  # (B, T, H/P, D)


def heads_to_seq(x: torch.Tensor, sp: SPGroup) -> torch.Tensor:
    """(B, P*Tl, H/P, D) -> (B, Tl, H, D), no autograd."""
    b, t, hp, d = x.shape
    p = sp.size
    chunks = x.reshape(b, p, t // p, hp, d).permute(1, 0, 2, 3, 4)  # (P, B, Tl, H/P, D): slice j -> rank j
    got = _all_to_all(chunks, sp.group)  # (P, B, Tl, H/P, D): chunk j holds heads of rank j
    return got.permute(1, 2, 0, 3, 4).reshape(b, t // p, p * hp, d)  # (B, Tl, H, D)


def repeat_kv_for_sp(k: torch.Tensor, sp_size: int) -> torch.Tensor:
    """(B, Tl, Hkv, D) with Hkv < P repeated to (B, Tl, P, D); Hkv must divide P."""
    hkv = k.shape[2]
    if hkv >= sp_size:
        if hkv % sp_size:
            raise ValueError(
                f"{hkv} KV heads cannot be split over {sp_size} ranks; choose an SP size that divides it"
            )
        return k
    if sp_size % hkv:
        raise ValueError(
            f"{hkv} KV heads cannot be repeated to {sp_size}; choose an SP size that is a multiple of it"
        )
    return k.repeat_interleave(sp_size // hkv, dim=2)


def ulysses_attention(q, k, v, sp: SPGroup, attend):
    """Exact attention over the whole sequence from per-rank slices.

    q (B, Tl, H, D), k/v (B, Tl, Hkv, D) -> (B, Tl, H, D). `attend(q, k, v)` takes
    (B, T, H/P, D) and (B, T, Hkv', D) tensors of the *whole* sequence and returns (B, T, H/P, D);
    it applies the global document mask.
    """
    if q.shape[2] % sp.size:
        raise ValueError(f"{q.shape[2]} attention heads cannot be split over {sp.size} ranks")
    k, v = repeat_kv_for_sp(k, sp.size), repeat_kv_for_sp(v, sp.size)
    qh = _SeqToHeads.apply(q, sp)  # (B, T, H/P, D)
    kh = _SeqToHeads.apply(k, sp)  # (B, T, Hkv/P, D)
    vh = _SeqToHeads.apply(v, sp)  # (B, T, Hkv/P, D)
    out = attend(qh, kh, vh)  # (B, T, H/P, D)
    return _HeadsToSeq.apply(out, sp)  # (B, Tl, H, D)


def local_slice(x: torch.Tensor, sp: SPGroup, dim: int = 1) -> torch.Tensor:
    """This rank's contiguous slice of a per-token tensor of the whole sequence along `dim`."""
    total = x.shape[dim]
    if total % sp.size:
        raise ValueError(f"sequence length {total} is not divisible by the SP size {sp.size}")
    size = total // sp.size
    return x.narrow(dim, sp.rank * size, size)


def shard_batch(batch: dict[str, torch.Tensor], sp: SPGroup | None) -> dict[str, torch.Tensor]:
    """This rank's part of a collated micro-batch: its slice of every per-token (B, T) tensor.

    ``position_ids`` and ``labels`` were computed on the whole sequence, so RoPE positions and
    next-token labels across a slice boundary are the unsplit ones; ``cu_seqlens`` stays global
    (the attention runs over the whole sequence after the all-to-all).
    """
    if sp is None:
        return batch
    local = {
        key: local_slice(batch[key], sp) for key in ("input_ids", "position_ids", "labels")
    }  # each (B, T/P)
    return {**batch, **local}

"""Cross-entropy of the LM head without the full (tokens x vocab) logits.

At 65,536 tokens and a 128,256-token vocabulary the logits alone are 33.6 GB in fp32. The chunked
loss walks over the tokens in chunks of ``chunk_size``: per chunk it computes the logits, the loss
and, right away, the gradients with respect to the hidden states and the head weight, then drops
the logits. Peak extra memory is one (chunk_size, vocab) fp32 block plus the two gradients.

Both functions return the **sum** of the per-token losses over the target tokens (labels !=
``IGNORE_INDEX``); the caller divides by the global number of target tokens of the step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Label of a position that is not a prediction target."""


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Sum of token cross-entropies of ``hidden @ weight.T``, gradients computed in the forward pass."""

    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk_size: int):
        # hidden (N, D), weight (V, D), labels (N,)
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        ctx.weight_dtype = weight.dtype  # the weight gradient goes back in it (bf16 under mixed precision)
        acc = torch.promote_types(hidden.dtype, torch.float32)  # fp32, or fp64 for fp64 inputs
        total = torch.zeros((), dtype=acc, device=hidden.device)
        grad_hidden = torch.zeros_like(hidden) if need_grad else None  # (N, D)
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_grad else None
        # full precision: one logits buffer for all chunks (a fresh multi-GB block per chunk costs
        # page faults on CPU); 16-bit inputs get their logits upcast per chunk
        full = hidden.dtype == weight.dtype == acc
        rows = min(chunk_size, hidden.shape[0])
        buffer = hidden.new_empty((rows, weight.shape[0])) if full else None  # (C, V)
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start : start + chunk_size]  # (C, D)
            y = labels[start : start + chunk_size]  # (C,)
            keep = (y != IGNORE_INDEX).unsqueeze(1)  # (C, 1)
            target = y.clamp(min=0).unsqueeze(1)  # (C, 1)
            logits = torch.mm(h, weight.T, out=buffer[: len(h)]) if full else (h @ weight.T).to(acc)  # (C, V)
            picked = logits.gather(1, target)  # (C, 1) logit of the target token
            peak = logits.amax(dim=1, keepdim=True)  # (C, 1)
            probs = logits.sub_(peak).exp_()  # (C, V) unnormalised softmax, in place of the logits
            sums = probs.sum(dim=1, keepdim=True)  # (C, 1)
            lse = peak + sums.log()  # (C, 1) logsumexp of the logits
            total += ((lse - picked) * keep).sum()
            if not need_grad:
                continue
            probs.div_(sums)  # (C, V) softmax
            probs.scatter_add_(1, target, torch.full_like(lse, -1.0))  # softmax - one_hot
            grad_logits = probs.mul_(keep).to(hidden.dtype)  # (C, V) d loss / d logits
            grad_hidden[start : start + chunk_size] = grad_logits @ weight  # (C, D)
            grad_weight.addmm_(grad_logits.T.to(acc), h.to(acc))  # (V, D)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_total.to(grad_hidden.dtype)
        return grad_hidden * scale, (grad_weight * grad_total).to(ctx.weight_dtype), None, None


def chunked_cross_entropy_sum(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk_size: int = 4096
) -> torch.Tensor:
    """Summed cross-entropy of ``hidden (N, D) @ weight (V, D).T`` against ``labels (N,)``, chunked."""
    if chunk_size < 1:
        raise ValueError(f"loss chunk_size must be >= 1, got {chunk_size}")
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, labels, chunk_size)


def plain_cross_entropy_sum(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference: the same sum through full fp32 logits (N, V); for tests and the memory benchmark."""
    logits = (hidden @ weight.T).float()  # (N, V)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")

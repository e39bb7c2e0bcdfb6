"""The chunked LM-head cross-entropy equals the plain full-logits one, values and gradients."""

from __future__ import annotations

import pytest
import torch

from trainer.loss import IGNORE_INDEX, chunked_cross_entropy_sum, plain_cross_entropy_sum


def inputs(n=37, d=16, v=50, dtype=torch.float32):
    torch.manual_seed(0)
    hidden = torch.randn(n, d, dtype=dtype, requires_grad=True)
    weight = torch.randn(v, d, dtype=dtype, requires_grad=True)
    labels = torch.randint(0, v, (n,))
    labels[::5] = IGNORE_INDEX
    return hidden, weight, labels


@pytest.mark.parametrize("chunk", [1, 7, 16, 37, 1000])
def test_chunked_matches_plain(chunk):
    hidden, weight, labels = inputs()
    chunked = chunked_cross_entropy_sum(hidden, weight, labels, chunk)
    g_chunked = torch.autograd.grad(chunked * 0.5, (hidden, weight))
    plain = plain_cross_entropy_sum(hidden, weight, labels)
    g_plain = torch.autograd.grad(plain * 0.5, (hidden, weight))
    torch.testing.assert_close(chunked, plain, rtol=1e-6, atol=1e-5)
    for a, b in zip(g_chunked, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_all_ignored_chunk_gives_zero_loss_and_gradient():
    hidden, weight, labels = inputs()
    labels[:] = IGNORE_INDEX
    loss = chunked_cross_entropy_sum(hidden, weight, labels, 8)
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().max() == 0 and weight.grad.abs().max() == 0


def test_bf16_inputs_return_bf16_gradients():
    hidden, weight, labels = inputs(dtype=torch.bfloat16)
    loss = chunked_cross_entropy_sum(hidden, weight, labels, 8)
    loss.backward()
    assert loss.dtype == torch.float32
    assert hidden.grad.dtype == torch.bfloat16 and weight.grad.dtype == torch.bfloat16
    plain = plain_cross_entropy_sum(hidden.detach().float(), weight.detach().float(), labels)
    assert abs(loss.item() - plain.item()) / plain.item() < 2e-2


def test_no_gradient_needed_skips_gradients():
    hidden, weight, labels = inputs()
    with torch.no_grad():
        loss = chunked_cross_entropy_sum(hidden, weight, labels, 8)
    torch.testing.assert_close(
        loss, plain_cross_entropy_sum(hidden, weight, labels).detach(), rtol=1e-6, atol=1e-5
    )


def test_bad_chunk_size():
    hidden, weight, labels = inputs()
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_cross_entropy_sum(hidden, weight, labels, 0)

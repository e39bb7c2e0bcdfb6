"""Packed, document-masked attention equals running every document on its own."""

from __future__ import annotations

import pytest
import torch

from trainer.attention import DocMask, available_backends, doc_attention, resolve_backend
from trainer.config import ModelConfig, TinyConfig
from trainer.model import CausalLMWithLoss, load_lm

CPU = torch.device("cpu")
SPANS = [[0, 1, 7, 30, 48], [0, 48]]  # row 0: four documents, one of a single token; row 1: one
SEQ = 48


def packed_inputs(vocab: int):
    """(2, 48) ids, position ids restarting per document, and flattened cu_seqlens."""
    torch.manual_seed(1)
    ids = torch.randint(0, vocab, (2, SEQ))
    positions = torch.zeros_like(ids)
    cu = [0]
    for row, bounds in enumerate(SPANS):
        for start, end in zip(bounds[:-1], bounds[1:]):
            positions[row, start:end] = torch.arange(end - start)
            cu.append(row * SEQ + end)
    return ids, positions, torch.tensor(cu)


@pytest.fixture(scope="module")
def tiny_model():
    lm = load_lm(ModelConfig(tiny=True, rope_theta=8e6), TinyConfig(vocab_size=320), SEQ)
    return CausalLMWithLoss(lm).eval()


@pytest.mark.parametrize("backend", available_backends(CPU))
def test_packed_equals_separate_documents(tiny_model, backend):
    ids, positions, cu = packed_inputs(320)
    with torch.no_grad():
        packed = tiny_model.logits(ids, positions, DocMask.from_cu_seqlens(cu, CPU, backend))  # (2, T, V)
        separate = []
        for row, bounds in enumerate(SPANS):
            for start, end in zip(bounds[:-1], bounds[1:]):
                alone = DocMask.from_cu_seqlens(torch.tensor([0, end - start]), CPU, backend)
                separate.append(tiny_model.logits(ids[row : row + 1, start:end], None, alone)[0])
    diff = (packed.reshape(-1, 320) - torch.cat(separate)).abs().max().item()
    assert diff <= 1e-5, f"{backend}: packed and per-document logits differ by {diff}"


def dense_reference(q, k, v, cu):
    """Block-diagonal causal attention through an explicit (N, N) mask; tiny sizes only."""
    batch, heads, seq, dim = q.shape
    doc = torch.repeat_interleave(torch.arange(len(cu) - 1), cu.diff())  # (N,)
    pos = torch.arange(batch * seq)
    allowed = (doc[:, None] == doc[None, :]) & (pos[:, None] >= pos[None, :])  # (N, N)
    qf = q.transpose(1, 2).reshape(batch * seq, heads, dim).transpose(0, 1)  # (H, N, D)
    kf = (
        k.transpose(1, 2)
        .reshape(batch * seq, -1, dim)
        .repeat_interleave(heads // k.shape[1], 1)
        .transpose(0, 1)
    )
    vf = (
        v.transpose(1, 2)
        .reshape(batch * seq, -1, dim)
        .repeat_interleave(heads // v.shape[1], 1)
        .transpose(0, 1)
    )
    scores = (qf @ kf.transpose(1, 2)) / dim**0.5  # (H, N, N)
    out = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ vf  # (H, N, D)
    return out.transpose(0, 1).reshape(batch, seq, heads, dim)


def qkv(requires_grad: bool):
    torch.manual_seed(0)
    q = torch.randn(2, 4, 24, 8, dtype=torch.float64, requires_grad=requires_grad)  # (B, H, T, D)
    k = torch.randn(2, 2, 24, 8, dtype=torch.float64, requires_grad=requires_grad)  # (B, Hkv, T, D)
    v = torch.randn(2, 2, 24, 8, dtype=torch.float64, requires_grad=requires_grad)
    return q, k, v


CU = torch.tensor([0, 5, 24, 30, 31, 48])


@pytest.mark.parametrize("backend", available_backends(CPU))
def test_backend_matches_dense_reference(backend):
    q, k, v = qkv(requires_grad=False)
    out, _ = doc_attention(None, q, k, v, None, doc_mask=DocMask.from_cu_seqlens(CU, CPU, backend))
    torch.testing.assert_close(out, dense_reference(q, k, v, CU), rtol=1e-10, atol=1e-10)


def test_exact_path_gradients_match_dense_reference():
    q, k, v = qkv(requires_grad=True)
    out, _ = doc_attention(None, q, k, v, None, doc_mask=DocMask.from_cu_seqlens(CU, CPU, "sdpa_docs"))
    got = torch.autograd.grad(out.square().sum(), (q, k, v))
    want = torch.autograd.grad(dense_reference(q, k, v, CU).square().sum(), (q, k, v))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_no_dense_mask_reaches_attention(tiny_model, monkeypatch):
    seen = []
    import trainer.attention as attention

    original = attention._KERNELS["sdpa_docs"]

    def spy(q, k, v, mask, scale):
        seen.append(q.shape)
        return original(q, k, v, mask, scale)

    monkeypatch.setitem(attention._KERNELS, "sdpa_docs", spy)
    masks = []
    ids, positions, cu = packed_inputs(320)
    layer = tiny_model.lm.model.layers[0].self_attn
    handle = layer.register_forward_pre_hook(
        lambda mod, args, kwargs: masks.append(kwargs.get("attention_mask")), with_kwargs=True
    )
    with torch.no_grad():
        tiny_model.logits(ids, positions, DocMask.from_cu_seqlens(cu, CPU, "sdpa_docs"))
    handle.remove()
    assert masks == [None], "transformers built a dense attention mask"
    assert seen and all(shape == (2 * SEQ, 4, 16) for shape in seen)


def test_auto_backend_on_cpu_is_exact_path():
    assert resolve_backend("auto", CPU) == "sdpa_docs"
    with pytest.raises(ValueError, match="not available"):
        resolve_backend("flash", CPU)
    with pytest.raises(ValueError, match="unknown attention backend"):
        resolve_backend("dense", CPU)

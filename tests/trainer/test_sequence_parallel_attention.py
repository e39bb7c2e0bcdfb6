"""Ulysses attention over 2 and 4 gloo ranks equals single-process doc-masked attention."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference_attend(bounds):
    """Doc-masked causal attention on whole sequences: q (B, T, H, D), k/v (B, T, Hkv, D)."""

    def attend(q, k, v):
        groups = q.shape[2] // k.shape[2]
        k, v = k.repeat_interleave(groups, 2), v.repeat_interleave(groups, 2)
        out = torch.empty_like(q)
        for b in range(q.shape[0]):
            for s, e in bounds[b]:
                qd, kd, vd = (t[b, s:e].transpose(0, 1)[None] for t in (q, k, v))  # (1, H, L, D)
                od = torch.nn.functional.scaled_dot_product_attention(qd, kd, vd, is_causal=True)
                out[b, s:e] = od[0].transpose(0, 1)
        return out

    return attend


def _inputs(seed, b, t, h, hkv, d):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, h, d, generator=g, dtype=torch.float64)
    k = torch.randn(b, t, hkv, d, generator=g, dtype=torch.float64)
    v = torch.randn(b, t, hkv, d, generator=g, dtype=torch.float64)
    w = torch.randn(b, t, h, d, generator=g, dtype=torch.float64)  # weights of a scalar loss
    return q, k, v, w


def _worker(rank, world, port, case, results):
    from trainer.sequence_parallel import SPGroup, local_slice, ulysses_attention

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        b, t, h, hkv, d, bounds = case
        sp = SPGroup(group=None, rank=rank, size=world)
        q, k, v, w = _inputs(0, b, t, h, hkv, d)
        ql, kl, vl = (local_slice(x, sp).clone().requires_grad_() for x in (q, k, v))
        out = ulysses_attention(ql, kl, vl, sp, _reference_attend(bounds))
        (out * local_slice(w, sp)).sum().backward()
        results[rank] = (out.detach(), ql.grad, kl.grad, vl.grad)
    finally:
        dist.destroy_process_group()


# documents cross rank boundaries; one document is longer than a rank's share
CASES = {
    "2 ranks, gqa": (2, 2, 24, 4, 2, 8, [[(0, 5), (5, 20), (20, 24)], [(0, 24)]]),
    "4 ranks, kv repeated": (4, 1, 32, 8, 2, 4, [[(0, 3), (3, 29), (29, 32)]]),
    "4 ranks, one kv head": (4, 1, 16, 4, 1, 4, [[(0, 9), (9, 16)]]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_ulysses_attention_equals_single_process(name):
    world, *case = CASES[name]
    b, t, h, hkv, d, bounds = case
    q, k, v, w = _inputs(0, b, t, h, hkv, d)
    q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
    ref = _reference_attend(bounds)(q, k, v)
    (ref * w).sum().backward()

    results = mp.Manager().dict()
    mp.spawn(_worker, args=(world, _free_port(), tuple(case), results), nprocs=world, join=True)
    tl = t // world
    for rank in range(world):
        out, gq, gk, gv = results[rank]
        sl = slice(rank * tl, (rank + 1) * tl)
        torch.testing.assert_close(out, ref[:, sl].detach(), rtol=0, atol=1e-10)
        torch.testing.assert_close(gq, q.grad[:, sl], rtol=0, atol=1e-10)
        torch.testing.assert_close(gk, k.grad[:, sl], rtol=0, atol=1e-10)
        torch.testing.assert_close(gv, v.grad[:, sl], rtol=0, atol=1e-10)


def test_sp_rejects_sizes_that_do_not_divide():
    from trainer.sequence_parallel import SPGroup, local_slice, repeat_kv_for_sp

    with pytest.raises(ValueError, match="multiple"):
        repeat_kv_for_sp(torch.zeros(1, 2, 3, 4), 4)
    with pytest.raises(ValueError, match="divisible"):
        local_slice(torch.zeros(1, 10), SPGroup(None, 0, 4))


def _doc_attention_worker(rank, world, port, backend, results):
    from trainer.attention import DocMask, doc_attention
    from trainer.sequence_parallel import SPGroup, local_slice

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        sp = SPGroup(group=None, rank=rank, size=world)
        q, k, v, w = (x.float() for x in _inputs(1, 2, 32, 4, 2, 8))  # (B, T, H|Hkv, D)
        grads = backend != "flex"  # flex attention has no CPU backward
        ql, kl, vl = (local_slice(x, sp).transpose(1, 2).clone().requires_grad_(grads) for x in (q, k, v))
        mask = DocMask.from_cu_seqlens(torch.tensor(DOC_CU), torch.device("cpu"), backend, sp)
        out, _ = doc_attention(None, ql, kl, vl, None, doc_mask=mask)  # (B, Tl, H, D)
        if grads:
            (out * local_slice(w, sp)).sum().backward()
        results[rank] = (out.detach(), ql.grad, kl.grad)
    finally:
        dist.destroy_process_group()


DOC_CU = [0, 7, 30, 32, 50, 64]  # over the flattened (2 x 32) batch; documents cross the 16-token cut


@pytest.mark.parametrize("backend", ["sdpa_docs", "flex"])
def test_doc_attention_with_sp_equals_without(backend):
    """The trainer's attention entry point: with ``DocMask.sp`` set = the unsplit call (CPU backends;
    gradients for ``sdpa_docs``, flex attention has no CPU backward)."""
    from trainer.attention import DocMask, doc_attention

    q, k, v, w = (x.float() for x in _inputs(1, 2, 32, 4, 2, 8))
    grads = backend != "flex"  # flex attention has no CPU backward
    qt, kt, vt = (x.transpose(1, 2).clone().requires_grad_(grads) for x in (q, k, v))  # (B, H|Hkv, T, D)
    mask = DocMask.from_cu_seqlens(torch.tensor(DOC_CU), torch.device("cpu"), backend)
    ref, _ = doc_attention(None, qt, kt, vt, None, doc_mask=mask)  # (B, T, H, D)
    if grads:
        (ref * w).sum().backward()

    results = mp.Manager().dict()
    mp.spawn(_doc_attention_worker, args=(2, _free_port(), backend, results), nprocs=2, join=True)
    for rank in range(2):
        out, gq, gk = results[rank]
        sl = slice(rank * 16, (rank + 1) * 16)
        torch.testing.assert_close(out, ref[:, sl].detach(), rtol=1e-5, atol=1e-6)
        if grads:
            torch.testing.assert_close(gq, qt.grad[:, :, sl], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(gk, kt.grad[:, :, sl], rtol=1e-5, atol=1e-6)

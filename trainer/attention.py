"""Document-masked causal attention, plugged into Hugging Face models by name.

A packed sequence holds several documents back to back. A token may attend to earlier tokens of
its own document only, so attention is block-diagonal and causal inside each block. The blocks
are given as ``cu_seqlens``: the cumulative document boundaries over the flattened micro-batch
(B * T tokens), e.g. ``[0, 5, 16, 20, 32]`` for two rows of 16 tokens holding 2 documents each.

Backends (all exact, they differ in speed only):

- ``sdpa_docs``: one causal ``F.scaled_dot_product_attention`` call per document. Runs anywhere,
  and is the CPU path: PyTorch's CPU kernel for an unmasked causal call is flash-style, so memory
  stays linear in the document length. A dense (T, T) block mask is never built.
- ``flex``: ``torch.nn.attention.flex_attention`` with a block mask from document ids (GPU; also
  runs, slowly, on CPU where it is used for testing).
- ``varlen``: ``torch.nn.attention.varlen.varlen_attn`` (PyTorch's own flash varlen kernel, CUDA).
- ``flash``: ``flash_attn.flash_attn_varlen_func`` when the flash-attn package is installed.

``auto`` picks ``flash``, then ``varlen``, then ``flex`` on CUDA, and ``sdpa_docs`` on CPU.

With sequence parallelism (``DocMask.sp`` set) each rank's q/k/v hold its slice of the tokens;
``ulysses_attention`` (trainer/sequence_parallel.py) trades them for all tokens of a share of the
heads, the backend runs over the *global* ``cu_seqlens``, and the output is traded back.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from dataclasses import dataclass, field
from functools import cache

import torch
import torch.nn.functional as F

from trainer.sequence_parallel import SPGroup, ulysses_attention

ATTENTION_NAME = "prolong_doc"
"""The name under which the attention is registered in transformers' AttentionInterface."""

BACKENDS = ("auto", "sdpa_docs", "flex", "varlen", "flash")


def _has_varlen() -> bool:
    """Whether this PyTorch ships ``torch.nn.attention.varlen``."""
    return importlib.util.find_spec("torch.nn.attention.varlen") is not None


def available_backends(device: torch.device) -> list[str]:
    """Backends that can run on ``device`` in this environment (``auto`` excluded)."""
    names = ["sdpa_docs", "flex"]
    if device.type == "cuda":
        if _has_varlen():
            names.append("varlen")
        if importlib.util.find_spec("flash_attn") is not None:
            names.append("flash")
    return names


def resolve_backend(name: str, device: torch.device) -> str:
    """Turns ``auto`` into the fastest available backend and checks an explicit choice (the
    answer is computed once per process and device type)."""
    return _resolve(name, torch.device(device).type)


@cache
def _resolve(name: str, device_type: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {BACKENDS}")
    usable = available_backends(torch.device(device_type))
    if name == "auto":
        if device_type != "cuda":
            return "sdpa_docs"
        for candidate in ("flash", "varlen", "flex"):
            if candidate in usable:
                return candidate
    if name not in usable:
        raise ValueError(
            f"attention backend {name!r} is not available on {device_type}; use one of {usable} or 'auto'"
        )
    return name


@dataclass
class DocMask:
    """Where the documents of a flattened micro-batch start and end, for every backend.

    Built once per forward pass and handed to every attention layer through the model's kwargs.
    """

    cu_seqlens: torch.Tensor
    """(n_docs + 1,) int32 on the compute device: document boundaries over B * T tokens."""
    bounds: list[tuple[int, int]]
    """The same boundaries as Python ``(start, end)`` pairs (for the per-document loop)."""
    max_seqlen: int
    """Length of the longest document."""
    backend: str
    """A resolved backend name (not ``auto``)."""
    sp: SPGroup | None = None
    """The sequence-parallel group when each rank holds a slice of the tokens (then ``cu_seqlens``
    still describes the whole sequence); None when every rank holds whole sequences."""
    _block_mask: object | None = field(default=None, repr=False)

    @classmethod
    def from_cu_seqlens(
        cls, cu_seqlens: torch.Tensor, device: torch.device, backend: str, sp: SPGroup | None = None
    ) -> DocMask:
        """Builds the mask from CPU boundaries (of whole sequences), moving them to ``device`` once."""
        cu = cu_seqlens.to("cpu", torch.int64)
        starts, ends = cu[:-1].tolist(), cu[1:].tolist()
        return cls(
            cu_seqlens=cu.to(device=device, dtype=torch.int32),
            bounds=list(zip(starts, ends)),
            max_seqlen=int((cu[1:] - cu[:-1]).max()),
            backend=resolve_backend(backend, device),
            sp=sp,
        )

    def block_mask(self, total: int, device: torch.device):
        """The flex-attention BlockMask of this packing: built once per micro-batch, on its first
        use, by the compiled ``create_block_mask`` on CUDA (block by block: never a dense
        (N, N) mask), and reused by every layer."""
        if self._block_mask is None:
            from torch.nn.attention.flex_attention import create_block_mask

            lengths = self.cu_seqlens[1:] - self.cu_seqlens[:-1]  # (n_docs,)
            doc_id = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)  # (N,)

            def same_doc_causal(b, h, q_idx, kv_idx):
                return (doc_id[q_idx] == doc_id[kv_idx]) & (q_idx >= kv_idx)

            self._block_mask = create_block_mask(
                same_doc_causal, None, None, total, total, device=device, _compile=device.type == "cuda"
            )
        return self._block_mask


def _sdpa_per_document(q, k, v, mask: DocMask, scale: float) -> torch.Tensor:
    """Exact path: one causal SDPA call per document. q (N, H, D), k/v (N, Hkv, D) -> (N, H, D).

    The documents are cut with one ``split`` and joined with one ``cat``, so the backward pass
    also costs O(N) in all. (Slicing ``q[start:end]`` and writing ``out[start:end]`` per document
    would make autograd build a zero-filled (N, H, D) gradient per document and slice: O(docs x N)
    memory traffic, which made a 524,288-token CPU step spend most of its time page-faulting.)
    """
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)  # (N, H, D)
    v = v.repeat_interleave(groups, dim=1)  # (N, H, D)
    lengths = [end - start for start, end in mask.bounds]
    if sum(lengths) != q.shape[0]:
        raise ValueError(f"document boundaries cover {sum(lengths)} tokens, the batch has {q.shape[0]}")
    outs = []
    for qd, kd, vd in zip(q.split(lengths), k.split(lengths), v.split(lengths)):  # each (L, H, D)
        qd, kd, vd = (x.transpose(0, 1).unsqueeze(0) for x in (qd, kd, vd))  # (1, H, L, D)
        od = F.scaled_dot_product_attention(qd, kd, vd, is_causal=True, scale=scale)  # (1, H, L, D)
        outs.append(od[0].transpose(0, 1))  # (L, H, D)
    return torch.cat(outs)  # (N, H, D)


@cache
def _compiled_flex():
    """``flex_attention`` compiled once per process (compiling it per call recompiles per layer)."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)


def _flex(q, k, v, mask: DocMask, scale: float) -> torch.Tensor:
    """Flex attention over the whole flattened batch with a document block mask."""
    from torch.nn.attention.flex_attention import flex_attention

    block_mask = mask.block_mask(q.shape[0], q.device)
    qf, kf, vf = (t.transpose(0, 1).unsqueeze(0) for t in (q, k, v))  # (1, H|Hkv, N, D)
    if q.device.type == "cuda":
        out = _compiled_flex()(qf, kf, vf, block_mask=block_mask, scale=scale, enable_gqa=True)
    else:  # eager flex builds the full score matrix: fine for the short CPU tests it serves
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = flex_attention(qf, kf, vf, block_mask=block_mask, scale=scale, enable_gqa=True)
    # out: (1, H, N, D)
    return out[0].transpose(0, 1)


@cache
def _varlen_options() -> tuple[dict, bool]:
    """How this PyTorch's ``varlen_attn`` is asked for causal attention, and whether it takes
    grouped kv heads itself (``enable_gqa``); read from its signature once per process."""
    from torch.nn.attention.varlen import varlen_attn

    parameters = inspect.signature(varlen_attn).parameters
    causal = {"is_causal": True} if "is_causal" in parameters else {"window_size": (-1, 0)}
    return causal, "enable_gqa" in parameters


def _varlen(q, k, v, mask: DocMask, scale: float) -> torch.Tensor:
    """PyTorch's own flash varlen kernel (CUDA only)."""
    from torch.nn.attention.varlen import varlen_attn

    cu, n = mask.cu_seqlens, mask.max_seqlen
    causal, takes_gqa = _varlen_options()
    if k.shape[1] != q.shape[1]:
        if takes_gqa:
            causal = {**causal, "enable_gqa": True}
        else:
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (N, H, D)
    return varlen_attn(q, k, v, cu, cu, n, n, scale=scale, **causal)  # (N, H, D)


def _flash(q, k, v, mask: DocMask, scale: float) -> torch.Tensor:
    """The flash-attn package's varlen kernel (CUDA, handles grouped kv heads itself)."""
    from flash_attn import flash_attn_varlen_func

    cu, n = mask.cu_seqlens, mask.max_seqlen
    return flash_attn_varlen_func(q, k, v, cu, cu, n, n, softmax_scale=scale, causal=True)  # (N, H, D)


_KERNELS = {"sdpa_docs": _sdpa_per_document, "flex": _flex, "varlen": _varlen, "flash": _flash}


def doc_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    doc_mask: DocMask | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function: q (B, H, T, D), k/v (B, Hkv, T, D) -> (B, T, H, D).

    ``doc_mask`` comes from the model call's kwargs; without it, every row is one document. With
    ``doc_mask.sp`` set, T is this rank's slice and the output is this rank's slice too.
    """
    if dropout:
        raise ValueError("document-masked attention does not implement attention dropout; set it to 0")
    batch, heads, seq, dim = query.shape
    if doc_mask is None:
        cu = torch.arange(0, (batch + 1) * seq, seq)
        doc_mask = DocMask.from_cu_seqlens(cu, query.device, "auto")
    scale = scaling if scaling is not None else dim**-0.5
    if doc_mask.sp is not None:
        return _sequence_parallel(query, key, value, doc_mask, scale), None
    q = query.transpose(1, 2).reshape(batch * seq, heads, dim)  # (N, H, D)
    k = key.transpose(1, 2).reshape(batch * seq, key.shape[1], dim)  # (N, Hkv, D)
    v = value.transpose(1, 2).reshape(batch * seq, value.shape[1], dim)  # (N, Hkv, D)
    out = _KERNELS[doc_mask.backend](q, k, v, doc_mask, scale)  # (N, H, D)
    return out.reshape(batch, seq, heads, dim), None


def _sequence_parallel(query, key, value, doc_mask: DocMask, scale: float) -> torch.Tensor:
    """q (B, H, Tl, D), k/v (B, Hkv, Tl, D) slices of this rank -> (B, Tl, H, D), exact over the whole sequence."""
    kernel = _KERNELS[doc_mask.backend]

    def attend(q, k, v):  # q (B, T, H/P, D), k/v (B, T, Hkv', D): whole sequences, this rank's heads
        b, t, h, d = q.shape
        out = kernel(
            q.reshape(b * t, h, d),
            k.reshape(b * t, k.shape[2], d),
            v.reshape(b * t, v.shape[2], d),
            doc_mask,
            scale,
        )  # (N, H/P, D) over the global cu_seqlens
        return out.reshape(b, t, h, d)

    q, k, v = (x.transpose(1, 2) for x in (query, key, value))  # (B, Tl, H|Hkv, D)
    return ulysses_attention(q, k, v, doc_mask.sp, attend)  # (B, Tl, H, D)


def _no_dense_mask(*args, **kwargs) -> None:
    """Mask factory for our attention name: the document mask travels as ``doc_mask`` instead."""
    return None


def register_attention() -> str:
    """Registers ``doc_attention`` (and a mask factory that builds nothing) with transformers."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, doc_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, _no_dense_mask)
    return ATTENTION_NAME

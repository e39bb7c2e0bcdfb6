"""doc_loss against a direct per-token computation on a tiny random Llama."""

from __future__ import annotations

import numpy as np
import pytest

from prolong_data.evaluation.tasks.doc_loss import (
    BUCKETS,
    aggregate,
    bucket_name,
    document_ids,
    document_record,
    windowed_losses,
)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from prolong_data.evaluation.backends.hf import HFBackend

    return HFBackend(str(tiny_model_dir), device="cpu")


def direct_losses(backend, ids: list[int]) -> np.ndarray:
    """-log softmax(logits)[next token] from the model's plain forward pass, in float64."""
    import torch

    with torch.no_grad():
        logits = backend.lm(torch.tensor([ids])).logits[0, :-1].double()  # (T-1, V)
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()


def test_token_losses_equal_the_direct_computation(backend, heldout_dir, monkeypatch):
    import prolong_data.evaluation.backends.hf as hf
    from prolong_data.evaluation.haystack import read_documents

    text = read_documents(heldout_dir)[0].text
    ids = document_ids(backend.tokenizer, text, 1100)
    assert len(ids) == 1100 and ids[0] == backend.tokenizer.bos_token_id
    monkeypatch.setattr(hf, "LOSS_CHUNK", 512)  # several chunks of the LM head
    ours = backend.token_losses(ids)
    direct = direct_losses(backend, ids)
    assert ours.shape == (1099,)
    # fp32 logits of a random tiny model are O(1); log-softmax over 128,256 entries in fp32 against
    # float64 differs by a few ulps of log(V) ~ 12, i.e. ~1e-6; 1e-4 leaves room for summation order.
    np.testing.assert_allclose(ours, direct, atol=1e-4)


def test_windows_and_buckets_match_a_direct_computation(backend, heldout_dir):
    from prolong_data.evaluation.haystack import read_documents

    text = read_documents(heldout_dir)[0].text
    ids = document_ids(backend.tokenizer, text, 1100)
    bos = backend.tokenizer.bos_token_id
    window = 512
    windowed = windowed_losses(ids, window, bos, backend.token_losses)
    expected = np.empty(len(ids) - 1)
    for start in range(1, len(ids), window):  # each window scored alone after a BOS
        piece = ids[start : start + window]
        expected[start - 1 : start - 1 + len(piece)] = direct_losses(backend, [bos, *piece])
    np.testing.assert_allclose(windowed, expected, atol=1e-4)
    full = backend.token_losses(ids)
    # the first window sees exactly the tokens the full pass sees
    np.testing.assert_allclose(windowed[:window], full[:window], atol=1e-4)

    record = document_record("doc", full, windowed)
    positions = np.arange(1, len(ids))
    for start, end in BUCKETS:
        sel = (positions >= start) & (positions < end)
        name = bucket_name(start, end)
        if not sel.any():
            assert name not in record["buckets"]
            continue
        f, w, n = record["buckets"][name]
        assert n == sel.sum()
        assert f == pytest.approx(full[sel].sum(), rel=1e-12) and w == pytest.approx(
            windowed[sel].sum(), rel=1e-12
        )
    summary = aggregate([record, record], context=1100, window=window)
    first = summary["buckets"][0]
    assert first["bucket"] == "0-1K" and first["tokens"] == 2 * 1023
    assert first["full"] == pytest.approx(full[:1023].mean(), rel=1e-12)
    assert summary["buckets"][1]["gain"] == pytest.approx(
        windowed[1023:].mean() - full[1023:].mean(), rel=1e-9
    )
    assert sum(c["tokens"] for c in summary["curve"]) == 2 * (len(ids) - 1)


def test_windows_without_bos_leave_each_windows_first_token_out():
    calls = []

    def losses(ids):
        calls.append(list(ids))
        return np.ones(len(ids) - 1)

    out = windowed_losses(list(range(10)), 4, None, losses)
    assert calls == [[1, 2, 3, 4], [5, 6, 7, 8], [9]][:2]
    assert np.isnan(out[[0, 4, 8]]).all() and np.nansum(out) == 6


def test_bucket_names():
    assert [bucket_name(a, b) for a, b in BUCKETS] == ["0-1K", "1K-4K", "4K-16K", "16K-64K", "64K-512K"]

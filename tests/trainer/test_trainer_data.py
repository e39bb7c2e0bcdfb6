"""Labels, position ids and batches from the document spans; the mixture loader."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from trainer.data import (
    build_loader,
    check_spans,
    collate,
    endless,
    labels_from_spans,
    load_mixture,
    masked_domains,
    position_ids_from_spans,
)
from trainer.loss import IGNORE_INDEX

SPANS = np.array([[0, 3], [3, 4], [4, 8]], dtype=np.uint32)
IDS = np.arange(10, 18, dtype=np.uint32)


def test_position_ids_restart_at_each_document():
    assert position_ids_from_spans(SPANS, 8).tolist() == [0, 1, 2, 0, 0, 1, 2, 3]


def test_first_token_of_every_document_is_not_a_target():
    labels = labels_from_spans(IDS, SPANS, None)
    # position t predicts token t+1; tokens 3 and 4 start documents, the last position has no next token
    assert labels.tolist() == [11, 12, IGNORE_INDEX, IGNORE_INDEX, 15, 16, 17, IGNORE_INDEX]


def test_sft_mask_removes_untrained_targets():
    mask = np.array([0, 0, 1, 1, 1, 0, 1, 1], dtype=np.uint8)
    labels = labels_from_spans(IDS, SPANS, mask)
    assert labels.tolist() == [
        IGNORE_INDEX,
        12,
        IGNORE_INDEX,
        IGNORE_INDEX,
        IGNORE_INDEX,
        16,
        17,
        IGNORE_INDEX,
    ]


@pytest.mark.parametrize(
    "spans",
    [[[0, 3], [4, 8]], [[0, 3], [3, 7]], [[1, 8]], [[0, 3], [3, 3], [3, 8]], np.zeros((0, 2))],
)
def test_bad_spans_are_rejected(spans):
    with pytest.raises(ValueError, match="rebuild the shards"):
        check_spans(np.asarray(spans), 8)


def test_collate_flattens_document_bounds():
    samples = [
        {"input_ids": IDS, "indices": SPANS},
        {"input_ids": IDS, "indices": np.array([[0, 8]], dtype=np.uint32)},
    ]
    batch = collate(samples)
    assert batch["input_ids"].shape == (2, 8) and batch["input_ids"].dtype == torch.int64
    assert batch["cu_seqlens"].tolist() == [0, 3, 4, 8, 16]
    assert batch["position_ids"][1].tolist() == list(range(8))
    assert list(batch)[0] == "input_ids"  # streaming counts a batch's samples from its first value


def _write_mixture(root, streams, seq_len=64):
    (root / "mixture.json").write_text(json.dumps({"seq_len": seq_len, "streams": streams, "extra": 1}))
    return root / "mixture.json"


def test_load_mixture_resolves_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.json").write_text('{"version": 2, "shards": []}')
    path = _write_mixture(tmp_path, [{"domain": "a", "path": "a", "proportion": 1}])
    mixture, root = load_mixture(path)
    assert mixture.resolved_paths(root) == {"a": (tmp_path / "a").resolve()} and mixture.seq_len == 64


def test_missing_mixture_says_to_build_shards(tmp_path):
    with pytest.raises(ValueError, match="make shards"):
        load_mixture(tmp_path / "nope" / "mixture.json")


def test_proportions_that_do_not_sum_to_one_are_refused(toy_shards, tmp_path):
    """The library's own mixture check (one tolerance) runs on the trainer's input."""
    streams = [{"domain": d, "path": str(toy_shards.parent / d), "proportion": 0.9} for d in ("a", "b")]
    with pytest.raises(ValueError, match="sum to 1.8"):
        load_mixture(_write_mixture(tmp_path, streams))


def test_a_domain_folder_without_shards_is_named(toy_shards, tmp_path):
    streams = [
        {"domain": "a", "path": str(toy_shards.parent / "a"), "proportion": 0.5},
        {"domain": "gone", "path": "gone", "proportion": 0.5},
    ]
    with pytest.raises(ValueError, match="domain 'gone' at .*gone, which holds no index.json"):
        load_mixture(_write_mixture(tmp_path, streams))


def test_masks_are_applied_only_when_asked(toy_shards):
    """Domain ``b`` carries SFT masks: ignored by default (pre-training), applied when asked."""
    mixture, root = load_mixture(toy_shards)
    assert masked_domains(mixture, root) == ["b"]
    ids = np.arange(8)
    sample = {"input_ids": ids, "indices": np.array([[0, 8]]), "mask": np.array([0, 0, 0, 1, 1, 0, 1, 1])}
    plain, masked = collate([sample], apply_masks=False), collate([sample], apply_masks=True)
    assert plain["labels"][0].tolist() == [1, 2, 3, 4, 5, 6, 7, IGNORE_INDEX]
    assert masked["labels"][0].tolist() == [
        IGNORE_INDEX,
        IGNORE_INDEX,
        3,
        4,
        IGNORE_INDEX,
        6,
        7,
        IGNORE_INDEX,
    ]
    with pytest.warns(UserWarning, match=r"domains \['b'\] carry `mask` columns that this stage ignores"):
        build_loader(toy_shards, micro_batch_size=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_loader(toy_shards, micro_batch_size=2, seed=0, apply_masks=True)


def first_batches(mixture, seed, count, state=None):
    loader, _ = build_loader(mixture, micro_batch_size=2, seed=seed)
    if state:
        loader.load_state_dict(state)
    stream = endless(loader)
    batches = [next(stream)["input_ids"] for _ in range(count)]
    return batches, loader.state_dict()


def test_loader_is_deterministic_by_seed_and_resumable(toy_shards):
    run_a, _ = first_batches(toy_shards, seed=3, count=6)
    run_b, _ = first_batches(toy_shards, seed=3, count=6)
    other, _ = first_batches(toy_shards, seed=4, count=6)
    assert all(torch.equal(a, b) for a, b in zip(run_a, run_b))
    assert not all(torch.equal(a, b) for a, b in zip(run_a, other))
    head, state = first_batches(toy_shards, seed=3, count=2)
    tail, _ = first_batches(toy_shards, seed=3, count=4, state=state)
    assert all(torch.equal(a, b) for a, b in zip(run_a, head + tail))


def test_loader_draws_from_every_domain_and_runs_past_an_epoch(toy_shards):
    loader, seq_len = build_loader(toy_shards, micro_batch_size=2, seed=0)
    stream = endless(loader)
    batches = [next(stream) for _ in range(len(loader) + 3)]
    assert seq_len == 64 and all(b["input_ids"].shape == (2, 64) for b in batches)
    assert len({int(b["input_ids"][0, 0]) for b in batches}) > 1

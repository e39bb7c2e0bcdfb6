"""Property tests of the packing invariants, for every packing mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prolong_data.packing import BFDPacker, ChunkPacker, ConcatPacker, LengthBinner, best_fit_decreasing


def _docs(draw_lengths: list[int]) -> list[np.ndarray]:
    """Documents whose tokens are globally unique, so every output token can be traced back."""
    docs, start = [], 0
    for n in draw_lengths:
        docs.append(np.arange(start, start + n, dtype=np.uint32))
        start += n
    return docs


def _assert_spans_valid(seq, seq_len):
    spans = seq.indices.astype(np.int64)
    assert seq.input_ids.shape == (seq_len,) and seq.input_ids.dtype == np.uint32
    assert seq.indices.dtype == np.uint32 and spans.shape[1] == 2
    assert spans[0, 0] == 0 and spans[-1, 1] == seq_len
    assert np.all(spans[1:, 0] == spans[:-1, 1]) and np.all(spans[:, 1] > spans[:, 0])


lengths_st = st.lists(st.integers(1, 60), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(lengths=lengths_st, seq_len=st.integers(1, 50))
def test_concat_split_keeps_every_token_in_order(lengths, seq_len):
    docs = _docs(lengths)
    packer = ConcatPacker(seq_len)
    seqs = [s for d in docs for s in packer.add(d)] + list(packer.finish())
    stream = np.concatenate(docs) if docs else np.zeros(0, np.uint32)
    kept = len(stream) // seq_len * seq_len
    out = np.concatenate([s.input_ids for s in seqs]) if seqs else np.zeros(0, np.uint32)
    assert np.array_equal(out, stream[:kept])  # every token once, in order, only the tail dropped
    assert packer.stats.dropped_tokens == len(stream) - kept
    assert packer.stats.tokens_out == kept and packer.stats.tokens_in == len(stream)
    owner = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)]) if lengths else np.zeros(0)
    for s in seqs:
        _assert_spans_valid(s, seq_len)
        for a, b in s.indices.astype(np.int64):
            doc_of = owner[s.input_ids[a:b]]
            assert np.all(doc_of == doc_of[0]), "a span mixes two documents"
        # a new span starts exactly where a new document starts (or at the sequence start)
        starts = set(s.indices[:, 0].tolist())
        for pos in range(1, seq_len):
            new_doc = owner[s.input_ids[pos]] != owner[s.input_ids[pos - 1]]
            assert new_doc == (pos in starts)


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 200), max_size=20),
    bins=st.lists(st.integers(4, 64), min_size=1, max_size=3, unique=True),
    tail=st.sampled_from(["drop", "next_bin"]),
)
def test_length_binning_cuts_exact_chunks_and_counts_the_rest(lengths, bins, tail):
    docs = _docs(lengths)
    binner = LengthBinner(bins, tail)
    kept = 0
    for doc in docs:
        chunks = list(binner.cut(doc))
        pos = 0
        for i, (length, chunk) in enumerate(chunks):
            assert len(chunk) == length
            assert np.array_equal(chunk, doc[pos : pos + length]), (
                "chunks must be consecutive from the doc start"
            )
            pos += length
            if i:
                assert length <= chunks[i - 1][0], "longest bin first"
        if chunks and tail == "drop":
            assert len({length for length, _ in chunks}) == 1
        if len(doc) < min(bins):
            assert not chunks
        else:
            assert chunks and chunks[0][0] == max(b for b in bins if b <= len(doc))
        kept += pos
    assert kept + binner.dropped_tokens == sum(lengths)


@settings(max_examples=100, deadline=None)
@given(n_chunks=st.integers(0, 30), chunk_len=st.integers(1, 16), per_seq=st.integers(1, 8))
def test_chunk_packer_one_span_per_chunk(n_chunks, chunk_len, per_seq):
    seq_len = chunk_len * per_seq
    chunks = _docs([chunk_len] * n_chunks)
    packer = ChunkPacker(seq_len, chunk_len)
    seqs = [s for c in chunks for s in packer.add(c)] + list(packer.finish())
    assert len(seqs) == n_chunks // per_seq
    for i, s in enumerate(seqs):
        _assert_spans_valid(s, seq_len)
        assert len(s.indices) == per_seq
        assert np.array_equal(s.input_ids, np.concatenate(chunks[i * per_seq : (i + 1) * per_seq]))
    assert packer.stats.dropped_tokens == (n_chunks % per_seq) * chunk_len


def test_chunk_packer_rejects_wrong_lengths():
    with pytest.raises(ValueError, match="multiple"):
        ChunkPacker(10, 3)
    with pytest.raises(ValueError, match="expected 4"):
        list(ChunkPacker(8, 4).add(np.zeros(3, np.uint32)))


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 80), max_size=40),
    seq_len=st.integers(8, 64),
    too_long=st.sampled_from(["truncate", "drop"]),
    buffer_size=st.integers(1, 50),
)
def test_best_fit_decreasing_keeps_units_whole_and_pads_with_mask_zero(
    lengths, seq_len, too_long, buffer_size
):
    docs = _docs(lengths)
    masks = [(d % 2).astype(np.uint8) for d in docs]
    packer = BFDPacker(seq_len, pad_id=999_999, buffer_size=buffer_size, too_long=too_long)
    seqs = [s for d, m in zip(docs, masks) for s in packer.add(d, m)] + list(packer.finish())
    expected = {}
    for d, m in zip(docs, masks):
        if len(d) > seq_len and too_long == "drop":
            continue
        expected[int(d[0])] = (d[:seq_len], m[:seq_len])
    seen = {}
    padded = 0
    for s in seqs:
        _assert_spans_valid(s, seq_len)
        assert s.mask.shape == (seq_len,) and s.mask.dtype == np.uint8
        for a, b in s.indices.astype(np.int64):
            piece = s.input_ids[a:b]
            if piece[0] == 999_999:
                assert b == seq_len and np.all(piece == 999_999) and not s.mask[a:b].any()
                padded += b - a
                continue
            assert int(piece[0]) not in seen, "a unit appears twice"
            seen[int(piece[0])] = (piece, s.mask[a:b])
    assert seen.keys() == expected.keys()
    for key, (ids, mask) in expected.items():
        assert np.array_equal(seen[key][0], ids) and np.array_equal(seen[key][1], mask)
    assert packer.stats.padded_tokens == padded
    kept = sum(len(v[0]) for v in expected.values())
    assert packer.stats.dropped_tokens == sum(lengths) - kept


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 100), max_size=60), capacity=st.integers(100, 300))
def test_best_fit_decreasing_is_a_valid_any_fit_packing(lengths, capacity):
    bins = best_fit_decreasing(lengths, capacity)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    fills = [sum(lengths[i] for i in b) for b in bins]
    assert all(f <= capacity for f in fills)
    # any-fit property: at most one bin is at most half full, so bins <= 2 * optimum + 1
    assert sum(f <= capacity / 2 for f in fills) <= 1
    assert len(bins) >= -(-sum(lengths) // capacity)


def test_packer_options_are_validated():
    with pytest.raises(ValueError, match="tail"):
        LengthBinner([8], tail="keep")
    with pytest.raises(ValueError, match="too_long"):
        BFDPacker(8, 0, too_long="split")
    with pytest.raises(ValueError, match="seq_len"):
        ConcatPacker(0)

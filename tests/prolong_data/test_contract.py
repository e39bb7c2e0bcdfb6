"""The shard contract in one module: columns, dtypes, span and mask rules, shard hashes."""

from __future__ import annotations

import numpy as np
import pytest

from prolong_data.contract import (
    HASHES,
    PRETRAIN_COLUMNS,
    SFT_COLUMNS,
    TOKEN_DTYPE,
    ShardError,
    check_columns,
    check_sample,
    check_spans,
    columns,
    file_hash,
)


def row(n=8, spans=((0, 3), (3, 8)), **changes):
    base = {
        "input_ids": np.arange(n, dtype=TOKEN_DTYPE),
        "indices": np.asarray(spans, TOKEN_DTYPE),
        "domain": "book-8",
        "length": n,
    }
    return {**base, **changes}


def test_columns_and_dtypes():
    assert columns(False) == PRETRAIN_COLUMNS and columns(True) == SFT_COLUMNS
    assert SFT_COLUMNS["mask"] == "ndarray:uint8" and TOKEN_DTYPE == np.uint32
    check_columns(SFT_COLUMNS)
    with pytest.raises(ShardError, match="column 'indices' is None"):
        check_columns({k: v for k, v in PRETRAIN_COLUMNS.items() if k != "indices"})
    with pytest.raises(ShardError, match="column 'mask'"):
        check_columns({**PRETRAIN_COLUMNS, "mask": "ndarray:uint32"})


def test_a_good_sample_and_its_length():
    assert check_sample(row(), seq_len=8, domain="book-8") == 8
    assert check_sample(row(mask=np.asarray([0, 1, 1, 0, 1, 1, 1, 0], np.uint8))) == 8


@pytest.mark.parametrize(
    "bad, message",
    [
        (row(input_ids=np.arange(8, dtype=np.int64)), "both must be uint32"),
        (row(length=7), "length column says 7"),
        (row(domain="other"), "domain column says 'other'"),
        (row(spans=((0, 3), (4, 8))), "spans 0 and 1 are not contiguous"),
        (row(spans=((0, 3), (3, 3), (3, 8))), "span 1 \\[3, 3\\] is empty"),
        (row(spans=((1, 8),)), "spans cover \\[1, 8\\)"),
        (row(mask=np.ones(7, np.uint8)), "mask must be uint8 with 8 entries"),
        (row(mask=np.full(8, 2, np.uint8)), "values other than 0 and 1"),
    ],
)
def test_each_rule_names_what_is_wrong(bad, message):
    with pytest.raises(ShardError, match=message):
        check_sample(bad, seq_len=8, domain="book-8")


def test_span_check_is_a_value_error_that_says_rebuild():
    with pytest.raises(ValueError, match="rebuild the shards"):
        check_spans(np.zeros((0, 2)), 8)
    with pytest.raises(ShardError, match="must cover \\[0, 9\\)"):
        check_spans(np.asarray([[0, 8]]), 9)


def test_shard_hashes_are_streamings():
    streaming_hashing = pytest.importorskip("streaming.base.hashing")
    data = b"\x00\x01shard bytes" * 1000
    for algorithm in (*HASHES, "md5", "xxh64"):
        assert file_hash(algorithm, data) == streaming_hashing.get_hash(algorithm, data)
    assert file_hash("no-such-hash", data) is None

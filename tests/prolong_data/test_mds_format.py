"""The native MDS writer writes the very bytes of `streaming.MDSWriter`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prolong_data.contract import PRETRAIN_COLUMNS, SFT_COLUMNS
from prolong_data.mds_format import NativeMDSWriter


def rows(n, seq_len, with_mask, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cut = int(rng.integers(1, seq_len))
        row = {
            "input_ids": rng.integers(0, 128256, seq_len).astype(np.uint32),
            "indices": np.asarray([[0, cut], [cut, seq_len]], np.uint32),
            "domain": f"dom-é-{i % 3}",
            "length": seq_len,
        }
        if with_mask:
            row["mask"] = rng.integers(0, 2, seq_len).astype(np.uint8)
        out.append(row)
    return out


@pytest.mark.parametrize("compression", [None, "zstd"])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("seq_len, hashes", [(7, ()), (300, ("sha1",)), (70000, ("md5", "sha1"))])
def test_native_writer_bytes_equal_streaming_mdswriter(tmp_path, compression, with_mask, seq_len, hashes):
    from streaming import MDSWriter

    columns = SFT_COLUMNS if with_mask else PRETRAIN_COLUMNS
    data = rows(12, seq_len, with_mask)
    size_limit = 3 * (seq_len * 5 + 200)  # several shards
    with MDSWriter(
        out=str(tmp_path / "theirs"),
        columns=columns,
        compression=compression,
        size_limit=size_limit,
        hashes=list(hashes),
    ) as w:
        for row in data:
            w.write(row)
    with NativeMDSWriter(
        tmp_path / "ours", columns, compression=compression, size_limit=size_limit, hashes=hashes
    ) as w:
        for row in data:
            w.write(row)
    theirs = sorted(p.name for p in (tmp_path / "theirs").iterdir())
    ours = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert ours == theirs and len(ours) > 2
    for name in ours:
        assert (tmp_path / "ours" / name).read_bytes() == (tmp_path / "theirs" / name).read_bytes(), name


def test_native_writer_output_reads_back_with_streaming_dataset(tmp_path):
    from streaming import StreamingDataset

    data = rows(5, 64, with_mask=True)
    with NativeMDSWriter(tmp_path / "d", SFT_COLUMNS, compression="zstd") as w:
        for row in data:
            w.write(row)
    ds = StreamingDataset(local=str(tmp_path / "d"), shuffle=False, batch_size=1)
    for i, row in enumerate(data):
        got = ds[i]
        for key in ("input_ids", "indices", "mask"):
            assert np.array_equal(got[key], row[key]) and got[key].dtype == row[key].dtype
        assert got["domain"] == row["domain"] and got["length"] == row["length"]


def test_native_writer_rejects_wrong_dtype_and_unknown_encoding(tmp_path):
    with pytest.raises(ValueError, match="not supported"):
        NativeMDSWriter(tmp_path, {"x": "jpeg"})
    w = NativeMDSWriter(tmp_path, PRETRAIN_COLUMNS)
    with pytest.raises(ValueError, match="expected uint32, got int64"):
        w.write({**rows(1, 8, False)[0], "input_ids": np.zeros(8, np.int64)})


def test_native_index_merge_equals_streaming_merge_index(tmp_path):
    from streaming.base.util import merge_index

    from prolong_data.mds_format import merge_indexes

    for name, compression in (("rank-00000", None), ("rank-00001", "zstd"), ("rank-00002", None)):
        for root in ("ours", "theirs"):
            with NativeMDSWriter(
                tmp_path / root / name, PRETRAIN_COLUMNS, compression=compression, size_limit=4000
            ) as w:
                for row in rows(4, 300, False, seed=len(name)):
                    w.write(row)
    parts = sorted((tmp_path / "theirs").glob("rank-*/index.json"))
    merge_index([str(p) for p in parts], str(tmp_path / "theirs"))
    merge_indexes(sorted((tmp_path / "ours").glob("rank-*/index.json")), tmp_path / "ours")
    assert (tmp_path / "ours" / "index.json").read_bytes() == (
        tmp_path / "theirs" / "index.json"
    ).read_bytes()


def test_native_reader_reads_what_streaming_reads(tmp_path):
    """`inspect` / `verify` read shards natively (no streaming, no torch): the same rows."""
    from streaming.base.format import reader_from_json

    from prolong_data.inspection import iter_samples

    data = rows(9, 300, with_mask=True)
    with NativeMDSWriter(tmp_path, SFT_COLUMNS, compression="zstd", size_limit=4000, hashes=("sha1",)) as w:
        for row in data:
            w.write(row)
    got = [row for _, _, row in iter_samples(tmp_path)]
    assert len(got) == len(data)
    for ours, want in zip(got, data):
        for key, value in want.items():
            np.testing.assert_array_equal(ours[key], value)
    index = json.loads((tmp_path / "index.json").read_text())
    (tmp_path / "raw").mkdir()
    from prolong_data.mds_format import raw_shard_bytes

    info = index["shards"][0]
    (tmp_path / "raw" / info["raw_data"]["basename"]).write_bytes(raw_shard_bytes(tmp_path, info))
    theirs = reader_from_json(str(tmp_path / "raw"), None, dict(info, zip_data=None, compression=None))
    for i in range(theirs.samples):
        for key, value in theirs.get_item(i).items():
            np.testing.assert_array_equal(got[i][key], value)

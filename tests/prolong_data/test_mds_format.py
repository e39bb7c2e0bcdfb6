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


@pytest.mark.parametrize("compression", [None, "zstd", "gz", "bz2"])
def test_native_reader_reads_every_plain_encoding_streaming_writes(tmp_path, compression):
    """Every plain encoding, with static and dynamic array shapes, over several shards and a merged
    index: the native reader returns what streaming's own reader returns."""
    from streaming import MDSWriter, StreamingDataset

    from prolong_data.inspection import iter_samples

    columns = {
        **SFT_COLUMNS,
        "grid": "ndarray:float32:2,3",
        "score": "float64",
        "small": "uint8",
        "blob": "bytes",
        "meta": "json",
    }
    data = rows(9, 300, with_mask=True)
    for i, row in enumerate(data):
        row.update(
            grid=np.full((2, 3), i, np.float32), score=i / 7, small=i, blob=bytes([i]) * i, meta={"i": i}
        )
    for part in ("a", "b"):
        with MDSWriter(
            out=str(tmp_path / part), columns=columns, compression=compression, size_limit=4000
        ) as w:
            for row in data:
                w.write(row)
    from streaming.base.util import merge_index

    merge_index([str(tmp_path / p / "index.json") for p in ("a", "b")], str(tmp_path))
    got = list(iter_samples(tmp_path))
    ds = StreamingDataset(local=str(tmp_path), shuffle=False, batch_size=1)
    assert len(got) == len(ds) == 18 and len({shard for shard, _, _ in got}) > 4
    for (_, _, ours), i in zip(got, range(len(ds))):
        theirs = ds[i]
        assert ours.keys() == theirs.keys()
        for key, value in theirs.items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(ours[key], value) and ours[key].dtype == value.dtype, key
                assert ours[key].shape == value.shape, key
            else:
                assert ours[key] == value and type(ours[key]) is type(value), key


def test_zstd_shards_compress_as_streaming_does_above_the_multithread_threshold():
    """libzstd's one-threaded and multi-threaded modes give different frames above ~10 MB;
    streaming's `zstd` package uses the multi-threaded one. 24 MB of tokens: same bytes."""
    import zstd

    from prolong_data.mds_format import compress, decompress

    data = np.random.default_rng(5).integers(0, 1000, 24 * 2**20 // 4, dtype=np.uint32).tobytes()
    ours = compress("zstd", data, 3)
    assert ours == zstd.compress(data, 3)
    assert decompress("zstd", ours) == data


def test_native_reader_names_the_damaged_file(tmp_path):
    from prolong_data.inspection import iter_samples
    from prolong_data.mds_format import MDSFormatError

    with NativeMDSWriter(tmp_path, PRETRAIN_COLUMNS) as w:
        for row in rows(3, 50, False):
            w.write(row)
    shard = tmp_path / "shard.00000.mds"
    assert len(list(iter_samples(tmp_path))) == 3
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(MDSFormatError, match="shard.00000.mds.*truncated"):
        list(iter_samples(tmp_path))
    shard.unlink()
    with pytest.raises(FileNotFoundError, match="shard.00000.mds"):
        list(iter_samples(tmp_path))

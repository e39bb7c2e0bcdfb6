"""A small writer and reader of the MDS format (mosaicml-streaming, index version 2).

Why not `streaming` itself: importing it imports torch, torchvision and transformers (5-7 s per
worker process, and a training stack that a data-only install does not have). The writer covers
exactly the encodings of our shard contract (`ndarray:<dtype>` with a dynamic shape, `str`,
`int`) and produces the same bytes as `streaming.MDSWriter` for the same rows and settings; the
reader decodes what streaming's MDS reader decodes for the plain encodings (arrays, scalars,
strings, bytes, JSON), so `verify`, `inspect`, the `tokenized` source and other readers of built
shards need no torch. `tests/prolong_data/test_mds_format.py` checks both against streaming.

Shard file layout (what `streaming` reads)::

    [num_samples: uint32] [offsets: (num_samples + 1) x uint32] [config json] [samples]
    sample = [sizes of variable-size columns: uint32 each] [column bytes, columns sorted by name]
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prolong_data.atomic_write import write_json_atomic
from prolong_data.layout import INDEX, index_file

VALUE_DTYPES = {
    "uint8": 8, "int8": 9, "uint16": 16, "int16": 17, "float16": 18, "uint32": 32, "int32": 33,
    "float32": 34, "uint64": 64, "int64": 65, "float64": 66,
}  # fmt: skip
SHAPE_DTYPES = ("uint8", "uint16", "uint32", "uint64")
FIXED_SIZES = {"int": 8}
COMPRESSIONS = {None: None, "zstd": ("zstd", 3)}
"""Shard compressions: name -> (file suffix, zstd level), as streaming names and levels them."""
DEFAULT_SIZE_LIMIT = 1 << 27
"""Bytes per shard file before a new one starts (128 MiB)."""


def compress(algorithm: str, data: bytes, level: int) -> bytes:
    """`data` compressed as streaming's MDSWriter compresses a shard (same bytes).

    streaming compresses with the `zstd` package, which runs libzstd in its multi-threaded mode;
    that mode's output does not depend on the number of workers but differs from the one-threaded
    mode above a few MB, so `zstandard` is asked for one worker thread (tested against `zstd`).
    """
    if algorithm != "zstd":
        raise ValueError(f"the native writer compresses with zstd only, not {algorithm!r}")
    import zstandard

    return zstandard.ZstdCompressor(level=level, threads=1).compress(data)


def encode_ndarray(encoding: str, value: np.ndarray) -> bytes:
    """`ndarray:<dtype>` with a dynamic shape: [ndim << 2 | shape dtype] [shape] [values]."""
    dtype = encoding.split(":")[1]
    if value.dtype.name != dtype:
        raise ValueError(f"wrong dtype: expected {dtype}, got {value.dtype.name}")
    if value.size == 0:
        raise ValueError("cannot encode an empty array in MDS")
    shape = np.asarray(value.shape, np.int64)
    largest = int(shape.max())
    shape_code = next(i for i, bits in enumerate((8, 16, 32, 64)) if largest < (1 << bits))
    head = bytes([(len(shape) << 2) | shape_code]) + shape.astype(SHAPE_DTYPES[shape_code]).tobytes()
    return head + np.ascontiguousarray(value).tobytes()


def encode_column(encoding: str, value) -> bytes:
    if encoding.startswith("ndarray:"):
        return encode_ndarray(encoding, value)
    if encoding == "str":
        if not isinstance(value, str):
            raise ValueError(f"str column got {type(value).__name__}")
        return value.encode("utf-8")
    if encoding == "int":
        return np.int64(value).tobytes()
    raise ValueError(f"encoding {encoding!r} is not supported by the native writer")


class NativeMDSWriter:
    """Writes samples into `shard.NNNNN.mds[.zstd]` files and an `index.json`, like MDSWriter.

    Use as a context manager; `write(row)` per sample. `columns` maps name -> encoding.
    """

    format = "mds"

    def __init__(
        self,
        out: str | Path,
        columns: dict[str, str],
        compression: str | None = None,
        size_limit: int = DEFAULT_SIZE_LIMIT,
        hashes: tuple[str, ...] | list[str] = (),
    ):
        if list(hashes) != sorted(hashes):
            raise ValueError(f"hashes must be sorted (as streaming requires), got {list(hashes)}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, got {compression!r}")
        for encoding in columns.values():
            if not (
                encoding.startswith("ndarray:") and encoding.split(":")[1] in VALUE_DTYPES
            ) and encoding not in ("str", "int"):
                raise ValueError(f"encoding {encoding!r} is not supported by the native writer")
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.names = sorted(columns)
        self.encodings = [columns[n] for n in self.names]
        self.sizes = [FIXED_SIZES.get(e) for e in self.encodings]
        self.compression, self.size_limit, self.hashes = compression, size_limit, list(hashes)
        self.config = {
            "version": 2,
            "format": self.format,
            "compression": compression,
            "hashes": self.hashes,
            "size_limit": size_limit,
            "column_names": self.names,
            "column_encodings": self.encodings,
            "column_sizes": self.sizes,
        }
        self.config_bytes = json.dumps(self.config, sort_keys=True).encode("utf-8")
        self.shards: list[dict] = []
        self._samples: list[bytes] = []
        self._shard_size = 8 + len(self.config_bytes)

    def encode_sample(self, row: dict) -> bytes:
        sizes, data = [], []
        for name, encoding, size in zip(self.names, self.encodings, self.sizes):
            datum = encode_column(encoding, row[name])
            if size is None:
                sizes.append(len(datum))
            data.append(datum)
        return np.asarray(sizes, np.uint32).tobytes() + b"".join(data)

    def write(self, row: dict) -> None:
        sample = self.encode_sample(row)
        grown = len(sample) + 4
        if self.size_limit and self.size_limit < self._shard_size + grown:
            self._flush()
        self._samples.append(sample)
        self._shard_size += grown

    def _flush(self) -> None:
        count = np.uint32(len(self._samples))
        offsets = np.cumsum([0] + [len(s) for s in self._samples]).astype(np.uint32)
        offsets += 4 + offsets.nbytes + len(self.config_bytes)
        raw = count.tobytes() + offsets.tobytes() + self.config_bytes + b"".join(self._samples)
        raw_name = f"shard.{len(self.shards):05d}.mds"
        raw_info = {"basename": raw_name, "bytes": len(raw), "hashes": self._hash(raw)}
        zip_info = None
        if self.compression:
            algo, level = COMPRESSIONS[self.compression]
            data = compress(algo, raw, level)
            zip_info = {"basename": f"{raw_name}.{algo}", "bytes": len(data), "hashes": self._hash(data)}
            (self.out / zip_info["basename"]).write_bytes(data)
        else:
            (self.out / raw_name).write_bytes(raw)
        self.shards.append({"samples": int(count), "raw_data": raw_info, "zip_data": zip_info, **self.config})
        self._samples = []
        self._shard_size = 8 + len(self.config_bytes)

    def _hash(self, data: bytes) -> dict[str, str]:
        return {algo: hashlib.new(algo, data).hexdigest() for algo in self.hashes}

    def finish(self) -> None:
        if self._samples:
            self._flush()
        write_json_atomic(self.out / INDEX, {"version": 2, "shards": self.shards}, sort_keys=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:  # an index only for shards that are whole
            self.finish()


def merge_indexes(index_files: list[Path], out_folder: Path) -> Path:
    """Write `out_folder/index.json` listing the shards of each `<sub>/index.json`, as
    `streaming.base.util.merge_index` does (same bytes): shard basenames get `<sub>/` in front."""
    shards = []
    for part in index_files:
        sub = Path(part).parent.name
        for shard in json.loads(Path(part).read_text())["shards"]:
            for key in ("raw_data", "zip_data", "raw_meta", "zip_meta"):
                if shard.get(key):
                    shard[key]["basename"] = f"{sub}/{shard[key]['basename']}"
            shards.append(shard)
    path = Path(out_folder) / INDEX
    write_json_atomic(path, {"version": 2, "shards": shards})  # a reader never sees half an index
    return path


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


class MDSFormatError(ValueError):
    """An MDS folder or shard this reader cannot read; the message names the file."""


def read_index(folder: str | Path) -> list[dict]:
    """The shard entries of `folder/index.json` (a merged index lists rank sub-folders' shards)."""
    path = index_file(folder)
    try:
        index = json.loads(path.read_text())
        shards = index["shards"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise MDSFormatError(f"{path} is not a valid MDS index ({type(err).__name__}: {err})") from None
    if index.get("version") != 2:
        raise MDSFormatError(f"{path}: index version {index.get('version')!r}, this reader reads version 2")
    return shards


def raw_shard_bytes(folder: str | Path, info: dict) -> bytes:
    """The uncompressed bytes of one shard: its raw file, else its `.zstd` file decompressed in memory."""
    folder = Path(folder)
    raw = folder / info["raw_data"]["basename"]
    if raw.is_file():
        return raw.read_bytes()
    zipped = info.get("zip_data")
    if not zipped:
        raise FileNotFoundError(f"shard {raw} is missing")
    path = folder / zipped["basename"]
    return decompress(info.get("compression"), path.read_bytes(), str(path))


def decompress(compression: str | None, data: bytes, name: str = "shard") -> bytes:
    """The raw shard inside the bytes of a compressed shard file: zstd (as the writer writes), or
    gz and bz2 (streaming's other standard-library compressions)."""
    algorithm = str(compression or "").split(":")[0]
    if algorithm == "gz":
        import gzip

        opener, errors = gzip.decompress, (OSError, EOFError)
    elif algorithm == "bz2":
        import bz2

        opener, errors = bz2.decompress, (OSError, EOFError)
    elif algorithm == "zstd":
        import zstandard

        def opener(data: bytes) -> bytes:
            with zstandard.ZstdDecompressor().stream_reader(data) as reader:
                return reader.read()

        errors = (zstandard.ZstdError,)
    else:
        raise MDSFormatError(f"{name}: compression {compression!r} is not supported (zstd, gz, bz2 are)")
    try:
        return opener(data)
    except errors as err:
        raise MDSFormatError(f"{name} does not decompress ({err})") from None


SCALAR_DTYPES = {name: np.dtype(name) for name in VALUE_DTYPES}
"""Scalar column encodings (`uint32`, `float32`, ...): one fixed-size value."""


def decode_column(encoding: str, data: bytes):
    """One column value from its bytes, as streaming's reader returns it: `ndarray:<dtype>[:<shape>]`,
    a scalar dtype (`uint32`, `float64`, ...), `str`, `bytes`, `int` or `json`."""
    if encoding.startswith("ndarray:"):
        parts = encoding.split(":")
        if parts[1] not in VALUE_DTYPES:
            raise MDSFormatError(f"column encoding {encoding!r} needs a fixed dtype for the native reader")
        dtype = np.dtype(parts[1])
        if len(parts) > 2:  # a static shape: the values only
            return np.frombuffer(data, dtype).reshape(tuple(int(d) for d in parts[2].split(",")))
        ndim, shape_dtype = data[0] >> 2, np.dtype(SHAPE_DTYPES[data[0] & 3])
        end = 1 + ndim * shape_dtype.itemsize
        shape = tuple(int(d) for d in np.frombuffer(data[1:end], shape_dtype))
        return np.frombuffer(data[end:], dtype).reshape(shape)
    if encoding == "str":
        return data.decode("utf-8")
    if encoding == "bytes":
        return data
    if encoding == "int":
        return int(np.frombuffer(data, np.int64)[0])
    if encoding == "json":
        return json.loads(data.decode("utf-8"))
    if encoding in SCALAR_DTYPES:
        return np.frombuffer(data, SCALAR_DTYPES[encoding])[0]
    raise MDSFormatError(f"column encoding {encoding!r} is not supported by the native reader")


def iter_shard(data: bytes, info: dict, name: str = "shard") -> Iterator[dict]:
    """Every sample (a dict of columns) of one raw shard, in order; `name` is used in errors."""
    count = int(np.frombuffer(data[:4], np.uint32)[0]) if len(data) >= 4 else -1
    if count < 0 or len(data) < 4 * (count + 2):
        raise MDSFormatError(f"{name} is truncated ({len(data)} bytes: no complete sample table)")
    offsets = np.frombuffer(data[4 : 4 * (count + 2)], np.uint32).astype(np.int64)
    if offsets[-1] != len(data):
        raise MDSFormatError(
            f"{name} is truncated: its table ends at {offsets[-1]}, the file has {len(data)} bytes"
        )
    names, encodings, sizes = info["column_names"], info["column_encodings"], info["column_sizes"]
    for i in range(count):
        try:
            yield _decode_sample(data[offsets[i] : offsets[i + 1]], names, encodings, sizes)
        except (ValueError, IndexError) as err:
            if isinstance(err, MDSFormatError):
                raise
            raise MDSFormatError(f"{name} sample {i} does not decode ({err})") from None


def _decode_sample(sample: bytes, names, encodings, sizes) -> dict:
    lengths, pos = [], 0
    for size in sizes:
        if size is None:  # a variable-size column: its size leads the sample
            size = int(np.frombuffer(sample[pos : pos + 4], np.uint32)[0])
            pos += 4
        lengths.append(size)
    row = {}
    for column, encoding, length in zip(names, encodings, lengths):
        row[column] = decode_column(encoding, sample[pos : pos + length])
        pos += length
    if pos != len(sample):
        raise ValueError(f"its columns take {pos} bytes, the sample has {len(sample)}")
    return row


def shard_samples(folder: str | Path, info: dict, start: int = 0, stop: int | None = None) -> Iterator[dict]:
    """Samples `[start, stop)` of one shard of an MDS folder."""
    data = raw_shard_bytes(folder, info)
    yield from itertools.islice(
        iter_shard(data, info, str(Path(folder) / info["raw_data"]["basename"])), start, stop
    )


def shard_ranges(folder: str | Path, start: int = 0, stop: int | None = None) -> list[tuple[dict, int, int]]:
    """(shard entry, first, end) of the shards holding samples `[start, stop)` of an MDS folder,
    in index order, with sample numbers local to each shard."""
    ranges, first = [], 0
    for info in read_index(folder):
        count = int(info["samples"])
        lo, hi = max(start - first, 0), count if stop is None else min(stop - first, count)
        if lo < hi:
            ranges.append((info, lo, hi))
        first += count
    return ranges


def iter_samples(folder: str | Path, start: int = 0, stop: int | None = None):
    """Samples `[start, stop)` of an MDS folder in index order (shards outside are not read)."""
    for info, lo, hi in shard_ranges(folder, start, stop):
        yield from shard_samples(folder, info, lo, hi)

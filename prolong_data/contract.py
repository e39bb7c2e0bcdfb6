"""The shard contract: what every sample of a domain folder holds, in one place.

The writer (`prolong_data.mds`), `verify` / `inspect` and the trainer's data loader all take
their columns, dtypes and span rules from here (docs/shard-format.md describes them):

| column | MDS encoding | meaning |
|---|---|---|
| `input_ids` | `ndarray:uint32` | exactly `seq_len` tokens |
| `indices` | `ndarray:uint32`, shape (n, 2) | document spans `[start, end)`, contiguous, covering `[0, seq_len)` |
| `domain` | `str` | the domain folder's name |
| `length` | `int` | `seq_len` |
| `mask` | `ndarray:uint8` (SFT only) | 1 on trained tokens, else 0 |

Every shard file is listed in its `index.json` with its size and `HASHES` of its bytes, in
mosaicml-streaming's index format (`raw_data` / `zip_data` -> `hashes`), so `verify` and
`StreamingDataset(validate_hash="sha1")` can check it.
"""

from __future__ import annotations

import hashlib

import numpy as np

TOKEN_DTYPE = np.uint32
"""dtype of `input_ids` and `indices`."""
MASK_DTYPE = np.uint8
PRETRAIN_COLUMNS = {
    "input_ids": "ndarray:uint32",
    "indices": "ndarray:uint32",
    "domain": "str",
    "length": "int",
}
MASK_COLUMN = "mask"
SFT_COLUMNS = {**PRETRAIN_COLUMNS, MASK_COLUMN: "ndarray:uint8"}
HASHES = ("sha1",)
"""Hash algorithms recorded for every shard file (names as streaming's `validate_hash` takes them)."""


class ShardError(ValueError):
    """Something that breaks the shard contract; the message says what."""


def columns(with_mask: bool) -> dict[str, str]:
    """Column name -> MDS encoding of a domain (with the SFT `mask` column or without)."""
    return dict(SFT_COLUMNS if with_mask else PRETRAIN_COLUMNS)


def check_columns(encodings: dict[str, str]) -> None:
    """Raise `ShardError` unless `encodings` (name -> MDS encoding) holds the contract's columns."""
    for name, encoding in PRETRAIN_COLUMNS.items():
        if encodings.get(name) != encoding:
            raise ShardError(f"column {name!r} is {encodings.get(name)!r}, the contract says {encoding!r}")
    if MASK_COLUMN in encodings and encodings[MASK_COLUMN] != SFT_COLUMNS[MASK_COLUMN]:
        raise ShardError(
            f"column 'mask' is {encodings[MASK_COLUMN]!r}, the contract says {SFT_COLUMNS[MASK_COLUMN]!r}"
        )


def check_spans(indices: np.ndarray, seq_len: int) -> None:
    """Raise `ShardError` (a ValueError) unless `indices` (n, 2) are non-empty spans that tile
    `[0, seq_len)` in order: the first token of each is a document start, attention stays inside."""
    if indices.ndim != 2 or indices.shape[1] != 2 or len(indices) == 0:
        raise ShardError(
            f"indices must have shape (n, 2) with n >= 1, got {indices.shape}; rebuild the shards"
        )
    starts, ends = indices[:, 0].astype(np.int64), indices[:, 1].astype(np.int64)
    if starts[0] != 0 or ends[-1] != seq_len:
        raise ShardError(
            f"spans cover [{starts[0]}, {ends[-1]}), must cover [0, {seq_len}); rebuild the shards"
        )
    if np.any(ends <= starts):
        bad = int(np.argmax(ends <= starts))
        raise ShardError(f"span {bad} {indices[bad].tolist()} is empty or reversed; rebuild the shards")
    if np.any(starts[1:] != ends[:-1]):
        gap = int(np.argmax(starts[1:] != ends[:-1]))
        raise ShardError(
            f"spans {gap} and {gap + 1} are not contiguous: {indices[gap].tolist()} "
            f"{indices[gap + 1].tolist()}; rebuild the shards"
        )


def check_sample(
    row: dict, seq_len: int | None = None, domain: str | None = None, vocab_size: int | None = None
) -> int:
    """Raise `ShardError` if `row` breaks the contract (for a domain folder named `domain` with
    sequences of `seq_len` made by a tokenizer of `vocab_size` ids, when given); return its
    sequence length."""
    ids, spans = row["input_ids"], row["indices"]
    if ids.dtype != TOKEN_DTYPE or spans.dtype != TOKEN_DTYPE:
        raise ShardError(f"dtype is input_ids {ids.dtype} / indices {spans.dtype}, both must be uint32")
    n = len(ids)
    if int(row["length"]) != n:
        raise ShardError(f"length column says {row['length']} but input_ids has {n} tokens")
    if seq_len is not None and n != seq_len:
        raise ShardError(f"sequence has {n} tokens, expected seq_len {seq_len}")
    if domain is not None and row["domain"] != domain:
        raise ShardError(f"domain column says {row['domain']!r}, the sample lies in folder {domain!r}")
    check_spans(spans, n)
    if vocab_size is not None:
        check_token_ids(ids, vocab_size)
    mask = row.get(MASK_COLUMN)
    if mask is not None:
        if mask.dtype != MASK_DTYPE or len(mask) != n:
            raise ShardError(f"mask must be uint8 with {n} entries, got {mask.dtype} x {len(mask)}")
        if np.any(mask > 1):
            raise ShardError("mask holds values other than 0 and 1")
    return n


def check_token_ids(ids: np.ndarray, vocab_size: int) -> None:
    """Raise `ShardError` unless every id of `ids` is an id of a tokenizer of `vocab_size` ids."""
    outside = np.flatnonzero(ids >= vocab_size)
    if len(outside):
        at = int(outside[0])
        raise ShardError(
            f"token id {int(ids[at])} at position {at} is not an id of the tokenizer ({vocab_size:,} ids, "
            f"{len(outside):,} such tokens in the sequence): the tokens come from another tokenizer"
        )


def file_hash(algorithm: str, data: bytes) -> str | None:
    """Hex digest of `data` as streaming computes it (hashlib names; `xxh*` when the xxhash
    package is installed), or None for an algorithm this install cannot compute."""
    if algorithm in hashlib.algorithms_available and not algorithm.startswith("shake_"):
        return hashlib.new(algorithm, data).hexdigest()
    if algorithm.startswith("xxh"):
        try:
            import xxhash
        except ImportError:
            return None
        func = getattr(xxhash, algorithm, None)
        return func(data).hexdigest() if func else None
    return None

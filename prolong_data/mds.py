"""MDS shard writing (docs/shard-format.md): one folder per domain, one sub-folder per rank.

A domain folder holds a merged index over every rank, its manifest, one rank folder per build
task and the packers' reports; `prolong_data.layout` draws it and names every file.

`streaming` imports torch, so it is only imported inside the functions that need it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from datatrove.pipeline.base import PipelineStep

from prolong_data.atomic_write import write_json_atomic
from prolong_data.contract import HASHES, TOKEN_DTYPE, columns
from prolong_data.layout import MANIFEST, PACKING_GLOB, RANK_GLOB, index_file, rank_folder
from prolong_data.mds_format import COMPRESSIONS, DEFAULT_SIZE_LIMIT, NativeMDSWriter, merge_indexes
from prolong_data.packing.sequence import PackedSequence


def sample_of(seq: PackedSequence, domain: str) -> dict:
    """The MDS row of one packed sequence."""
    row = {
        "input_ids": np.ascontiguousarray(seq.input_ids, dtype=TOKEN_DTYPE),
        "indices": np.ascontiguousarray(seq.indices, dtype=TOKEN_DTYPE),
        "domain": domain,
        "length": seq.seq_len,
    }
    if seq.mask is not None:
        row["mask"] = np.ascontiguousarray(seq.mask, dtype=np.uint8)
    return row


class MDSShardWriter(PipelineStep):
    """Writes `PackedSequence`s of one domain as MDS shards, into `rank-NNNNN/` per rank.

    A rank's folder is emptied before it is written, so a rerun of a killed rank starts clean
    and gives the same bytes. Sequences of the wrong length are a bug upstream and raise.
    The native writer gives the same bytes as `streaming.MDSWriter` without importing torch in
    every worker (see `mds_format.py`).
    """

    name = "MDS shard writer"
    type = "✍️ - WRITER"

    def __init__(
        self,
        output_folder: str,
        domain: str,
        seq_len: int,
        with_mask: bool = False,
        compression: str | None = None,
        size_limit: int = DEFAULT_SIZE_LIMIT,
    ):
        super().__init__()
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, got {compression!r}")
        self.output_folder = str(output_folder)
        self.domain, self.seq_len = domain, seq_len
        self.columns = columns(with_mask)
        self.compression, self.size_limit = compression, size_limit

    def run(self, data: Iterator[PackedSequence], rank: int = 0, world_size: int = 1):
        out = rank_folder(self.output_folder, rank)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with NativeMDSWriter(
            out, self.columns, compression=self.compression, size_limit=self.size_limit, hashes=HASHES
        ) as writer:
            for seq in data:
                if seq.seq_len != self.seq_len:
                    raise AssertionError(f"packer produced {seq.seq_len} tokens, expected {self.seq_len}")
                if ("mask" in self.columns) != (seq.mask is not None):
                    raise AssertionError("mask column and packed sequence disagree")
                writer.write(sample_of(seq, self.domain))
                self.stat_update("sequences")
                self.stat_update("tokens", value=self.seq_len)
        return iter(())


def merge_domain_index(domain_folder: str | Path) -> Path:
    """Merge the per-rank indexes of a domain folder into its top-level `index.json`.

    Same bytes as `streaming.base.util.merge_index` (tested) without importing torch; a rerun
    replaces the merged index.
    """
    folder = Path(domain_folder)
    parts = sorted(index_file(p) for p in folder.glob(RANK_GLOB) if index_file(p).is_file())
    if not parts:
        raise FileNotFoundError(f"{folder} has no {RANK_GLOB}/index.json: did the build of this domain run?")
    return merge_indexes(parts, folder)


def read_packing_reports(domain_folder: str | Path) -> dict:
    """Sum of the `packing.NNNNN.json` reports of all ranks of a domain."""
    total: dict = {}
    for path in sorted(Path(domain_folder).glob(PACKING_GLOB)):
        for key, value in json.loads(path.read_text()).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    if total.get("tokens_out"):
        total["padded_share"] = total.get("padded_tokens", 0) / total["tokens_out"]
    return total


def write_manifest(domain_folder: str | Path, manifest: dict) -> Path:
    """Write `manifest.json` beside the shards (sorted keys, so reruns give the same bytes)."""
    path = Path(domain_folder) / MANIFEST
    write_json_atomic(path, manifest, indent=2, sort_keys=True)
    return path


def finalize_domain(domain_folder: str | Path, manifest: dict) -> dict:
    """Merge the index and write the manifest (with the packing counts) of a built domain."""
    merge_domain_index(domain_folder)
    full = {**manifest, "packing": read_packing_reports(domain_folder)}
    write_manifest(domain_folder, full)
    return full


def read_manifest(domain_folder: str | Path) -> dict:
    path = Path(domain_folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}

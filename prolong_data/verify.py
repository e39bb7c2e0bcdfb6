"""`prolong-data verify`: is a shard folder whole, and does every sample keep the contract?

A domain folder (it has `index.json`) is checked for:

* `index.json` parses; every shard is an MDS shard whose columns follow the contract;
* each shard file exists with the size and the hashes (`sha1`) its index records, compressed and
  decompressed; its header holds the index's sample count and its offsets end at its end;
* every sample keeps the contract (`prolong_data.contract.check_sample`), has the domain's
  `seq_len`, its `domain` column names the folder, and its tokens are ids of the tokenizer its
  manifest records (below its `vocab_size`);
* built by `prolong-data shards` (it has `rank-NNNNN/` folders): every rank has its `index.json`,
  the merged index lists exactly the ranks' shards, the manifest's task count of ranks exists,
  and the manifest's sequence count equals the index's.

A mixture root (it has `mixture.json` or a build `manifest.json`) is checked for: `mixture.json`
is a valid mixture (proportions sum to 1); every stream's folder exists and verifies; every
domain of the build manifest exists with the sequence count it records; every other domain
folder under the root verifies too; a folder with rank folders but no `index.json` is reported.

`verify` collects every problem (naming the file) instead of stopping at the first; a rerun of
the build command repairs what it finds (`pipelines.repair`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prolong_data.contract import ShardError, check_columns, check_sample, file_hash
from prolong_data.layout import (
    DECONTAMINATION_REPORT,
    MANIFEST,
    MIXTURE,
    NEAR_DEDUP_REPORT,
    RANK_GLOB,
    BuildLayout,
    index_file,
    rank_folder,
)
from prolong_data.mds_format import MDSFormatError, decompress, iter_shard, read_index
from prolong_data.mixture import read_mixture


class NotAShardFolder(FileNotFoundError):
    """The path is no shard folder at all (a user error, not damage)."""


class DamageError(ShardError):
    """`verify` found problems; `report.problems` lists them, each naming its file."""

    def __init__(self, report: VerifyReport):
        self.report = report
        shown = report.problems[:20]
        more = len(report.problems) - len(shown)
        super().__init__("\n".join(shown) + (f"\n... and {more} more" if more else ""))


@dataclass
class VerifyReport:
    """What `verify` checked, and what it found wrong."""

    folders: int = 0
    samples: int = 0
    tokens: int = 0
    files: int = 0
    """Shard files checked."""
    hashed: int = 0
    """Shard files whose recorded hashes were checked."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(root: str | Path) -> VerifyReport:
    """Check a domain folder or a mixture root; raise `DamageError` listing every problem,
    `NotAShardFolder` when `root` holds no shards at all."""
    report = check(root)
    if report.problems:
        raise DamageError(report)
    return report


def check(root: str | Path) -> VerifyReport:
    """Like `verify`, but returns the report with its problems instead of raising."""
    root = Path(root)
    if not root.exists():
        raise NotAShardFolder(f"{root} does not exist")
    if not root.is_dir():
        raise NotAShardFolder(f"{root} is a file; give a domain folder or a mixture root")
    report = VerifyReport()
    if index_file(root).is_file():
        check_domain(root, report)
        return report
    check_mixture_root(root, report)
    return report


# --------------------------------------------------------------------------------------------
# A mixture root
# --------------------------------------------------------------------------------------------


def _read_json(path: Path, report: VerifyReport) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        report.problems.append(f"{path}: not valid JSON, truncated? ({err})")
        return None
    if not isinstance(data, dict):
        report.problems.append(f"{path}: holds {type(data).__name__}, not an object")
        return None
    return data


def check_mixture_root(root: Path, report: VerifyReport) -> None:
    domains = {p.name: p for p in sorted(root.iterdir()) if index_file(p).is_file()}
    unindexed = [
        p for p in sorted(root.iterdir()) if p.is_dir() and p.name not in domains and any(p.glob(RANK_GLOB))
    ]
    has_mixture, has_manifest = (root / MIXTURE).is_file(), (root / MANIFEST).is_file()
    if not (domains or unindexed or has_mixture or has_manifest):
        raise NotAShardFolder(
            f"{root} has no index.json, no mixture.json and no domain folders: is it a shard folder?"
        )
    for folder in unindexed:
        report.problems.append(f"{folder}/index.json is missing (the folder has rank folders)")
    wanted: dict[str, Path] = {}
    if has_mixture:
        try:
            mixture, base = read_mixture(root / MIXTURE)
        except (ValueError, KeyError, TypeError) as err:
            named = str(root / MIXTURE) in str(err)  # a shape problem names the file already
            report.problems.append(
                str(err) if named else f"{root / MIXTURE}: not a valid mixture ({type(err).__name__}: {err})"
            )
        else:
            for domain, folder in mixture.resolved_paths(base).items():
                wanted[domain] = folder
                if not index_file(folder).is_file() and folder not in {u.resolve() for u in unindexed}:
                    report.problems.append(
                        f"{root / MIXTURE}: stream {domain!r} names {folder}, which has no index.json"
                    )
    sequences = {}
    if has_manifest:
        manifest = _read_json(root / MANIFEST, report) or {}
        check_removal_reports(root, manifest, report)
        for domain, row in (manifest.get("domains") or {}).items():
            sequences[domain] = int(row.get("sequences", 0))
            folder = root / domain
            if sequences[domain] and not index_file(folder).is_file() and folder not in unindexed:
                report.problems.append(
                    f"{root / MANIFEST}: domain {domain!r} has no folder with index.json at {folder}"
                )
    for name, folder in sorted({**domains, **{f.name: f for f in wanted.values()}}.items()):
        if not index_file(folder).is_file():
            continue
        samples = check_domain(folder, report, in_build=has_manifest)
        if name in sequences and samples is not None and samples != sequences[name]:
            report.problems.append(
                f"{root / MANIFEST}: domain {name!r} has {sequences[name]:,} sequences, its index lists {samples:,}"
            )


REMOVAL_REPORTS = {
    "near_dedup": (NEAR_DEDUP_REPORT, "removed"),
    "decontamination": (DECONTAMINATION_REPORT, "touched"),
}
"""Manifest entry of a domain -> (its report file under `report/`, the count of lines it must have)."""


def check_removal_reports(root: Path, manifest: dict, report: VerifyReport) -> None:
    """`report/near_dedup.jsonl` and `report/decontamination.jsonl` hold, per domain, as many JSON
    lines as manifest.json counts."""
    for entry, (name, key) in REMOVAL_REPORTS.items():
        wanted = {d: row[entry][key] for d, row in (manifest.get("domains") or {}).items() if entry in row}
        if not wanted:
            continue
        path = BuildLayout(root).report / name
        if not path.is_file():
            report.problems.append(f"{path} is missing (manifest.json counts {entry} removals)")
            continue
        found: dict[str, int] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                found[json.loads(line)["domain"]] = found.get(json.loads(line)["domain"], 0) + 1
            except (json.JSONDecodeError, KeyError, TypeError):
                report.problems.append(f"{path}:{number}: not a JSON line with a domain")
                return
        for domain, count in wanted.items():
            if found.get(domain, 0) != count:
                report.problems.append(
                    f"{path}: {found.get(domain, 0):,} lines for domain {domain!r}, manifest.json counts {count:,}"
                )


# --------------------------------------------------------------------------------------------
# A domain folder
# --------------------------------------------------------------------------------------------


def check_domain(folder: Path, report: VerifyReport, in_build: bool = False) -> int | None:
    """Check one domain folder into `report`; returns the sample count of its index (None when
    the index does not read)."""
    try:
        shards = read_index(folder)
    except MDSFormatError as err:
        report.problems.append(str(err))
        return None
    report.folders += 1
    manifest_path = folder / MANIFEST
    manifest = _read_json(manifest_path, report) if manifest_path.is_file() else None
    if manifest is None and in_build and not manifest_path.is_file():
        report.problems.append(f"{manifest_path} is missing")
    manifest = manifest or {}
    samples = sum(int(info.get("samples", 0)) for info in shards)
    if any(folder.glob(RANK_GLOB)):
        check_ranks(folder, shards, manifest, report)
    recorded = (manifest.get("packing") or {}).get("sequences")
    if recorded is not None and int(recorded) != samples:
        report.problems.append(
            f"{manifest_path}: {int(recorded):,} sequences, {folder}/index.json lists {samples:,}"
        )
    seq_len = manifest.get("seq_len")
    vocab_size = recorded_vocab_size(manifest, manifest_path, report)
    for info in shards:
        raw = check_shard_files(folder, info, report)
        if raw is not None:
            check_samples(folder, info, raw, seq_len, report, vocab_size)
    return samples


def recorded_vocab_size(manifest: dict, path: Path, report: VerifyReport) -> int | None:
    """The vocabulary size of the tokenizer a domain's manifest records (None when it records
    none); a value that is no positive integer is a problem."""
    tokenizer = manifest.get("tokenizer")
    if not isinstance(tokenizer, dict) or tokenizer.get("vocab_size") is None:
        return None
    size = tokenizer["vocab_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        report.problems.append(f"{path}: tokenizer vocab_size {size!r} is not a positive integer")
        return None
    return size


def check_ranks(folder: Path, shards: list[dict], manifest: dict, report: VerifyReport) -> None:
    """The merged index lists exactly the shards of the rank indexes, every rank is there."""
    ranks = sorted(p for p in folder.glob(RANK_GLOB) if p.is_dir())
    expected: list[dict] = []
    for rank in ranks:
        if not index_file(rank).is_file():
            report.problems.append(f"{rank}/index.json is missing")
            continue
        try:
            rank_shards = read_index(rank)
        except MDSFormatError as err:
            report.problems.append(str(err))
            continue
        for info in rank_shards:
            for key in ("raw_data", "zip_data"):
                if info.get(key):
                    info[key]["basename"] = f"{rank.name}/{info[key]['basename']}"
            expected.append(info)
    if expected != shards:
        listed = sum(int(s.get("samples", 0)) for s in shards)
        in_ranks = sum(int(s.get("samples", 0)) for s in expected)
        report.problems.append(
            f"{folder}/index.json does not list the shards of its rank folders ({listed:,} samples listed, "
            f"{in_ranks:,} in the ranks)"
        )
    tasks = manifest.get("tasks")
    if isinstance(tasks, int):
        names = {p.name for p in ranks}
        expected_names = [rank_folder(folder, r).name for r in range(tasks)]
        missing = [name for name in expected_names if name not in names]
        if missing:
            report.problems.append(
                f"{folder}: rank folders {', '.join(missing)} are missing ({tasks} tasks built it)"
            )


def shard_file_problem(path: Path, info: dict, data: bytes | None = None) -> tuple[bytes | None, str | None]:
    """(the file's bytes, None) when `path` has the size and hashes `info` (`raw_data` or
    `zip_data` of an index) records; (None, what is wrong) otherwise."""
    if data is None:
        if not path.is_file():
            return None, f"{path} is missing"
        data = path.read_bytes()
    if len(data) != int(info.get("bytes", -1)):
        return (
            None,
            f"{path} has {len(data):,} bytes, its index records {int(info.get('bytes', -1)):,} (truncated?)",
        )
    for algorithm, expected in sorted((info.get("hashes") or {}).items()):
        got = file_hash(algorithm, data)
        if got is not None and got != expected:
            return None, f"{path} fails its {algorithm} check (its bytes changed since it was written)"
    return data, None


def check_shard_files(folder: Path, info: dict, report: VerifyReport) -> bytes | None:
    """The raw bytes of one shard after checking its files (size, hashes, header) into
    `report`; None when a check failed."""
    raw_info, zip_info = info.get("raw_data") or {}, info.get("zip_data")
    raw_path = folder / raw_info.get("basename", "?")
    try:
        check_columns(dict(zip(info.get("column_names", []), info.get("column_encodings", []))))
    except ShardError as err:
        report.problems.append(f"{raw_path}: {err}")
        return None
    report.files += 1
    report.hashed += bool(raw_info.get("hashes") or (zip_info or {}).get("hashes"))
    raw = None
    zip_path = folder / zip_info["basename"] if zip_info else None
    if zip_path is not None and (zip_path.is_file() or not raw_path.is_file()):
        zipped, problem = shard_file_problem(zip_path, zip_info)
        if problem:
            report.problems.append(problem)
            return None
        try:
            raw = decompress(str(info.get("compression") or "").split(":")[0], zipped)
        except Exception as err:  # each decompressor raises its own kind on damaged input
            report.problems.append(f"{zip_path} does not decompress ({type(err).__name__}: {err})")
            return None
        name = f"{zip_path} (decompressed)"
    else:
        name = str(raw_path)
    raw, problem = shard_file_problem(raw_path, raw_info, raw)
    if problem:
        report.problems.append(problem.replace(str(raw_path), name, 1))
        return None
    problem = header_problem(raw, info)
    if problem:
        report.problems.append(f"{name}: {problem}")
        return None
    return raw


def header_problem(raw: bytes, info: dict) -> str | None:
    """What is wrong with a raw shard's header against its index entry (None: nothing)."""
    if len(raw) < 4:
        return f"{len(raw)} bytes, too short for an MDS shard"
    count = int(np.frombuffer(raw[:4], np.uint32)[0])
    if count != int(info.get("samples", -1)):
        return f"holds {count:,} samples, its index says {int(info.get('samples', -1)):,}"
    if len(raw) < 4 * (count + 2):
        return f"truncated ({len(raw):,} bytes cannot hold {count:,} sample offsets)"
    offsets = np.frombuffer(raw[4 : 4 * (count + 2)], np.uint32).astype(np.int64)
    if offsets[-1] != len(raw) or np.any(np.diff(offsets) < 0):
        return f"sample offsets end at {offsets[-1]:,}, the shard has {len(raw):,} bytes"
    return None


def check_samples(
    folder: Path,
    info: dict,
    raw: bytes,
    seq_len: int | None,
    report: VerifyReport,
    vocab_size: int | None = None,
) -> None:
    """Every sample of one shard against the contract; the first bad one is reported."""
    name = f"{folder.name}/{info['raw_data']['basename']}"
    try:
        for i, row in enumerate(iter_shard(raw, info, name)):
            try:
                report.tokens += check_sample(row, seq_len, domain=folder.name, vocab_size=vocab_size)
            except ShardError as err:
                report.problems.append(f"{name} sample {i}: {err}")
                return
            report.samples += 1
    except MDSFormatError as err:
        report.problems.append(f"{folder}: {err}")


# --------------------------------------------------------------------------------------------
# One rank's output (what a rerun of the build checks before skipping a finished task)
# --------------------------------------------------------------------------------------------


def rank_problem(rank: Path) -> str | None:
    """What is wrong with the output of one build task (`rank-NNNNN/`: its index and every shard
    file it lists: size, hashes, sample count), or None when it is whole."""
    if not index_file(rank).is_file():
        return f"{rank}/index.json is missing"
    try:
        shards = read_index(rank)
    except MDSFormatError as err:
        return str(err)
    for info in shards:
        zip_info, raw_info = info.get("zip_data"), info["raw_data"]
        path, entry = (
            (rank / zip_info["basename"], zip_info) if zip_info else (rank / raw_info["basename"], raw_info)
        )
        data, problem = shard_file_problem(path, entry)
        if problem:
            return problem
        try:
            raw = decompress(str(info.get("compression")).split(":")[0], data) if zip_info else data
        except Exception as err:  # each decompressor raises its own kind on damaged input
            return f"{path} does not decompress ({type(err).__name__})"
        problem = header_problem(raw, info)
        if problem:
            return f"{path}: {problem}"
    return None

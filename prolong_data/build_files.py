"""What a build of ours wrote in an output folder: the only files `shards --fresh` may delete.

A folder is a build of ours when it holds `.build/options.json` (the first file a build writes)
or a build `manifest.json` (what finalize writes last). `--fresh` deletes there only the paths the
layout names (`prolong_data.layout`): the work folder `.build/`, the top files (mixture.json,
manifest.json, recipe.yaml), the report files, the removed-document files, and in each domain
folder of the recorded or the new recipe its index, manifest, packing reports and `rank-NNNNN`
folders. Anything else (a user's notes, a folder of their own) stays, and folders are removed
only when that leaves them empty. In a folder that is not a build of ours it deletes nothing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from prolong_data.atomic_write import temporary_path
from prolong_data.layout import (
    BAD_INPUT_REPORT,
    BUDGET_GLOB,
    DECONTAMINATION_REPORT,
    INDEX,
    LENGTHS_PLOT,
    LOCK,
    MANIFEST,
    NEAR_DEDUP_REPORT,
    OUTPUT_FILES,
    PACKING_GLOB,
    RANK_FOLDERS,
    REMOVED,
    REPORT_TEXT,
    SHARES_PLOT,
    BuildLayout,
)

REPORT_FILES = (
    REPORT_TEXT,
    BUDGET_GLOB,
    BAD_INPUT_REPORT,
    NEAR_DEDUP_REPORT,
    DECONTAMINATION_REPORT,
    INDEX,
    LENGTHS_PLOT,
    SHARES_PLOT,
    ".*.tmp",
)
"""What finalize writes in `report/` (a `--mixture-file NAME` writes `budget-NAME.json`)."""
DOMAIN_FILES = (INDEX, MANIFEST, PACKING_GLOB, ".*.json.tmp")
"""What a build writes in a domain folder beside its `rank-NNNNN` folders (`.NAME.tmp`: a file
being written, `prolong_data.atomic_write`)."""


class NotOurBuild(ValueError):
    """`--fresh` on a folder that no build of ours made."""


def _read_dict(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_domains(layout: BuildLayout) -> set[str] | None:
    """The domains the build in `layout.root` records, or None when no build of ours is there."""
    options, manifest = _read_dict(layout.options), _read_dict(layout.manifest)
    names: set[str] = set()
    if options is not None and isinstance(options.get("tasks"), dict):
        names |= set(options["tasks"])
    if manifest is not None and "recipe" in manifest and isinstance(manifest.get("domains"), dict):
        names |= set(manifest["domains"])
    if options is None and not names:
        return None
    return {n for n in names if isinstance(n, str) and n and "/" not in n and n not in (".", "..")}


def written_paths(layout: BuildLayout, domains: Iterable[str]) -> list[Path]:
    """The existing paths under `layout.root` that a build of `domains` writes."""
    root = layout.root
    found = [layout.work] if layout.work.is_dir() else []
    tops = [root / name for name in OUTPUT_FILES]
    found += [p for p in tops + [temporary_path(p) for p in tops] if p.is_file()]
    found += [p for pattern in REPORT_FILES for p in layout.report.glob(pattern) if p.is_file()]
    found += [p for p in (root / REMOVED).glob("*/*/*.jsonl.gz") if p.is_file()]
    for name in sorted(set(domains)):
        folder = layout.domain(name)
        found += [p for pattern in DOMAIN_FILES for p in folder.glob(pattern) if p.is_file()]
        found += [p for p in folder.glob(RANK_FOLDERS) if p.is_dir() and not p.is_symlink()]
    return found


def _remove_empty_parents(path: Path, root: Path) -> None:
    for parent in path.parents:
        if parent == root or not parent.is_relative_to(root):
            return
        try:
            parent.rmdir()
        except OSError:  # not empty: something of the user's is in it
            return


def is_empty_output(root: Path) -> bool:
    """`root` is missing or holds nothing but a build lock."""
    return not root.exists() or all(child.name == LOCK for child in root.iterdir())


def clear_build(root: Path, new_domains: Iterable[str]) -> list[Path]:
    """Delete the previous build in `root` (see the module docstring); returns what was deleted.
    Raises `NotOurBuild` (deleting nothing) when `root` holds files but no build of ours."""
    layout = BuildLayout(root)
    if is_empty_output(layout.root):
        return []
    recorded = recorded_domains(layout)
    if recorded is None:
        raise NotOurBuild(
            f"--fresh: {root} holds files but no build of prolong-data (no .build/options.json or build "
            "manifest.json), so nothing there is deleted; choose a new or empty --out"
        )
    paths = written_paths(layout, recorded | set(new_domains))
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        _remove_empty_parents(path, layout.root)
    return paths

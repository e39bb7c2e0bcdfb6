"""Tracked files stay inside the repository: no symlink to a local venv or folder gets committed
(a tracked `.venv` link once replaced a checkout's own virtualenv: git treats ignored files as
expendable)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tracked_symlinks() -> list[str]:
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-s"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [line.split("\t", 1)[1] for line in listing.splitlines() if line.startswith("120000 ")]


def test_no_tracked_symlink_points_outside_the_repository():
    for name in tracked_symlinks():
        target = (REPO / name).parent / os.readlink(REPO / name)
        assert REPO in target.resolve().parents, f"{name} -> {os.readlink(REPO / name)}"


def test_virtualenvs_are_not_tracked():
    assert not {".venv", ".venv-tf5"} & set(tracked_symlinks())
    listed = subprocess.run(
        ["git", "ls-files", ".venv", ".venv-tf5"], cwd=REPO, capture_output=True, text=True
    )
    assert listed.stdout == ""

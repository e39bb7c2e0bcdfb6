"""A full disk mid-build: exit 1 with one message, no torn file, and the same command resumes.

The build writes into a real small filesystem (a 300 KiB tmpfs, mounted by the test: it needs
root, and is skipped with the reason otherwise). The tiny recipe's shards alone need more than
that, so the build fails part-way. Then: exit status 1 (files were written: not a user error),
the last line names the folder and the space left, every JSON file there parses (no torn or
empty report, manifest or index), `verify` does not call the half-built folder OK, and after
the filesystem grows the same command ends with the bytes of a build that never ran out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import shards_command, tiny_recipe, tree_bytes

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_disk(tmp_path):
    """A 300 KiB tmpfs at tmp_path/disk (unmounted afterwards, whatever happens)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (run the tests as root to cover a full disk)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): {done.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_a_full_disk_fails_with_one_message_and_the_same_command_resumes(
    tmp_path, small_disk, tiny_corpus, tokenizer_json
):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json)))
    reference = tmp_path / "reference"
    assert run(*shards_command(recipe, reference, "--workers", "2")).returncode == 0
    out = small_disk / "out"
    full = run(*shards_command(recipe, out, "--workers", "2"))
    assert full.returncode == 1, full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"shards: no space left on the device writing {out}") and "MiB free" in last
    assert "Traceback" not in full.stderr and "Logging error" not in full.stderr
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # whole or absent: never torn, never empty
    assert run(sys.executable, "-m", "pipelines.cli", "verify", str(out)).returncode != 0
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    resumed = run(*shards_command(recipe, out, "--workers", "2"))
    assert resumed.returncode == 0, resumed.stderr
    assert tree_bytes(out) == tree_bytes(reference)

"""The core install alone: a fresh venv with `pip install prolong-data` (no extras) builds the demo
mixture, verifies and inspects it, and has no torch, transformers, mosaicml-streaming or cloud SDK.

Run by `make test-core-install` (and CI). pip installs from the same constraints file as
`make venv`, so the versions are the tested ones; the repository is copied first, because a
non-editable install builds inside the source folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.core_install]

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL_SKIP = {".venv", ".git", "data", "runs", "build", ".pytest_cache", ".ruff_cache"}
"""Local outputs and environments at the top of a checkout: not part of the package."""


def copy_ignore(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    return skip | (TOP_LEVEL_SKIP & set(names) if Path(folder) == REPO else set())


NOT_IN_CORE = (
    "torch",
    "torchvision",
    "transformers",
    "mosaicml-streaming",
    "llama-models",
    "matplotlib",
    "boto3",
    "azure-storage-blob",
    "google-cloud-storage",
    "oci",
    "paramiko",
)
TIMEOUT = 1800  # seconds for one step: pip and the build take a minute or two on 2 busy cores


def run(cmd: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    return done


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("core")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=copy_ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONWARNINGS"] = "ignore"  # setuptools' build notes; pip's errors still show
    venv = root / "venv"
    made = run([sys.executable, "-m", "venv", venv], root, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(
        [python, "-m", "pip", "install", "--quiet", "--constraint", source / "constraints.txt", source],
        root,
        env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv, env


def test_core_install_has_no_training_stack(core_venv):
    venv, env = core_venv
    listed = run([venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"], venv, env)
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "prolong-data" in names and "datatrove" in names
    assert not names & set(NOT_IN_CORE), names & set(NOT_IN_CORE)
    imported = run([venv / "bin" / "python", "-c", "import torch"], venv, env)
    assert imported.returncode != 0 and "No module named 'torch'" in imported.stderr


def test_core_install_builds_verifies_and_inspects_the_demo(core_venv, corpus, tmp_path):
    venv, env = core_venv
    cli = venv / "bin" / "prolong-data"
    out = tmp_path / "demo"
    built = run([cli, "shards", "--recipe", "demo", "--out", out, "--corpus", corpus], tmp_path, env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "plots skipped" in built.stdout and (out / "mixture.json").is_file()
    verified = run([cli, "verify", out], tmp_path, env)
    assert verified.returncode == 0 and verified.stdout.startswith("verify OK"), verified.stderr
    inspected = run([cli, "inspect", out], tmp_path, env)
    assert inspected.returncode == 0 and "book-65536" in inspected.stdout, inspected.stderr

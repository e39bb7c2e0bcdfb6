"""The core install alone, from the wheel that `make dist` publishes: a fresh venv with the wheel
installed (no extras) builds the demo mixture from any folder, verifies and inspects it, and has
no torch, transformers, mosaicml-streaming or cloud SDK; the sdist and the wheel carry the right
metadata and files.

Run by `make test-core-install` (and CI). The repository is copied first (building writes inside
the source folder), then `python -m build` makes the sdist and, from it, the wheel, as `make dist`
does. pip installs the wheel from the same constraints file as `make venv`, so the versions are the
tested ones. `PROLONG_CORE_CONSTRAINTS` names another constraints file (`constraints-lowest.txt`:
the lower bounds of pyproject.toml), or `none` for the newest versions pyproject.toml allows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
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


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONWARNINGS"] = "ignore"  # setuptools' build notes; pip's errors still show
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The sdist and the wheel built from a copy of the repository, as `make dist` builds them;
    returns (the copy, the sdist, the wheel)."""
    root = tmp_path_factory.mktemp("dist")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=copy_ignore, symlinks=True)  # the sample corpus link stays a link
    built = run([sys.executable, "-m", "build", "--outdir", root / "dist", source], root, clean_env())
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,), (wheel,) = sorted((root / "dist").glob("*.tar.gz")), sorted((root / "dist").glob("*.whl"))
    return source, sdist, wheel


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory, dist) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("core")
    source, _, wheel = dist
    env = clean_env()
    venv = root / "venv"
    made = run([sys.executable, "-m", "venv", venv], root, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    constraints = os.environ.get("PROLONG_CORE_CONSTRAINTS") or "constraints.txt"
    pins = [] if constraints == "none" else ["--constraint", source / constraints]
    if pins:  # the pip version of the constraints, as `make venv` does
        upgraded = run([python, "-m", "pip", "install", "--quiet", *pins, "--upgrade", "pip"], root, env)
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    installed = run([python, "-m", "pip", "install", "--quiet", *pins, wheel], root, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = run([python, "-m", "pip", "list", "--format=freeze"], root, env)
    versions = dict(line.split("==", 1) for line in listed.stdout.splitlines() if "==" in line)
    print(f"core install with {constraints}:", " ".join(f"{k}=={v}" for k, v in sorted(versions.items())))
    if pins:  # the constraints were applied: every pinned package that is installed has its pin
        wanted = read_pins(source / constraints)
        got = {normalize(k): v for k, v in versions.items()}
        assert {k: got[k] for k in wanted if k in got} == {k: v for k, v in wanted.items() if k in got}
    return venv, {normalize(k): v for k, v in versions.items()}, env


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {normalize(line.split("==")[0]): line.split("==")[1] for line in lines if "==" in line}


def test_core_install_has_no_training_stack(core_venv):
    venv, versions, env = core_venv
    assert "prolong-data" in versions and "datatrove" in versions
    assert not versions.keys() & set(NOT_IN_CORE), versions.keys() & set(NOT_IN_CORE)
    imported = run([venv / "bin" / "python", "-c", "import torch"], venv, env)
    assert imported.returncode != 0 and "No module named 'torch'" in imported.stderr
    core = "import gigatoken, jinja2, orjson, pyarrow.parquet, tiktoken, tokenizers, yaml, zstandard"
    imported = run([venv / "bin" / "python", "-c", core], venv, env)
    assert imported.returncode == 0, imported.stderr


def test_the_wheel_and_sdist_carry_their_metadata_and_files(dist):
    _, sdist, wheel = dist
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(info).decode())
        scripts = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert (metadata["Name"], metadata["Version"]) == ("prolong-data", "0.1.0")
    assert metadata["Requires-Python"] and "Apache-2.0" in (
        metadata["License-Expression"],
        metadata["License"],
    )
    assert (
        metadata["Description-Content-Type"] == "text/markdown" and "# prolong-data" in metadata.get_payload()
    )
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("datatrove") for r in requires) and not any(
        r.startswith("torch") and "extra" not in r for r in requires
    )
    assert {"train", "plot", "ray", "hub", "quality", "dev"} <= set(metadata.get_all("Provides-Extra"))
    assert re.search(r"^prolong-data = [\w.]+:main$", scripts, re.M), scripts
    corpus = [n for n in names if n.startswith("prolong_data/assets/sample_corpus/")]
    tracked = [p for p in (REPO / "examples" / "corpus").rglob("*") if p.is_file()]
    assert (
        len(corpus) == len(tracked)
        and "prolong_data/assets/sample_corpus/heldout/pg84-frankenstein.txt.gz" in names
    )
    shipped = [f"recipes/{p.name}" for p in (REPO / "pipelines" / "recipes").glob("*.yaml")]
    shipped += [f"configs/{p.name}" for p in (REPO / "trainer" / "configs").glob("*.yaml")]
    assert shipped and all(any(n.endswith(f) for n in names) for f in shipped)  # wherever installed
    assert "prolong_data/assets/llama3/NOTICE.txt" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "bench/"))]
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {
        "pyproject.toml",
        "README.md",
        "prolong_data/assets/sample_corpus/books/pg345-dracula.txt.gz",
    } <= members


def test_core_install_builds_verifies_and_inspects_the_demo_from_any_folder(core_venv, tmp_path):
    """The demo recipe reads the sample corpus installed with the wheel: no clone, no --corpus."""
    venv, _, env = core_venv
    cli = venv / "bin" / "prolong-data"
    out = tmp_path / "demo"
    built = run([cli, "shards", "--recipe", "demo", "--out", out], tmp_path, env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "plots skipped" in built.stdout and (out / "mixture.json").is_file()
    corpus = Path(yaml_field(out / "recipe.yaml", "corpus"))
    assert venv in corpus.parents and corpus.name == "sample_corpus"
    verified = run([cli, "verify", out], tmp_path, env)
    assert verified.returncode == 0 and verified.stdout.startswith("verify OK"), verified.stderr
    inspected = run([cli, "inspect", out], tmp_path, env)
    assert inspected.returncode == 0 and "book-65536" in inspected.stdout, inspected.stderr


def yaml_field(path: Path, name: str) -> str:
    """A top-level field of a YAML file written by the build (no yaml module needed here)."""
    line = next(line for line in path.read_text().splitlines() if line.startswith(f"{name}:"))
    return line.split(":", 1)[1].strip().strip("'\"")


def test_core_install_builds_the_sft_demo(core_venv, corpus, tmp_path):
    """Chat templates (jinja2) and best-fit packing with masks, in the core install too."""
    venv, _, env = core_venv
    cli = venv / "bin" / "prolong-data"
    out = tmp_path / "sft"
    built = run([cli, "shards", "--recipe", "sft-demo", "--out", out, "--corpus", corpus], tmp_path, env)
    assert built.returncode == 0, built.stdout + built.stderr
    verified = run([cli, "verify", out], tmp_path, env)
    assert verified.returncode == 0 and verified.stdout.startswith("verify OK"), verified.stderr

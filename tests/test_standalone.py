"""The repository stands alone: no tracked file points outside it, the embedded corpus fits its
size budget, and the demo recipes build from it without touching the held-out books."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.recipe import load_recipe
from prolong_data.sources.files import list_input_files

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "examples" / "corpus"
DEMO_RECIPES = ("demo", "demo-512k", "sft-demo")
# The workspace's corpus folder and guide, in the spellings a path or a link would use; built
# from pieces so that this file does not contain what it looks for.
OUTSIDE_REFERENCES = ("../" + "shared", "shared" + "/corpus", '"shared"' + " /", "GUIDE" + ".md")
CORPUS_BUDGET = 8_000_000  # bytes of examples/corpus in git (all files are stored compressed)


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60)
    return [REPO / name for name in done.stdout.decode().split("\0") if name]


def test_no_tracked_file_refers_to_the_workspace_outside_the_repository():
    offenders = []
    for path in tracked_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        data = path.read_bytes()
        for needle in OUTSIDE_REFERENCES:
            if needle.encode() in data:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert not offenders, offenders


def test_the_embedded_corpus_fits_its_budget():
    files = [p for p in tracked_files() if p.is_relative_to(EMBEDDED)]
    assert sum(p.stat().st_size for p in files) <= CORPUS_BUDGET
    data = [p for p in files if p.name != "README.md"]
    assert data and all(p.name.endswith(".gz") for p in data)


@pytest.mark.parametrize("name", DEMO_RECIPES)
def test_demo_recipes_read_the_embedded_corpus_and_never_the_heldout_books(name):
    recipe = load_recipe(name)
    assert recipe.tokenizer == "llama3" and recipe.corpus == "{sample_corpus}"
    resolved = recipe.resolved()  # the sample corpus of the package: the embedded one, linked
    assert resolved.corpus == str(EMBEDDED.resolve())
    heldout = (EMBEDDED / "heldout").resolve()
    assert any(heldout.iterdir())
    for domain in resolved.domains:
        for source in domain.sources:
            for path in map(Path, source.paths):
                assert not path.is_relative_to(heldout) and not heldout.is_relative_to(path), path
            if any(Path(p).is_relative_to(EMBEDDED) for p in source.paths):
                files = list_input_files(source.paths, (), source.glob)
                assert files, (domain.name, source.paths)
                assert not [f for f in files if Path(f).is_relative_to(heldout)]

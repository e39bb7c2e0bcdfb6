"""The examples a newcomer copies from the docs work as written: the "your own data" recipe at the
top of docs/recipes.md builds and verifies, and docs/library.md's in-memory route runs and gives a
build that `verify` passes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from corpus_files import book_files, corpus_file

from pipelines.cli import main
from prolong_data.mixture import read_mixture
from prolong_data.verify import verify

DOCS = Path(__file__).resolve().parents[2] / "docs"


def code_block(doc: str, language: str, after: str) -> str:
    """The first fenced `language` block of `doc` after the heading `after`."""
    text = (DOCS / doc).read_text()
    found = re.search(rf"```{language}\n(.*?)```", text[text.index(after) :], re.S)
    assert found, f"no {language} block after {after!r} in {doc}"
    return found.group(1)


def test_the_own_data_recipe_of_docs_recipes_builds(tmp_path, corpus):
    recipe = code_block("recipes.md", "yaml", "## Your own data")
    assert len(recipe.splitlines()) <= 20  # a small recipe, all of it
    (tmp_path / "my-data.yaml").write_text(recipe)
    data = tmp_path / "my_data"  # the recipe's `corpus`, relative to the working folder
    (data / "books").mkdir(parents=True)
    for book in book_files(corpus / "books")[:2]:
        shutil.copy(book, data / "books")
    (data / "web").mkdir()
    shutil.copy(corpus_file(corpus, "short/qa.jsonl"), data / "web")
    out = tmp_path / "shards" / "my-data"
    args = ["shards", "--recipe", str(tmp_path / "my-data.yaml"), "--out", str(out), "--corpus", str(data)]
    assert main([*args, "--workers", "1"]) == 0
    mixture, _ = read_mixture(out)
    assert [s.domain for s in mixture.streams] == [d["name"] for d in yaml.safe_load(recipe)["domains"]]
    assert verify(out).samples > 0


def test_the_in_memory_route_of_docs_library_runs(tmp_path, monkeypatch):
    example = code_block("library.md", "python", "## Documents in memory")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "docs/library.md", "exec"), {"__name__": "docs_example"})
    mixture, root = read_mixture(tmp_path / "shards")
    assert [s.domain for s in mixture.streams] == ["notes", "faq"]
    report = verify(tmp_path / "shards")
    assert report.folders == 2 and report.samples > 0

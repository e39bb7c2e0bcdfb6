"""An output folder that overlaps the inputs, and `--fresh`, never delete or touch a user's files.

Each case runs the real `prolong-data shards` command (in a subprocess, as a user would) and
compares every byte of the input tree before and after. The builds use the `qa` domain of the
tiny recipe alone (one task, 100 rows), so a whole build takes seconds.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import shards_command, tiny_recipe, tree_bytes

REPO = Path(__file__).resolve().parents[2]


def qa_recipe(corpus: Path, tokenizer_json: str, **changes) -> dict:
    """The tiny recipe with only its `qa` domain built (rows from `corpus/rows`); the other
    domains keep their shares with no sources."""
    recipe = tiny_recipe(corpus, tokenizer_json, **changes)
    for domain in recipe["domains"]:
        if domain["name"] != "qa":
            domain["sources"] = []
    return recipe


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def run_shards(recipe: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        shards_command(recipe, out, "--workers", "1", *options),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def all_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root`, hidden folders included."""
    return tree_bytes(root, skip=())


@pytest.fixture
def own_corpus(tmp_path, tiny_corpus) -> Path:
    """A private copy of the tiny corpus (rows/ and books/), so a bug deletes only the copy."""
    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus / "rows", root / "rows")
    shutil.copytree(tiny_corpus / "books", root / "books")
    return root


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("fresh", [(), ("--fresh",)], ids=["plain", "fresh"])
@pytest.mark.parametrize("where", ["corpus", "parent", "source", "inside_source", "link"])
def test_an_out_overlapping_the_inputs_is_refused_and_nothing_changes(
    tmp_path, own_corpus, tokenizer_json, where, fresh
):
    corpus = own_corpus
    recipe = write_recipe(tmp_path / "r.yaml", qa_recipe(corpus, tokenizer_json))
    link = tmp_path / "link"
    link.symlink_to(corpus / "rows")
    out = {
        "corpus": corpus,  # the folder `{corpus}` names
        "parent": tmp_path,  # a parent of the inputs
        "source": corpus / "rows",  # a source folder itself
        "inside_source": corpus / "rows" / "out",  # a build inside a source folder
        "link": link,  # a link to a source folder
    }[where]
    before = all_bytes(corpus)
    result = run_shards(recipe, out, *fresh)
    assert_refused(result, "input", "choose an output folder apart")
    assert all_bytes(corpus) == before
    assert not (corpus / "rows" / "out").exists() and not (corpus / ".build").exists()


@pytest.mark.slow
def test_a_tokenized_source_inside_out_is_refused(tmp_path, own_corpus, tokenizer_json):
    """Re-packing the shards of a build into the same folder (or its parent) would delete them."""
    corpus = own_corpus
    first = tmp_path / "first"
    recipe = write_recipe(tmp_path / "r.yaml", qa_recipe(corpus, tokenizer_json))
    assert run_shards(recipe, first).returncode == 0
    repack = qa_recipe(corpus, tokenizer_json, name="repack")
    repack["domains"][0]["sources"] = [{"kind": "tokenized", "paths": [str(first / "qa")]}]
    repack_file = write_recipe(tmp_path / "repack.yaml", repack)
    before = all_bytes(first)
    for out in (first, tmp_path, first / "qa"):
        assert_refused(run_shards(repack_file, out, "--fresh"), "input")
    assert all_bytes(first) == before


def test_a_local_tokenizer_inside_out_is_refused(tmp_path, own_corpus, tokenizer_json):
    corpus = own_corpus
    tokenizer = tmp_path / "out" / "tok" / "tokenizer.json"
    tokenizer.parent.mkdir(parents=True)
    shutil.copy(tokenizer_json, tokenizer)
    recipe = write_recipe(tmp_path / "r.yaml", qa_recipe(corpus, str(tokenizer)))
    assert_refused(run_shards(recipe, tmp_path / "out", "--fresh"), "input")
    assert tokenizer.is_file()


def test_fresh_in_a_folder_no_build_made_deletes_nothing(tmp_path, own_corpus, tokenizer_json):
    """A folder of the user's that merely looks like a build (`report/`, a domain-named folder
    with an `index.json`, `mixture.json`) is left alone: no build marker of ours is there."""
    corpus = own_corpus
    out = tmp_path / "mine"
    for name in ("report/notes.md", "qa/index.json", "mixture.json", "book-1024/ch1.txt", ".build/x"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(f"the user's {name}\n")
    recipe = write_recipe(tmp_path / "r.yaml", qa_recipe(corpus, tokenizer_json))
    before = all_bytes(out)
    assert_refused(run_shards(recipe, out, "--fresh"), "no build of prolong-data", "nothing there is deleted")
    assert all_bytes(out) == before


@pytest.mark.slow
def test_fresh_deletes_only_what_a_build_wrote(tmp_path, own_corpus, tokenizer_json):
    """Over a finished build with the user's files added among its own, `--fresh` deletes the
    build's files (the new build is byte-identical to one in an empty folder) and keeps theirs."""
    corpus = own_corpus
    recipe = write_recipe(tmp_path / "r.yaml", qa_recipe(corpus, tokenizer_json))
    clean, out = tmp_path / "clean", tmp_path / "out"
    assert run_shards(recipe, clean).returncode == 0
    assert run_shards(recipe, out).returncode == 0
    users = {
        "notes.txt": "top-level notes",
        "report/my-analysis.md": "mine",
        "qa/README": "about qa",
        "removed/keep.txt": "mine too",
        "datasets/qa.jsonl": "{}",
        "mixture-sweep.json": "{}",  # a --mixture-only variant: kept, it is not rebuilt
    }
    for name, text in users.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    (out / "qa" / "rank-00000" / "shard.00000.mds").write_bytes(b"damage")  # ours: rebuilt
    result = run_shards(recipe, out, "--fresh")
    assert result.returncode == 0, result.stderr
    for name, text in users.items():
        assert (out / name).read_text() == text, name
    built = {k: v for k, v in tree_bytes(out).items() if k not in users and k != "inspect.png"}
    assert built == tree_bytes(clean)

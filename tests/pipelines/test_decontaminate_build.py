"""`decontaminate:` in real builds: a training book copied into the evaluation set is dropped and
every other document comes out byte-identical to a build without it; bad evaluation input stops
the command before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from corpus_files import book_files, plain_name, read_text
from pipeline_helpers import read_json

from pipelines.cli import main

pytestmark = pytest.mark.slow


def books_recipe(corpus: Path, tokenizer_json: str, decontaminate: dict | None = None) -> dict:
    domain = {
        "name": "book-1024",
        "group": "long",
        "proportion": 1.0,
        "max_tasks": 1,
        "sources": [{"kind": "book_files", "paths": [str(corpus)]}],
        "pack": {"mode": "length_binned", "chunk_len": 1024},
    }
    if decontaminate is not None:
        domain["decontaminate"] = decontaminate
    return {
        "name": "decontaminate",
        "seq_len": 1024,
        "tokenizer": tokenizer_json,
        "token_budget": 40_000,
        "max_repeat": 100.0,
        "tasks": 1,
        "domains": [domain],
    }


def shards(root: Path, recipe: dict, name: str = "out") -> int:
    """Builds `recipe` into `root/name`."""
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return main(["shards", "--recipe", str(path), "--out", str(root / name)])


def shard_bytes(domain: Path) -> dict[str, bytes]:
    """The shards and rank indexes of a domain (its manifest's stats name the filters that ran)."""
    return {str(p.relative_to(domain)): p.read_bytes() for p in sorted(domain.glob("rank-*/*"))}


@pytest.fixture(scope="module")
def books(tmp_path_factory, corpus) -> Path:
    """Four real book openings of 30,000 characters."""
    folder = tmp_path_factory.mktemp("books")
    for src in book_files(corpus / "books")[:4]:
        (folder / plain_name(src)).write_text(
            read_text(src)[:30_000] + "\n*** END OF THE PROJECT GUTENBERG EBOOK ***\n"
        )
    return folder


def test_a_book_in_the_evaluation_set_is_dropped_and_the_rest_is_byte_identical(
    tmp_path, books, tokenizer_json
):
    victim = sorted(books.iterdir())[1]
    evals = tmp_path / "evals"
    evals.mkdir()
    shutil.copy(victim, evals / victim.name)  # the book as an evaluation set would hold it
    without = tmp_path / "without"
    shutil.copytree(books, without)
    (without / victim.name).unlink()

    assert (
        shards(tmp_path, books_recipe(books, tokenizer_json, {"paths": [str(evals)], "action": "drop"})) == 0
    )
    assert shards(tmp_path, books_recipe(without, tokenizer_json), "reference") == 0
    cleaned, reference = tmp_path / "out", tmp_path / "reference"
    assert shard_bytes(cleaned / "book-1024") == shard_bytes(reference / "book-1024")
    touched = [json.loads(x) for x in (cleaned / "report" / "decontamination.jsonl").read_text().splitlines()]
    assert [(t["id"], t["eval_set"], t["action"]) for t in touched] == [(victim.stem, victim.name, "dropped")]
    assert touched[0]["matched_ngrams"] > 1000 and touched[0]["characters_removed"] > 25_000
    counts = read_json(cleaned / "manifest.json")["domains"]["book-1024"]["decontamination"]
    assert counts == {
        "touched": 1,
        "excised": 0,
        "dropped": 1,
        "characters_removed": touched[0]["characters_removed"],
    }
    assert (
        "evaluation text removed: book-1024 0 excised, 1 dropped"
        in (cleaned / "report" / "report.md").read_text()
    )


def test_excise_keeps_a_book_that_quotes_a_passage_of_the_evaluation_set(tmp_path, books, tokenizer_json):
    victim = sorted(books.iterdir())[2]
    words = victim.read_text().split()
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "qa.jsonl").write_text(
        json.dumps({"context": " ".join(words[2000:2400]), "question": "who?", "answers": [["a"]]}) + "\n"
    )
    assert shards(tmp_path, books_recipe(books, tokenizer_json, {"paths": [str(evals)]})) == 0
    touched = [
        json.loads(x)
        for x in (tmp_path / "out" / "report" / "decontamination.jsonl").read_text().splitlines()
    ]
    assert [(t["id"], t["eval_set"], t["action"]) for t in touched] == [(victim.stem, "qa.jsonl", "excised")]
    assert read_json(tmp_path / "out" / "manifest.json")["domains"]["book-1024"]["documents"] == 4


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"context": "a b c"}\n{"context": \n', "qa.jsonl:2 is not JSON"),
        (b'{"context": "too short", "question": "q", "answers": []}\n', "has no text of 13 words or more"),
        (b'{"passage": "' + b"word " * 40 + b'"}\n', "has the field(s) ['context', 'question', 'answers']"),
    ],
    ids=["unparsable", "empty", "no-such-field"],
)
def test_bad_evaluation_input_is_refused_before_anything_is_written(
    tmp_path, books, tokenizer_json, capsys, content, message
):
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "qa.jsonl").write_bytes(content)
    assert shards(tmp_path, books_recipe(books, tokenizer_json, {"paths": [str(evals)]})) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_evaluation_set_is_part_of_the_build_identity(tmp_path, books, tokenizer_json, capsys):
    evals = tmp_path / "evals"
    evals.mkdir()
    victim = sorted(books.iterdir())[0]
    shutil.copy(victim, evals / victim.name)
    recipe = books_recipe(books, tokenizer_json, {"paths": [str(evals)], "action": "drop"})
    assert shards(tmp_path, recipe) == 0
    before = shard_bytes(tmp_path / "out" / "book-1024")
    assert shards(tmp_path, recipe) == 0  # the same evaluation set: a rerun resumes (nothing to do)
    assert shard_bytes(tmp_path / "out" / "book-1024") == before
    (evals / "more.txt").write_text(" ".join(f"word{i}" for i in range(40)))
    assert shards(tmp_path, recipe) != 0  # another evaluation set is another build
    err = capsys.readouterr().err
    assert "holds a different build (decontamination_index.book-1024:" in err, err

"""Bad configurations and bad starts: one message saying what to fix, exit status 2, no
traceback, and the output folder exactly as it was (nothing written, nothing deleted)."""

from __future__ import annotations

import os

import pytest
import yaml
from pipeline_helpers import tiny_recipe, tree_bytes

from pipelines.cli import main


def shards(*args) -> int:
    return main(["shards", *map(str, args)])


def all_bytes(root):
    return tree_bytes(root, skip=()) if root.exists() else None


def absolute_recipe(corpus, tokenizer_json, **changes) -> dict:
    """The tiny recipe with absolute source paths and a relative, unused `corpus` default."""
    recipe = {**tiny_recipe(corpus, tokenizer_json, **changes), "corpus": "data/raw"}
    for domain in recipe["domains"]:
        for source in domain.get("sources", []):
            source["paths"] = [p.replace("{corpus}", str(corpus)) for p in source["paths"]]
    return recipe


@pytest.mark.parametrize(
    "label, change, args, message",
    [
        ("yaml syntax", "name: x\nseq_len: [1024,\ntokenizer: t\n", (), "r.yaml:4: YAML syntax error"),
        ("negative chunk_len", {"chunk_len": -1024}, (), "chunk_len must be positive"),
        ("zero workers", None, ("--workers", 0), "--workers must be at least 1, got 0"),
        ("zero tasks", None, ("--tasks", 0), "--tasks must be at least 1"),
        ("missing tokenizer file", {"tokenizer": "mytok/tokenizer.json"}, (), "no such file or folder"),
        ("wrong tokenizer", {"tokenizer": "/no/such/tokenizer.json"}, (), "no such file or folder"),
        ("source typo", {"books": "{corpus}/bookz"}, (), "bookz does not exist"),
        ("slurm without partition", None, ("--executor", "slurm"), "--slurm-partition"),
    ],
)
def test_a_bad_start_is_one_message_and_changes_nothing(
    tmp_path, tiny_corpus, tokenizer_json, capsys, label, change, args, message
):
    recipe_path = tmp_path / "r.yaml"
    recipe = tiny_recipe(tiny_corpus, tokenizer_json)
    if isinstance(change, str):
        recipe_path.write_text(change)
    else:
        for key, value in (change or {}).items():
            if key == "chunk_len":
                recipe["domains"][0]["pack"]["chunk_len"] = value
            elif key == "books":
                recipe["domains"][2]["sources"][0]["paths"] = [value]
            else:
                recipe[key] = value
        recipe_path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = all_bytes(out)
    assert shards("--recipe", recipe_path, "--out", out, *args) == 2, label
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all_bytes(out) == before  # no .build/options.json, nothing else
    assert not (tmp_path / "absent").exists()
    assert shards("--recipe", recipe_path, "--out", tmp_path / "absent", *args) == 2
    assert not (tmp_path / "absent").exists()  # a failed start creates no folder either


def test_out_naming_a_file_is_refused(tmp_path, tiny_recipe_file, capsys):
    (tmp_path / "file").write_text("keep me")
    assert shards("--recipe", tiny_recipe_file, "--out", tmp_path / "file") == 2
    assert "is a file" in capsys.readouterr().err and (tmp_path / "file").read_text() == "keep me"


def test_hub_ids_are_only_org_slash_name_with_no_local_path(tmp_path, monkeypatch):
    from prolong_data.tokenization.loading import looks_like_hub_id

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mytok").mkdir()
    assert looks_like_hub_id("meta-llama/Meta-Llama-3-8B")
    assert looks_like_hub_id("gpt2/v1.5")
    assert not looks_like_hub_id("mytok/tokenizer.json")  # a file name: a missing file, not a model
    assert not looks_like_hub_id("mytok/llama")  # the folder `mytok` exists here: a local path
    assert not looks_like_hub_id("./org/name") and not looks_like_hub_id("a/b/c")
    assert not looks_like_hub_id("/abs/path") and not looks_like_hub_id("llama3")


def test_fresh_and_failed_starts_never_touch_a_good_build_and_another_cwd_resumes(
    tmp_path, tiny_corpus, tokenizer_json, capsys, monkeypatch
):
    """A typo with --fresh, a wrong tokenizer, another task count: refused before a byte changes.
    The same command from another working folder resumes (nothing recorded depends on it)."""
    here, there = tmp_path / "a", tmp_path / "b"
    here.mkdir()
    there.mkdir()
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(absolute_recipe(tiny_corpus, tokenizer_json)))
    out = tmp_path / "out"
    monkeypatch.chdir(here)
    assert shards("--recipe", good, "--out", out, "--workers", 1) == 0
    built = all_bytes(out)

    typo = absolute_recipe(tiny_corpus, tokenizer_json)
    typo["domains"][2]["sources"][0]["paths"] = [str(tiny_corpus / "bookz")]
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(typo))
    assert shards("--recipe", tmp_path / "typo.yaml", "--out", out, "--fresh") == 2
    assert "bookz does not exist" in capsys.readouterr().err
    assert all_bytes(out) == built  # --fresh deleted nothing: the recipe failed validation first

    wrong_tok = absolute_recipe(tiny_corpus, tokenizer_json, tokenizer=str(tmp_path / "nope.json"))
    (tmp_path / "tok.yaml").write_text(yaml.safe_dump(wrong_tok))
    assert shards("--recipe", tmp_path / "tok.yaml", "--out", out, "--fresh") == 2
    assert shards("--recipe", tmp_path / "tok.yaml", "--out", out) == 2
    assert all_bytes(out) == built
    assert shards("--recipe", good, "--out", out, "--tasks", 1) == 2  # another task count: refused
    assert "--fresh" in capsys.readouterr().err and all_bytes(out) == built

    monkeypatch.chdir(there)  # the same absolute command elsewhere: resumes, nothing to redo
    assert shards("--recipe", good, "--out", out, "--workers", 1) == 0
    assert {k: v for k, v in all_bytes(out).items() if not k.startswith(".build/logs")} == {
        k: v for k, v in built.items() if not k.startswith(".build/logs")
    }
    assert os.getcwd() == str(there)

"""`prolong-data shards` on a tiny recipe: build, rerun, remix, overrides, failures."""

from __future__ import annotations

import pytest
import yaml
from pipeline_helpers import read_json, tiny_recipe, tree_bytes

from pipelines.cli import main
from prolong_data.mixture import read_mixture
from prolong_data.verify import verify


def shards(*args) -> int:
    return main(["shards", *map(str, args)])


def test_tiny_build_rerun_and_remix(tmp_path, tiny_recipe_file, capsys):
    out = tmp_path / "out"
    assert shards("--recipe", tiny_recipe_file, "--out", out, "--tasks", 2, "--workers", 1) == 0
    printed = capsys.readouterr().out
    assert "code-512" in printed and "token budget 40,000" in printed and "malformed_json: 1" in printed
    report = verify(out)
    assert report.folders == 4 and report.samples > 0
    mixture, root = read_mixture(out)
    assert [s.domain for s in mixture.streams] == [
        "code-512",
        "stack-512",
        "book-1024",
        "qa",
    ]  # arxiv: no sources
    assert [s.proportion for s in mixture.streams] == pytest.approx([2 / 9, 1 / 9, 3 / 9, 3 / 9])
    stack = read_json(out / "stack-512" / "manifest.json")
    assert stack["documents"] == 4 and stack["stats"]["concatenate repositories"]["repo_files"] == 20
    assert mixture.seq_len == 1024 and all((root / s.path / "index.json").is_file() for s in mixture.streams)
    for name in ("report.md", "budget.json", "bad_input.json", "document_lengths.png", "mixture_shares.png"):
        assert (out / "report" / name).is_file()
    bad = read_json(out / "report" / "bad_input.json")
    assert bad["counts"] == {"malformed_json": 1, "missing_field": 1}
    assert bad["examples"]["malformed_json"][0]["line"] == 11
    manifest = read_json(out / "qa" / "manifest.json")
    assert manifest["stats"]["exact dedup"]["dropped_duplicate"] == 1
    assert manifest["tokenizer"]["bos_id"] == 128000 and "timestamp" not in str(manifest)
    summary = read_json(out / "manifest.json")
    assert summary["budget"]["absent_domains"] == ["arxiv"]
    assert summary["domains"]["code-512"]["documents"] == 3
    before = tree_bytes(out)

    # The same command again: every task is complete, nothing changes.
    assert shards("--recipe", tiny_recipe_file, "--out", out, "--tasks", 2, "--workers", 1) == 0
    assert tree_bytes(out) == before

    # A ratio sweep is one flag: a new mixture file over the same shards.
    assert (
        shards(
            "--recipe",
            tiny_recipe_file,
            "--out",
            out,
            "--mixture-only",
            "--long-share",
            0.5,
            "--proportion",
            "code-512=0.1",
            "--mixture-file",
            "mixture-ls50.json",
            "--token-budget",
            400_000,
            "--max-repeat",
            1.5,
        )
        == 0
    )
    remixed = read_json(out / "mixture-ls50.json")
    shares = {s["domain"]: s["proportion"] for s in remixed["streams"]}
    # code-512 set to 0.1 inside the long group (total 0.6): stack-512 and book-1024 share the other 0.5
    long = {"code-512": 0.1, "stack-512": 0.5 * 0.1 / 0.4, "book-1024": 0.5 * 0.3 / 0.4}
    assert shares == pytest.approx({**{k: 0.5 * v / 0.6 for k, v in long.items()}, "qa": 0.5})
    assert (out / "report" / "budget-mixture-ls50.json").is_file()
    printed = capsys.readouterr().out
    assert "token budget 400,000 (repeat limit 1.5x)" in printed and "REPEAT>LIMIT" in printed
    assert tree_bytes(out, skip=(".build", "report", "mixture-ls50.json")) == {
        k: v for k, v in before.items() if not k.startswith("report")
    }

    # A new blend on a finished build: shards untouched, mixture.json rewritten.
    assert (
        shards("--recipe", tiny_recipe_file, "--out", out, "--tasks", 2, "--workers", 1, "--long-share", 0.5)
        == 0
    )
    assert read_json(out / "mixture.json")["streams"][-1]["proportion"] == pytest.approx(0.5)
    shard_files = {k: v for k, v in tree_bytes(out).items() if "/rank-" in k}
    assert shard_files == {k: v for k, v in before.items() if "/rank-" in k} and shard_files

    # Another task count on the same folder is refused; --fresh starts over.
    assert shards("--recipe", tiny_recipe_file, "--out", out, "--tasks", 1, "--workers", 1) == 2
    assert "--fresh" in capsys.readouterr().err
    assert (
        shards(
            "--recipe", tiny_recipe_file, "--out", out, "--tasks", 1, "--workers", 1, "--fresh", "--no-report"
        )
        == 0
    )
    assert not (out / "report" / "report.md").exists() and verify(out).folders == 4


def test_failures_are_immediate_and_say_what_to_fix(tmp_path, tiny_corpus, tokenizer_json, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "no-such-corpus"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json)))
    assert shards("--recipe", recipe, "--out", out, "--corpus", missing) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and str(missing) in err and not (out / ".build").exists()

    bad = tiny_recipe(tiny_corpus, tokenizer_json)
    bad["domains"][0]["proportion"] = 0.9
    recipe.write_text(yaml.safe_dump(bad))
    assert shards("--recipe", recipe, "--out", out) == 2
    assert "sum to 1.700000, not 1" in capsys.readouterr().err

    assert shards("--recipe", "sft", "--out", out, "--corpus", tiny_corpus) == 2
    assert "ultrachat" in capsys.readouterr().err  # the sft recipe's chats are not in this corpus
    with pytest.raises(SystemExit):
        shards("--recipe", "demo", "--out", out, "--proportion", "fineweb-edu")


def _run_steps(steps: list) -> None:
    data = None
    for step in steps:
        data = step(data, 0, 1)
    for _ in data or ():
        pass


def test_one_task_domain_skips_the_shuffle_and_writes_the_same_bytes(tmp_path, tiny_recipe_file):
    from pipelines.build import BuildOptions, plan_build
    from pipelines.recipe import load_recipe
    from prolong_data.sources.partitions import HashPartitionWriter, PartitionReader

    recipe = load_recipe(tiny_recipe_file).resolved()
    fused = {p.config.name: p for p in plan_build(recipe, BuildOptions(out=tmp_path / "a", tasks=1))}
    shuffled = {p.config.name: p for p in plan_build(recipe, BuildOptions(out=tmp_path / "b", tasks=1))}
    assert fused["stack-512"].read_steps  # repository rows are always grouped by a shuffle
    qa, reference = fused["qa"], shuffled["qa"]
    assert qa.read_steps == [] and qa.build_steps[: len(qa.source_steps)] == qa.source_steps

    _run_steps(qa.build_steps)  # one pass: sources -> ... -> MDS
    rest = reference.build_steps[len(reference.source_steps) :]
    _run_steps([*reference.source_steps, HashPartitionWriter(str(reference.partitions), 1)])
    _run_steps([PartitionReader(str(reference.partitions)), *rest])
    assert tree_bytes(qa.folder) == tree_bytes(reference.folder) != {}


def test_keep_removed_writes_what_the_filters_removed(tmp_path, tiny_corpus, tokenizer_json):
    import gzip
    import json

    from pipelines.build import BuildOptions, plan_build
    from pipelines.recipe import Recipe
    from prolong_data.config import from_dict

    data = tiny_recipe(tiny_corpus, tokenizer_json)
    data["domains"][3]["keep_removed"] = True  # qa: its rows hold one exact duplicate
    recipe = from_dict(Recipe, data).resolved()
    out = tmp_path / "out"
    qa = {p.config.name: p for p in plan_build(recipe, BuildOptions(out=out, tasks=1))}["qa"]
    _run_steps(qa.build_steps)
    removed = out / "removed" / "qa" / "exact_dedup" / "00000.jsonl.gz"
    rows = [json.loads(line) for line in gzip.open(removed, "rt")]
    assert len(rows) == 1 and rows[0]["metadata"]["filter_reason"] == "duplicate"
    assert (
        rows[0]["text"]
        == json.loads((tiny_corpus / "rows" / "qa.jsonl").read_bytes().splitlines()[0])["text"]
    )
    assert not (out / "removed" / "qa" / "non_empty").exists()  # nothing removed there: no file

"""A `hub` source (a file-format Hugging Face dataset, offline) and datatrove's quality filters
inside a real build."""

from __future__ import annotations

import yaml
from pipeline_helpers import read_json, tiny_recipe

from pipelines.cli import main


def test_hub_json_source_equals_rows_source_and_quality_filters_drop(tmp_path, tiny_corpus, tokenizer_json):
    clean = tmp_path / "clean"  # the datasets json loader wants a file without the tiny corpus's bad lines
    clean.mkdir()
    lines = (tiny_corpus / "rows" / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    (clean / "qa.jsonl").write_text("\n".join(lines[:10] + lines[12:100]) + "\n", encoding="utf-8")
    qa = str(clean / "qa.jsonl")
    short = {"group": "short", "proportion": 1 / 3, "max_tasks": 1}
    recipe = tiny_recipe(tiny_corpus, tokenizer_json, tasks=1)
    recipe["domains"] = [
        {"name": "qa-rows", **short, "sources": [{"kind": "rows", "paths": [qa]}]},
        {"name": "qa-hub", **short, "sources": [{"kind": "hub", "dataset": "json", "data_files": [qa]}]},
        {
            "name": "qa-gopher",
            **short,
            "sources": [{"kind": "rows", "paths": [qa]}],
            "quality_filters": ["gopher_quality"],
        },
    ]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["shards", "--recipe", str(path), "--out", str(out), "--workers", "1", "--no-report"]) == 0

    rows, hub, gopher = (read_json(out / d / "manifest.json") for d in ("qa-rows", "qa-hub", "qa-gopher"))
    assert rows["documents"] == hub["documents"] == 98
    assert rows["document_tokens"] == hub["document_tokens"] > 0
    assert token_rows(out / "qa-hub") == token_rows(out / "qa-rows") != []
    gopher_stats = gopher["stats"]["🥇 Gopher Quality"]
    assert gopher_stats["total"] == 98 and 0 < gopher_stats["dropped"] < 98
    assert gopher["documents"] == 98 - gopher_stats["dropped"]


def token_rows(folder) -> list[list[int]]:
    from prolong_data.inspection import iter_samples

    return [row["input_ids"].tolist() for _, _, row in iter_samples(folder)]

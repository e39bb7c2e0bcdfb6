"""`prolong-data preview`: the documents a build tokenizes, written as JSON lines, no build folder."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from datatrove.data import Document
from pipeline_helpers import read_json

from pipelines.cli import main
from pipelines.preview import preview_steps
from pipelines.recipe import load_recipe
from prolong_data.inspection import iter_samples
from prolong_data.tokenization import TokenizeDocuments

REPOS = {  # three repositories whose files import each other (so dependency order moves them)
    f"proj{r}": {
        "pkg/__init__.py": "from .api import run\n",
        "pkg/api.py": "from .models import Model\nfrom .util import helper\n" + f"R = {r}\n" * 40,
        "pkg/models.py": "from pkg.util import helper\n" + "class Model:\n    x = 1\n" * 30,
        "pkg/util.py": "import os\n" + "def helper():\n    return os.sep\n" * 30,
        "setup.py": "import pkg\n",
    }
    for r in range(3)
}


def one_domain_recipe(tmp_path, tokenizer_json, pack: dict, **source) -> object:
    """A recipe of one code domain read from the repositories above."""
    for repo, files in REPOS.items():
        for rel, text in files.items():
            path = tmp_path / "repos" / repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    recipe = {
        "name": "one",
        "seq_len": 256,
        "tokenizer": tokenizer_json,
        "token_budget": 10_000,
        "tasks": 1,
        "domains": [
            {
                "name": "code",
                "group": "long",
                "proportion": 1.0,
                "sources": [{"kind": "code_folders", "paths": [str(tmp_path / "repos")], **source}],
                "pack": pack,
            }
        ],
    }
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def preview(*args) -> int:
    return main(["preview", *map(str, args)])


def tokens_of(texts: list[str], tokenizer: str) -> np.ndarray:
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    return np.concatenate([d.tokens for d in TokenizeDocuments(tokenizer).run(iter(docs), 0, 1)])


@pytest.mark.slow
def test_preview_equals_what_the_build_tokenizes(tmp_path, tokenizer_json, capsys):
    recipe = one_domain_recipe(tmp_path, tokenizer_json, {"mode": "concat"}, file_order="dependency")
    listing = sorted(p.name for p in tmp_path.iterdir())
    assert preview("--recipe", recipe, "--domain", "code", "--limit", 100, "--out", tmp_path / "p.jsonl") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*listing, "p.jsonl"])  # no build folder
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["proj0", "proj1", "proj2"] and all(
        r["meta"]["files"] == 5 for r in rows
    )
    assert rows[0]["text"].startswith("# File: proj0/pkg/util.py\n")  # imported first

    out = tmp_path / "out"
    assert main(["shards", "--recipe", str(recipe), "--out", str(out), "--tasks", "1", "--workers", "1"]) == 0
    assert "file order (dependency)" in capsys.readouterr().out  # the build summary shows the counts
    manifest = read_json(out / "code" / "manifest.json")
    assert manifest["documents"] == len(rows)
    # per repository: util <- models, util/models <- api, api <- __init__, __init__ <- setup
    assert manifest["file_order"] == {"import_edges": 15, "import_edges_satisfied": 15, "files_in_cycles": 0}
    stored = np.concatenate([row["input_ids"] for _, _, row in iter_samples(out / "code")])
    expected = tokens_of([r["text"] for r in rows], tokenizer_json)
    assert len(stored) == len(expected) // 256 * 256  # concat drops the partial last sequence
    assert np.array_equal(stored, expected[: len(stored)])


def test_preview_prints_jsonl_with_token_counts_and_stops_at_the_limit(tmp_path, tokenizer_json, capfd):
    recipe = one_domain_recipe(tmp_path, tokenizer_json, {"mode": "concat"})
    assert preview("--recipe", recipe, "--domain", "code", "--limit", 2, "--tokens") == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["proj0", "proj1"]
    assert [r["tokens"] for r in rows] == [len(tokens_of([r["text"]], tokenizer_json)) for r in rows]
    assert rows[0]["text"].startswith("# File: proj0/pkg/__init__.py\n")  # path order by default

    override = "--domains.code.sources.0.file_order=dependency"
    assert preview("--recipe", recipe, "--domain", "code", "--limit", 1, override) == 0
    (row,) = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert row["text"].startswith("# File: proj0/pkg/util.py\n")

    steps = preview_steps(load_recipe(str(recipe)), load_recipe(str(recipe)).domains[0])
    data = None
    for step in steps:
        data = step.run(data, 0, 1)
    next(data)
    data.close()
    assert steps[0].stats["input_units"].total == 1  # one repository read for one document


def test_preview_of_stack_rows_joins_whole_repositories(tiny_recipe_file, capfd):
    assert preview("--recipe", tiny_recipe_file, "--domain", "stack-512", "--limit", 3) == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["org/r0", "org/r1", "org/r2"]
    for row in rows:
        assert row["meta"] == {"source": row["id"], "files": 5, "languages": ["Python"]}
        assert row["text"].count("# File: ") == 5


def test_preview_of_chats_renders_the_template_with_assistant_spans(corpus, capfd):
    assert preview("--recipe", "sft-demo", "--domain", "ultrachat", "--limit", 3, "--corpus", corpus) == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert len(rows) == 3
    for row in rows:
        spans = row["meta"]["assistant_spans"]
        assert spans and "messages" not in row["meta"]
        for start, end in spans:
            assert row["text"][:start].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
            assert row["text"][end:].startswith("<|eot_id|>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--domain", "nope"], "has no domain 'nope'"),
        (["--domain", "arxiv"], "has no sources"),
        (["--domain", "book-65536", "--corpus", "/no/such/corpus"], "/no/such/corpus"),
        (["--domain", "book-65536", "--limit", "-1"], "--limit must be 0 or more"),
        (["--domain", "book-65536", "--domains.book-65536.sources.0.colour=red"], "colour"),
    ],
)
def test_preview_user_errors_are_one_line(args, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "preview", "--recipe", "demo", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []

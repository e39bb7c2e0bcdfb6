"""Helpers of the pipeline tests: a tiny corpus and recipe that build in seconds (seq_len 1024)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from corpus_files import book_files, corpus_file, plain_name, read_bytes


def make_tiny_corpus(root: Path, corpus: Path) -> Path:
    """books/ (3 real book openings), rows/ (100 Q&A rows + bad lines), repos/ (3 small repos),
    stack/ (4 repositories as The Stack rows spread over 3 files)."""
    books = root / "books"
    books.mkdir(parents=True)
    for src in book_files(corpus / "books")[:3]:
        (books / plain_name(src)).write_bytes(read_bytes(src)[:40_000])
    rows = root / "rows"
    rows.mkdir()
    lines = read_bytes(corpus_file(corpus, "short/qa.jsonl")).splitlines()[:100]
    lines[10:10] = [b'{"id": "broken", "text": ', b'{"id": "x", "body": "no text"}']
    (rows / "qa.jsonl").write_bytes(b"\n".join(lines) + b"\n" + lines[0] + b"\n")  # an exact duplicate
    repos = root / "repos"
    for r in range(3):
        for f in range(4):
            path = repos / f"repo{r}" / f"mod{f}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "".join(f"def f_{r}_{f}_{i}(x):\n    return x * {i} + {r}\n\n" for i in range(40))
            )
    stack = root / "stack"
    stack.mkdir()
    rows = [
        {
            "content": f"# {r}/{f}\n" + "x = 1\n" * 60,
            "max_stars_repo_name": f"org/r{r}",
            "max_stars_repo_path": f"p/{f}.py",
            "lang": "Python",
        }
        for r in range(4)
        for f in range(5)
    ]
    for i in range(3):  # each repository's files spread over the three files
        (stack / f"rows{i}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[i::3]))
    return root


def tiny_recipe(corpus: Path, tokenizer_json: str, **changes) -> dict:
    recipe = {
        "name": "tiny",
        "seq_len": 1024,
        "tokenizer": tokenizer_json,
        "token_budget": 40_000,
        "max_repeat": 3.0,
        "corpus": str(corpus),
        "tasks": 2,
        "domains": [
            {
                "name": "code-512",
                "group": "long",
                "proportion": 0.2,
                "sources": [{"kind": "code_folders", "paths": ["{corpus}/repos"]}],
                "pack": {"mode": "length_binned", "chunk_len": 512},
            },
            {
                "name": "stack-512",
                "group": "long",
                "proportion": 0.1,
                "sources": [{"kind": "code_rows", "paths": ["{corpus}/stack"]}],
                "pack": {"mode": "length_binned", "chunk_len": 512},
            },
            {
                "name": "book-1024",
                "group": "long",
                "proportion": 0.3,
                "sources": [{"kind": "book_files", "paths": ["{corpus}/books"]}],
                "pack": {"mode": "length_binned", "chunk_len": 1024},
            },
            {
                "name": "qa",
                "group": "short",
                "proportion": 0.3,
                "max_tasks": 1,
                "sources": [{"kind": "rows", "paths": ["{corpus}/rows"]}],
            },
            {"name": "arxiv", "group": "short", "proportion": 0.1, "sources": []},
        ],
    }
    recipe.update(changes)
    return recipe


def tree_bytes(root: Path, skip=(".build",)) -> dict[str, bytes]:
    """Every file under `root` (but `skip` folders) -> its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)
    }


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def shards_command(recipe: Path | str, out: Path, *options: str) -> list[str]:
    """The `prolong-data shards` command line, run with this interpreter, plus `options`."""
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "shards",
        "--recipe",
        str(recipe),
        "--out",
        str(out),
        *options,
    ]


def verify_cli(path, capsys) -> tuple[int, str]:
    """(exit status, stdout + stderr) of `prolong-data verify PATH`, which never prints a traceback."""
    from pipelines.cli import main

    code = main(["verify", str(path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out + captured.err

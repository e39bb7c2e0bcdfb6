"""A corpus with real near-duplicates (tests/prolong_data/near_duplicates) and a recipe that
near-deduplicates it, for the near-dedup build tests."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from corpus_files import book_files, plain_name, read_text

PAIRS = Path(__file__).resolve().parents[1] / "prolong_data" / "near_duplicates"
RELEASES = ("pip-23.0.1", "pip-26.3")
MODULES = ("uninstall", "wheel", "lazy_wheel")


def another_edition(book: str) -> str:
    """The same book as another transcription would give it: no Gutenberg header, the lines
    re-wrapped at 50 columns, a producer's note added at the end."""
    body = book[book.index("***", book.index("*** START") + 3) + 3 :]
    paragraphs = [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]
    wrapped = "\n\n".join(textwrap.fill(p, 50) for p in paragraphs)
    return wrapped + "\n\nTranscribed from the 1897 printing by a volunteer.\n"


def make_near_duplicate_corpus(root: Path, corpus: Path) -> Path:
    """books/: three real book openings and a re-wrapped edition of the first; repos/: pip's
    uninstall/wheel/lazy_wheel modules as two repositories (two releases), and freeze.py of each
    release as a repository of its own (a pair below the threshold); stack/: the same as rows."""
    books = root / "books"
    books.mkdir(parents=True)
    for src in book_files(corpus / "books")[:3]:
        (books / plain_name(src)).write_text(read_text(src)[:40_000])
    first = book_files(corpus / "books")[0]
    (books / "edition-b.txt").write_text(another_edition(read_text(first)[:40_000]))
    for release in RELEASES:
        for module in MODULES:
            path = root / "repos" / f"pipmods-{release}" / f"{module}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text((PAIRS / release / f"{module}.py.txt").read_text())
        freeze = root / "repos" / f"freeze-{release}" / "freeze.py"
        freeze.parent.mkdir(parents=True)
        freeze.write_text((PAIRS / release / "freeze.py.txt").read_text())
    write_stack_rows(root / "stack")
    return root


def write_stack_rows(folder: Path) -> None:
    """The same repositories as The Stack rows (`code_rows`), each repository's files spread over
    two input files, so they are whole only after the shuffle by repository."""
    rows = []
    for release in RELEASES:
        for module in (*MODULES, "freeze"):
            repo = f"org/freeze-{release}" if module == "freeze" else f"org/pipmods-{release}"
            content = (PAIRS / release / f"{module}.py.txt").read_text()
            rows.append(
                {"content": content, "max_stars_repo_name": repo, "max_stars_repo_path": f"{module}.py"}
            )
    folder.mkdir(parents=True)
    for i in range(2):
        (folder / f"rows{i}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[i::2]))


def near_dedup_recipe(corpus: Path, tokenizer_json: str, near_dedup: dict | None = None, **changes) -> dict:
    near_dedup = {} if near_dedup is None else near_dedup
    recipe = {
        "name": "near-dedup",
        "seq_len": 1024,
        "tokenizer": tokenizer_json,
        "token_budget": 40_000,
        "max_repeat": 100.0,
        "corpus": str(corpus),
        "tasks": 2,
        "domains": [
            {
                "name": "code-512",
                "group": "long",
                "proportion": 0.3,
                "sources": [{"kind": "code_folders", "paths": ["{corpus}/repos"], "min_files": 1}],
                "pack": {"mode": "length_binned", "chunk_len": 512},
                "near_dedup": near_dedup,
            },
            {
                "name": "stack-512",
                "group": "long",
                "proportion": 0.2,
                "sources": [{"kind": "code_rows", "paths": ["{corpus}/stack"], "min_files": 1}],
                "pack": {"mode": "length_binned", "chunk_len": 512},
                "near_dedup": near_dedup,
            },
            {
                "name": "book-1024",
                "group": "long",
                "proportion": 0.5,
                "sources": [{"kind": "book_files", "paths": ["{corpus}/books"]}],
                "pack": {"mode": "length_binned", "chunk_len": 1024},
                "near_dedup": near_dedup,
            },
        ],
    }
    recipe.update(changes)
    return recipe

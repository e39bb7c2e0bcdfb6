"""Shared fixtures: the sample corpus (the repository's examples/corpus, or $PROLONG_CORPUS) and
the packaged Llama-3 tokenizer. Pure tests need neither; tests that need the corpus get it from
the `corpus` fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_files import book_files, plain_name, read_text, sample_corpus

CORPUS = sample_corpus()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"the sample corpus is missing at {CORPUS}; unset PROLONG_CORPUS to use examples/corpus")
    return CORPUS


@pytest.fixture(scope="session")
def tokenizer_json() -> str:
    """The packaged Llama-3 tokenizer.json (unpacked into the cache folder)."""
    from prolong_data.assets import llama3_folder

    return str(llama3_folder() / "tokenizer.json")


@pytest.fixture(scope="session")
def llama3_tok(tokenizer_json):
    from prolong_data.tokenization import load_tokenizer

    return load_tokenizer(tokenizer_json)


@pytest.fixture(scope="session")
def book_texts(corpus) -> dict[str, str]:
    """Every sample book (training and held-out) as text mode reads it (BOM and Gutenberg header
    kept, line ends as `\n`), by file name without `.gz`."""
    paths = book_files(corpus / "books") + book_files(corpus / "heldout")
    return {plain_name(p): read_text(p) for p in sorted(paths, key=plain_name)}

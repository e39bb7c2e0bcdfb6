"""Shared fixtures: the sample corpus in ../shared/corpus and its Llama-3 tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("PROLONG_CORPUS", REPO.parent / "shared" / "corpus"))
TOKENIZER_JSON = CORPUS / "tokenizer" / "llama3" / "tokenizer.json"


def pytest_collection_modifyitems(config, items):
    if not CORPUS.is_dir():
        raise pytest.UsageError(f"the sample corpus is missing at {CORPUS}; put shared/ beside the repo")


@pytest.fixture(scope="session")
def corpus() -> Path:
    return CORPUS


@pytest.fixture(scope="session")
def tokenizer_json() -> str:
    return str(TOKENIZER_JSON)


@pytest.fixture(scope="session")
def llama3_tok():
    from prolong_data.tokenize import load_tokenizer

    return load_tokenizer(str(TOKENIZER_JSON))


@pytest.fixture(scope="session")
def book_texts() -> dict[str, str]:
    """Every sample book, raw (BOM, CRLF and Gutenberg header kept), by file name."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((CORPUS / "books").glob("*.txt"))}

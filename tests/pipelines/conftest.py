"""Fixtures of the pipeline tests (helpers in pipeline_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pipeline_helpers import make_tiny_corpus, tiny_recipe


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, corpus) -> Path:
    return make_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"), corpus)


@pytest.fixture
def tiny_recipe_file(tmp_path, tiny_corpus, tokenizer_json) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json)))
    return path

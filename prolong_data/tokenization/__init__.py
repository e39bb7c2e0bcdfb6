"""Tokenization: loading a tokenizer (`loading`), exact fast engines (`engines`), and the datatrove
step that turns documents into token ids with BOS/EOS (`step`). docs/tokenizers.md describes them."""

from __future__ import annotations

from prolong_data.tokenization.engines import (
    ENGINE_ORDER,
    Engine,
    build_engine,
    choose_engine,
    split_at_safe_boundaries,
    warm_tokenizer,
    with_boundaries,
)
from prolong_data.tokenization.loading import LoadedTokenizer, TokenizerError, load_tokenizer
from prolong_data.tokenization.step import TokenizedDocument, TokenizeDocuments

__all__ = [
    "ENGINE_ORDER",
    "Engine",
    "LoadedTokenizer",
    "TokenizeDocuments",
    "TokenizedDocument",
    "TokenizerError",
    "build_engine",
    "choose_engine",
    "load_tokenizer",
    "split_at_safe_boundaries",
    "warm_tokenizer",
    "with_boundaries",
]

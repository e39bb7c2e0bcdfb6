"""Fixtures of the evaluation tests: the Llama-3 tokenizer as an HF folder, a second (tiny BPE)
tokenizer, held-out books, and a tiny random Llama saved like an export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HELDOUT_BOOKS = ("pg1661", "pg84")
"""Sherlock Holmes and Frankenstein: the books the demo recipes keep out of training."""


def heldout_sources(corpus: Path) -> list[Path]:
    """The held-out books of the corpus: its ``heldout/`` folder, else those two books under ``books/``."""
    folder = corpus / "heldout"
    if folder.is_dir():
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("README"))
    return sorted(p for p in (corpus / "books").iterdir() if p.name.startswith(HELDOUT_BOOKS))


@pytest.fixture(scope="session")
def heldout_dir(corpus, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("heldout")
    for path in heldout_sources(corpus):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="session")
def llama3_dir(tokenizer_json, tmp_path_factory) -> Path:
    """An AutoTokenizer folder of the Llama-3 tokenizer, with its chat template."""
    from transformers import PreTrainedTokenizerFast

    from prolong_data.chat import LLAMA3_TEMPLATE

    tok = PreTrainedTokenizerFast(
        tokenizer_file=tokenizer_json, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    )
    tok.chat_template = LLAMA3_TEMPLATE
    folder = tmp_path_factory.mktemp("llama3")
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def llama3(llama3_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(llama3_dir)


@pytest.fixture(scope="session")
def small_bpe(heldout_dir):
    """A second, very different tokenizer: byte-level BPE with a 600-token vocabulary trained here on
    the held-out text (no download), with ``<s>``/``</s>`` and no chat template."""
    from corpus_files import small_byte_level_bpe
    from transformers import PreTrainedTokenizerFast

    from prolong_data.evaluation.haystack import read_documents

    bpe = small_byte_level_bpe([d.text[:200_000] for d in read_documents(heldout_dir)])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")


def save_tiny_llama(folder: Path, tokenizer_dir: Path, vocab: int = 128256, seed: int = 0, **shape) -> Path:
    """A random-init LlamaForCausalLM with the Llama-3 vocabulary and tokenizer, saved like an export."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape.get("hidden_size", 32),
        intermediate_size=shape.get("intermediate_size", 64),
        num_hidden_layers=shape.get("num_layers", 2),
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=shape.get("max_positions", 16384),
        bos_token_id=128000,
        eos_token_id=128001,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(llama3_dir, tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), llama3_dir)

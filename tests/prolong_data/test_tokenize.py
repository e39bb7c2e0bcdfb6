"""Exactness of the fast tokenization engines, and tokenizer loading."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prolong_data
from prolong_data.tokenization import TokenizeDocuments, TokenizerError
from prolong_data.tokenization import engines as T


def test_import_prolong_data_does_not_import_torch():
    code = (
        "import sys, prolong_data, prolong_data.tokenization, prolong_data.packing, prolong_data.packing.steps, "
        "prolong_data.mds, prolong_data.inspection, prolong_data.verify, prolong_data.contract, "
        "prolong_data.layout, prolong_data.mixture\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_tokenizer_from_folder_and_missing_path(tokenizer_json, tmp_path):
    from pathlib import Path

    tok = T.load_tokenizer(str(Path(tokenizer_json).parent))
    assert tok.bos_id == 128000 and tok.vocab_size == 128256
    with pytest.raises(TokenizerError, match="no such file or folder"):
        T.load_tokenizer(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("engine", ["gigatoken", "tiktoken", "hf-split"])
def test_fast_engines_equal_whole_document_hf_on_every_book(engine, llama3_tok, book_texts):
    fast = T.build_engine(engine, llama3_tok, threads=2)
    texts = list(book_texts.values())
    for name, got, text in zip(book_texts, fast.encode_batch(texts), texts):
        want = llama3_tok.encode_reference(text)
        assert got.dtype == np.uint32
        assert np.array_equal(got, want), f"{engine} differs from HF on {name}"


@pytest.mark.parametrize("engine", ["gigatoken", "tiktoken"])
def test_fast_engines_from_meta_model_equal_hf_on_books(engine, llama3_tok, book_texts):
    meta = T.load_tokenizer("llama3")
    fast = T.build_engine(engine, meta, threads=2)
    text = book_texts["pg11-alice-s-adventures-in-wonderland.txt"]
    assert np.array_equal(fast.encode_batch([text])[0], llama3_tok.encode_reference(text))


def _short_and_code_texts(corpus) -> list[str]:
    """The first rows of every ShortMix file, and some of this repository's Python sources."""
    import itertools
    from pathlib import Path

    from corpus_files import iter_rows

    texts = []
    for name in ("dict", "instruct", "math", "qa", "wiki"):
        texts += [row["text"] for row in itertools.islice(iter_rows(corpus, f"short/{name}.jsonl"), 150)]
    sources = sorted(Path(prolong_data.__file__).parent.rglob("*.py"))[:20]
    return texts + [p.read_text(encoding="utf-8") for p in sources]


@pytest.mark.parametrize("engine", ["gigatoken", "tiktoken", "hf-split"])
def test_fast_engines_equal_whole_document_hf_on_short_texts_and_code(engine, llama3_tok, corpus):
    texts = _short_and_code_texts(corpus)
    fast = T.build_engine(engine, llama3_tok, threads=2)
    for i, (got, text) in enumerate(zip(fast.encode_batch(texts), texts)):
        assert np.array_equal(got, llama3_tok.encode_reference(text)), f"{engine} differs on text {i}"


def test_special_token_strings_in_text_stay_plain_text(llama3_tok):
    text = "a <|begin_of_text|> b <|eot_id|>\nChapter"
    want = llama3_tok.encode_reference(text)
    assert 128000 not in want.tolist() and 128009 not in want.tolist()
    for name in T.ENGINE_ORDER:
        got = T.build_engine(name, llama3_tok).encode_batch([text])[0]
        assert np.array_equal(got, want), name


_TEXT = st.lists(
    st.sampled_from(list("ab Zé\n\r\t.,'0123456789") + ["\u00a0", "ß", "\n\n", "  ", "\r\n", "Übung"]),
    max_size=200,
).map("".join)


@settings(max_examples=60, deadline=None)
@given(text=_TEXT, piece_chars=st.integers(1, 50))
def test_safe_split_pieces_rebuild_text_and_ids(llama3_tok, text, piece_chars):
    pieces = T.split_at_safe_boundaries(text, piece_chars)
    assert "".join(pieces) == text
    ids = np.concatenate([llama3_tok.encode_reference(p) for p in pieces]) if text else np.zeros(0, np.uint32)
    assert np.array_equal(ids, llama3_tok.encode_reference(text))


def test_choose_engine_falls_back_when_an_engine_disagrees(llama3_tok, monkeypatch, caplog):
    class Broken(T.Engine):
        def encode_batch(self, texts):
            return [np.zeros(1, np.uint32) for _ in texts]

    real = T.build_engine
    monkeypatch.setattr(
        T,
        "build_engine",
        lambda name, tok, threads=1: (
            Broken() if name in ("gigatoken", "tiktoken") else real(name, tok, threads)
        ),
    )
    with caplog.at_level(logging.WARNING):
        engine = T.choose_engine(llama3_tok, ["Hello world\nAgain"])
    assert engine.name == "hf-split"
    assert caplog.text.count("falling back") == 2


def test_gigatoken_is_chosen_for_llama3_and_tiktoken_without_it(llama3_tok, book_texts, monkeypatch):
    sample = [T.split_at_safe_boundaries(t, 20000)[0] for t in book_texts.values()][:2]
    assert T.choose_engine(llama3_tok, sample).name == "gigatoken"
    monkeypatch.setattr(T, "gigatoken_tokenizer", lambda tok: None)  # as if gigatoken were missing
    assert T.choose_engine(llama3_tok, sample).name == "tiktoken"


def test_tokenize_step_adds_bos_and_eos(tokenizer_json, llama3_tok):
    from datatrove.data import Document

    docs = [Document(text="Hello there.\nGeneral Kenobi!", id="a"), Document(text="", id="b")]
    out = list(TokenizeDocuments(tokenizer_json, check_docs=1)(iter(docs)))
    assert [d.id for d in out] == ["a", "b"]
    body = llama3_tok.encode_reference(docs[0].text)
    assert out[0].tokens.tolist() == [128000, *body.tolist(), 128001]
    assert out[1].tokens.tolist() == [128000, 128001]


def test_non_byte_level_tokenizer_skips_tiktoken_and_stays_exact(tmp_path, book_texts):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE(unk_token="[UNK]"))
    hf.normalizer = normalizers.Lowercase()
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    text = book_texts["pg11-alice-s-adventures-in-wonderland.txt"]
    hf.train_from_iterator(
        [text], trainers.BpeTrainer(vocab_size=500, special_tokens=["[UNK]", "<s>", "</s>"])
    )
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    tok = T.load_tokenizer(str(path))
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    assert T.tiktoken_encoding(tok) is None
    engine = T.choose_engine(tok, [text[:5000]])
    assert engine.name != "tiktoken"
    assert np.array_equal(engine.encode_batch([text])[0], tok.encode_reference(text))

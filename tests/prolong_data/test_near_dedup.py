"""The near-dedup steps on real near-duplicates (two pip releases' modules, tests/prolong_data/
near_duplicates) and on the sample books: signature estimates against exact Jaccard, clusters and
`keep`, tokenized documents, and memory that stays flat in a document's length."""

from __future__ import annotations

import itertools
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from prolong_data.config import ConfigError
from prolong_data.near_dedup import (
    EMPTY,
    MinHasher,
    NearDedupConfig,
    choose_removals,
    estimated_similarity,
    text_blocks,
    token_blocks,
    token_bytes,
)

PAIRS = Path(__file__).parent / "near_duplicates"
RELEASES = ("pip-23.0.1", "pip-26.3")


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    """The reference: Jaccard similarity of the sets of word n-grams (lowercased, words by \\w+)."""

    def shingles(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}

    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


@pytest.fixture(scope="module")
def modules() -> dict[str, str]:
    """`release/module` -> the module's text, 8 real files."""
    return {
        f"{release}/{p.name.removesuffix('.py.txt')}": p.read_text()
        for release in RELEASES
        for p in sorted((PAIRS / release).glob("*.py.txt"))
    }


def test_the_estimate_is_within_0_05_of_the_exact_jaccard_on_every_pair(modules):
    # The estimate is the share of equal hashes, a mean of `hashes` Bernoulli(J) draws: its
    # standard deviation is sqrt(J(1-J)/hashes) <= 0.5/sqrt(1024) = 0.0156 with 1024 hashes, so
    # 0.05 is 3.2 standard deviations (a miss has probability ~0.0014 per pair if the hashes are
    # independent; the hashes are seeded, so the test is deterministic). Correlated hash functions
    # or a shingling that differs from the reference would miss by far more.
    hasher = MinHasher(ngram=5, hashes=1024)
    signatures = {k: hasher.signature(text_blocks(t)) for k, t in modules.items()}
    for a, b in itertools.combinations(modules, 2):
        exact = exact_jaccard(modules[a], modules[b])
        assert abs(estimated_similarity(signatures[a], signatures[b]) - exact) <= 0.05, (a, b, exact)


def test_at_the_default_112_hashes_the_near_duplicate_pairs_pass_and_the_others_do_not(modules):
    # With 112 hashes the deviation is <= sqrt(0.9 * 0.1 / 112) = 0.028 at J ~ 0.9: the three
    # pairs (J 0.89-0.91) estimate above 0.8 and freeze.py (J 0.67) below it by > 4 deviations.
    config = NearDedupConfig()
    hasher = MinHasher(config.ngram, config.hashes)
    signatures = {k: hasher.signature(text_blocks(t)) for k, t in modules.items()}
    for a, b in itertools.combinations(modules, 2):
        same_module = a.split("/")[1] == b.split("/")[1]
        exact = exact_jaccard(modules[a], modules[b])
        assert (exact >= 0.85) == (same_module and a.split("/")[1] != "freeze"), (a, b, exact)
        estimate = estimated_similarity(signatures[a], signatures[b])
        assert (estimate >= config.threshold) == (exact >= 0.85), (a, b, exact, estimate)


def _removals(texts: dict[str, str], config: NearDedupConfig) -> dict[str, str]:
    hasher = MinHasher(config.ngram, config.hashes)
    ids = sorted(texts)
    records = [{"id": i, "length": len(texts[i])} for i in ids]
    signatures = np.stack([hasher.signature(text_blocks(texts[i])) for i in ids])
    return {r["removed"]: r["kept"] for r in choose_removals(records, signatures, config)}


def test_clusters_keep_the_longest_or_the_first_and_leave_a_pair_below_the_threshold(modules):
    longest = _removals(modules, NearDedupConfig(keep="longest"))
    expected = {}
    for module in ("uninstall", "wheel", "lazy_wheel"):
        old, new = f"pip-23.0.1/{module}", f"pip-26.3/{module}"
        kept, removed = (old, new) if len(modules[old]) >= len(modules[new]) else (new, old)
        expected[removed] = kept
    assert longest == expected
    assert "pip-23.0.1/freeze" not in longest and "pip-26.3/freeze" not in longest
    first = _removals(modules, NearDedupConfig(keep="first"))
    assert first == {f"pip-26.3/{m}": f"pip-23.0.1/{m}" for m in ("uninstall", "wheel", "lazy_wheel")}


def test_a_re_wrapped_edition_of_a_book_is_found_and_other_books_are_not(book_texts):
    names = sorted(book_texts)[:4]
    texts = {n: book_texts[n][:200_000] for n in names}
    book = texts[names[0]]
    body = book[book.index("***", book.index("*** START") + 3) + 3 :]
    texts["edition"] = "\n".join(" ".join(body.split()[i : i + 9]) for i in range(0, len(body.split()), 9))
    assert exact_jaccard(book, texts["edition"]) > 0.95
    assert _removals(texts, NearDedupConfig()) == {"edition": names[0]}  # the original is longer


def test_an_id_that_occurs_twice_is_never_removed_and_texts_without_words_are_never_paired():
    config = NearDedupConfig()
    hasher = MinHasher(config.ngram, config.hashes)
    same = hasher.signature(text_blocks("one two three four five six seven"))
    records = [{"id": "a", "length": 1}, {"id": "a", "length": 2}, {"id": "b", "length": 3}]
    removed = choose_removals(records, np.stack([same, same, same]), config)
    assert [(r["removed"], r["kept"]) for r in removed] == []  # b and an `a` cluster: `a` cannot be named
    empty = hasher.signature(text_blocks("... --- !!!"))
    assert (empty == EMPTY).all()
    records = [{"id": "x", "length": 3}, {"id": "y", "length": 3}]
    assert choose_removals(records, np.stack([empty, empty]), config) == []


def test_short_texts_and_block_boundaries(book_texts):
    hasher = MinHasher(5, 112)
    short = hasher.signature(text_blocks("Call me Ishmael"))
    assert (short != EMPTY).all()  # one shingle of its three words
    assert not np.array_equal(short, hasher.signature(text_blocks("Call me Ahab")))
    text = next(iter(book_texts.values()))[:300_000]
    whole = hasher.signature(text_blocks(text))
    for size in (1, 7, 4096, 65_537):  # words and n-grams cut between blocks count once
        assert np.array_equal(hasher.signature(text_blocks(text, size)), whole)


def test_tokenized_documents_shingle_the_words_rebuilt_from_their_ids(book_texts, llama3_tok, tokenizer_json):
    text = next(iter(book_texts.values()))[:100_000]
    tokens = llama3_tok.encode_reference(text)
    table = token_bytes(tokenizer_json)
    hasher = MinHasher(5, 112)
    from_ids = hasher.signature(token_blocks(tokens, table, size=1001))
    # the ids map back to the text exactly (curly quotes cut between blocks included), so the
    # signatures are equal: a re-tokenized edition matches as its text would
    assert not text.isascii() and "".join(token_blocks(tokens, table, size=1001)) == text
    assert np.array_equal(from_ids, hasher.signature(text_blocks(text)))


@pytest.mark.slow
def test_a_30_mb_document_keeps_the_signature_memory_flat(book_texts):
    books = "\n".join(book_texts.values())  # ~7 MB of real text
    small = books[:3_000_000]
    big = (books * (30_000_000 // len(books) + 1))[:30_000_000]
    hasher = MinHasher(5, 112)

    def peak(text: str) -> int:
        tracemalloc.start()
        hasher.signature(text_blocks(text))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small_peak, big_peak = peak(small), peak(big)
    # What one block holds, whatever the length: its text and lowercased copy (2 x 1M chars, up to
    # 4 bytes each: 8 MB), its words (~200K str of ~55 bytes and a list: 12 MB), their hashes and
    # n-gram hashes (~5 arrays of 200K x 8 bytes: 8 MB), one minhash matrix (112 x 4096 x 8 bytes:
    # 3.7 MB) and the word cache (<= 65,536 entries of ~150 bytes: 10 MB): < 48 MB in all. A step
    # that held the document's words or shingles would need > 30M x 8 bytes = 240 MB here.
    assert big_peak < 48e6, big_peak
    # 10x the length, the same memory: only the word cache grows with a text's vocabulary, to at
    # most 65,536 entries (~150 bytes each: 10 MB)
    assert big_peak < small_peak + 12e6, (small_peak, big_peak)


def test_bad_settings_are_refused_with_the_field_named():
    from pipelines.recipe import DomainConfig
    from prolong_data.config import from_dict

    with pytest.raises(ConfigError, match="threshold must be in"):
        from_dict(
            DomainConfig, {"name": "d", "group": "long", "proportion": 1, "near_dedup": {"threshold": 1.5}}
        )
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(
            DomainConfig, {"name": "d", "group": "long", "proportion": 1, "near_dedup": {"keep": "last"}}
        )


def test_the_s_curve_of_the_defaults():
    config = NearDedupConfig()
    assert config.candidate_probability(0.8) > 0.85  # (1 - (1 - 0.8**8)**14) = 0.92
    assert config.candidate_probability(0.5) < 0.06  # 0.054

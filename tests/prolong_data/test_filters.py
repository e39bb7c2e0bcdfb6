"""Document filters: each drop or repair is counted."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from datatrove.data import Document

from prolong_data.filters import (
    ExactDedupFilter,
    HashSplitFilter,
    MinTokensFilter,
    NonEmptyFilter,
    ValidUtf8Filter,
    quality_filters,
)
from prolong_data.tokenization import TokenizedDocument


def run(step, docs):
    out = list(step.run(iter(docs)))
    return out, {k: v.total for k, v in step.stats.stats.items()}


def test_valid_utf8_repairs_or_drops_lone_surrogates():
    docs = [
        Document(text="ok", id="a"),
        Document(text="bad \ud800 x", id="b"),
        Document(text="pair \ud83d\ude00", id="c"),
    ]
    out, stats = run(ValidUtf8Filter("repair"), [Document(text=d.text, id=d.id) for d in docs])
    assert [d.text for d in out] == ["ok", "bad \ufffd x", "pair 😀"]
    assert stats["repaired_invalid_utf8"] == 2
    out, stats = run(ValidUtf8Filter("drop"), docs)
    assert [d.id for d in out] == ["a"] and stats["dropped_invalid_utf8"] == 2


def test_non_empty_and_dedup():
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(["a", "  \n", "", "b", "a", "b", "c"])]
    out, stats = run(NonEmptyFilter(), docs)
    assert [d.text for d in out] == ["a", "b", "a", "b", "c"] and stats["dropped_empty"] == 2
    out, stats = run(ExactDedupFilter(), out)
    assert [d.id for d in out] == ["0", "3", "6"] and stats["dropped_duplicate"] == 2


def test_hash_split_partitions_documents():
    docs = [Document(text="x", id=f"doc{i}") for i in range(200)]
    halves = [run(HashSplitFilter(2, [k]), docs)[0] for k in (0, 1)]
    assert sorted(d.id for h in halves for d in h) == sorted(d.id for d in docs)
    assert 60 < len(halves[0]) < 140
    with pytest.raises(ValueError, match="bucket"):
        HashSplitFilter(2, [2])


def test_min_tokens():
    docs = [TokenizedDocument(id=str(n), tokens=np.zeros(n, np.uint32)) for n in (3, 10, 2, 50)]
    out, stats = run(MinTokensFilter(10), docs)
    assert [d.id for d in out] == ["10", "50"]
    assert stats["dropped_too_short"] == 2 and stats["dropped_too_short_tokens"] == 5


def test_quality_filters_names_and_missing_spacy(monkeypatch):
    with pytest.raises(ValueError, match="unknown quality filters"):
        quality_filters(["nope"])
    assert quality_filters([]) == []
    assert len(quality_filters(["gopher_quality", "c4", "fineweb", "gopher_repetition"])) == 4
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "spacy" else real_find_spec(name, *a)
    )
    with pytest.raises(ValueError, match=r"prolong-data\[quality\]"):
        quality_filters(["gopher_quality"])


def test_quality_filters_keep_prose_and_drop_junk(corpus):

    from corpus_files import iter_rows

    prose = [
        row["text"] for row in list(iter_rows(corpus, "short/qa.jsonl"))[1:4]
    ]  # answers that pass Gopher
    junk = ["{} ## $$ %% ^^ && ** !! ?? <> [] () {}\n" * 50, "buy buy buy buy buy buy " * 100]
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(prose + junk)]
    for name in ("gopher_quality", "gopher_repetition"):
        (step,) = quality_filters([name])
        out, stats = run(step, docs)
        kept = {d.id for d in out}
        assert {"3", "4"}.isdisjoint(kept), name  # the junk goes
        assert len(kept) >= 2, name  # real prose mostly stays
        assert stats["dropped"] == len(docs) - len(kept), name


def test_exclusion_writer_keeps_what_a_filter_removed(tmp_path):
    import gzip
    import json

    from datatrove.pipeline.writers import JsonlWriter

    docs = [Document(text=t, id=str(i)) for i, t in enumerate(["a", "b", "a", " ", "a"])]
    removed = tmp_path / "removed"
    dedup = ExactDedupFilter(exclusion_writer=JsonlWriter(str(removed / "dedup"), "${rank}.jsonl.gz"))
    non_empty = NonEmptyFilter(exclusion_writer=JsonlWriter(str(removed / "empty"), "${rank}.jsonl.gz"))
    out = list(dedup.run(non_empty.run(iter(docs), rank=3), rank=3))
    assert [d.id for d in out] == ["0", "1"]
    rows = {
        name: [json.loads(line) for line in gzip.open(removed / name / "00003.jsonl.gz", "rt")]
        for name in ("dedup", "empty")
    }
    assert [(r["id"], r["metadata"]["filter_reason"]) for r in rows["dedup"]] == [
        ("2", "duplicate"),
        ("4", "duplicate"),
    ]
    assert [(r["id"], r["text"]) for r in rows["empty"]] == [("3", " ")]
    # counts are the same with or without a writer
    assert {k: v.total for k, v in dedup.stats.stats.items()}["dropped_duplicate"] == 2

"""The evaluation index and the excise/drop step on real text: the sample books, the held-out
books of `prolong-data eval`, JSONL and parquet rows with nested fields."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from datatrove.data import Document

from prolong_data.decontaminate import (
    Decontaminate,
    DecontaminateConfig,
    EvalSetError,
    build_index,
    index_file,
    read_touched,
)


def run_step(
    tmp_path: Path, config: DecontaminateConfig, docs: list[Document]
) -> tuple[list[Document], list[dict]]:
    folder = tmp_path / "decontaminate"
    build_index(config).save(index_file(folder))
    step = Decontaminate(str(folder), config, "books")
    kept = list(step.run(iter(docs), rank=0, world_size=1))
    return kept, read_touched(folder, 1)


def reference_excise(text: str, start: int, stop: int, margin: int) -> str:
    """The text with words [start - margin, stop + margin) cut, from the first cut word to the
    first word after the cut: the simple reference of `excise`."""
    spans = [m.span() for m in re.finditer(r"\w+", text)]
    a, b = max(start - margin, 0), min(stop + margin, len(spans))
    begin = spans[a][0] if a else 0
    end = spans[b][0] if b < len(spans) else len(text)
    return text[:begin] + text[end:]


def test_excise_cuts_the_matched_passage_and_the_margins_and_nothing_else(tmp_path, book_texts):
    text = list(book_texts.values())[0][:150_000]
    spans = [m.span() for m in re.finditer(r"\w+", text)]
    start, stop = 5000, 5300  # a 300-word passage, re-wrapped and upper-cased in the evaluation set
    passage = text[spans[start][0] : spans[stop - 1][1]]
    evals = tmp_path / "evals.jsonl"
    evals.write_text(
        json.dumps({"context": [["intro", passage.upper().replace("\n", " ")]], "question": "q"}) + "\n"
    )
    config = DecontaminateConfig(paths=[str(evals)], fields=["context", "question"])
    other = list(book_texts.values())[1][:100_000]
    kept, touched = run_step(tmp_path, config, [Document(text, "a"), Document(other, "b")])
    assert kept[0].text == reference_excise(text, start, stop, config.margin_words)
    assert kept[1].text == other  # no 13 words in common with the passage
    assert touched == [
        {
            "domain": "books",
            "id": "a",
            "eval_set": "evals.jsonl",
            "matched_ngrams": stop - start - config.ngram + 1,
            "characters_removed": len(text) - len(kept[0].text),
            "action": "excised",
        }
    ]


def test_drop_and_max_matched_fraction(tmp_path, book_texts):
    text = list(book_texts.values())[0][:20_000]
    evals = tmp_path / "evals.txt"
    evals.write_text(text[: len(text) * 6 // 10])  # 60% of the document
    for config, action in [
        (DecontaminateConfig(paths=[str(evals)]), "dropped"),  # 60% > max_matched_fraction 0.5
        (DecontaminateConfig(paths=[str(evals)], max_matched_fraction=0.7), "excised"),
        (DecontaminateConfig(paths=[str(evals)], action="drop", max_matched_fraction=0.7), "dropped"),
    ]:
        kept, touched = run_step(
            tmp_path / action / str(config.max_matched_fraction), config, [Document(text, "a")]
        )
        assert [t["action"] for t in touched] == [action]
        assert len(kept) == (action == "excised")


def test_the_held_out_books_of_eval_are_an_evaluation_set_as_they_are(tmp_path, corpus, book_texts):
    index = build_index(DecontaminateConfig(paths=[str(corpus / "heldout")]))
    assert sorted(index.names) == sorted(p.name for p in (corpus / "heldout").iterdir())
    frankenstein = next(t for name, t in book_texts.items() if "frankenstein" in name)
    middle = frankenstein[200_000:203_000]
    training = list(book_texts.values())[0][:50_000] + middle + list(book_texts.values())[0][50_000:90_000]
    config = DecontaminateConfig(paths=[str(corpus / "heldout")])
    kept, touched = run_step(tmp_path, config, [Document(training, "mixed")])
    assert touched[0]["eval_set"].startswith("pg84-frankenstein") and touched[0]["action"] == "excised"
    assert middle[1000:1200] not in kept[0].text
    # the Gutenberg licence shared by every book is not evaluation text (cleaned as books are)
    _, clean = run_step(tmp_path / "other", config, [Document(list(book_texts.values())[0], "alice")])
    assert clean == []


def test_parquet_rows_and_nested_fields(tmp_path, book_texts):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    words = list(book_texts.values())[0].split()
    table = pa.table({"answers": [[" ".join(words[3000:3100])], []], "context": ["x", "y"]})
    pq.write_table(table, tmp_path / "set.parquet")
    index = build_index(
        DecontaminateConfig(paths=[str(tmp_path / "set.parquet")], fields=["answers", "context"])
    )
    found = re.findall(r"\w+", " ".join(words[3000:3100]).lower())
    assert len(index.hashes) == len({tuple(found[i : i + 13]) for i in range(len(found) - 12)})
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(EvalSetError, match="broken.parquet is not a readable parquet file"):
        build_index(DecontaminateConfig(paths=[str(tmp_path / "broken.parquet")]))


def test_the_index_digest_follows_the_evaluation_text(tmp_path):
    path = tmp_path / "set.txt"
    path.write_text("one two three four five six seven eight nine ten eleven twelve thirteen fourteen")
    config = DecontaminateConfig(paths=[str(path)])
    first = build_index(config).digest()
    assert build_index(config).digest() == first
    path.write_text(path.read_text() + " fifteen")
    assert build_index(config).digest() != first
    with pytest.raises(EvalSetError, match="does not exist"):
        build_index(DecontaminateConfig(paths=[str(tmp_path / "missing")]))


def test_dropped_documents_go_to_the_exclusion_writer(tmp_path, book_texts):
    import gzip

    from datatrove.pipeline.writers import JsonlWriter

    text = list(book_texts.values())[0][:20_000]
    evals = tmp_path / "evals.txt"
    evals.write_text(text)
    config = DecontaminateConfig(paths=[str(evals)], action="drop")
    folder = tmp_path / "decontaminate"
    build_index(config).save(index_file(folder))
    writer = JsonlWriter(str(tmp_path / "removed"), output_filename="${rank}.jsonl.gz")
    step = Decontaminate(str(folder), config, "books", exclusion_writer=writer)
    assert list(step.run(iter([Document(text, "a"), Document("nothing in common here", "b")]))) != []
    rows = [json.loads(x) for f in (tmp_path / "removed").glob("*.jsonl.gz") for x in gzip.open(f, "rt")]
    assert [(r["id"], r["metadata"]["filter_reason"]) for r in rows] == [("a", "evaluation_text")]


def test_word_spans_map_back_where_lowercasing_changes_lengths():
    from prolong_data.decontaminate import word_spans, words_of

    text = "Ab İstanbul cd  ÉÉ x"  # "İ" lowercases to "i" and a combining dot: two characters
    spans = word_spans(text)
    assert len(spans) == len(words_of(text))
    assert [text[a:b] for a, b in spans] == ["Ab", "İ", "stanbul", "cd", "ÉÉ", "x"]

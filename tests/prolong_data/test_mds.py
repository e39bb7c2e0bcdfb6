"""Books -> shards -> `streaming.StreamingDataset` -> the exact token stream back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prolong_data.mds import MDSShardWriter, finalize_domain, read_manifest
from prolong_data.packing.steps import PackConcat, PackLengthBinned
from prolong_data.tokenization import TokenizeDocuments

SEQ_LEN = 8192


def write_jsonl(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"id": f"{path.stem}-{i}", "text": text}) + "\n")


def build_domain(src, out, steps_after_tokenize, tokenizer, tasks, domain="book"):
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader

    pipeline = [JsonlReader(str(src)), TokenizeDocuments(tokenizer), *steps_after_tokenize]
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(out / "_logs")).run()
    return finalize_domain(out / domain, {"seq_len": SEQ_LEN, "domain": domain})


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_books_round_trip_through_streaming_dataset(
    tmp_path, book_texts, llama3_tok, tokenizer_json, compression
):
    from streaming import StreamingDataset

    names = sorted(book_texts)[:4]
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(src / "a.jsonl", [book_texts[n] for n in names[:2]])
    write_jsonl(src / "b.jsonl", [book_texts[n] for n in names[2:]])
    dom = tmp_path / "out" / "book"
    manifest = build_domain(
        src,
        tmp_path / "out",
        [
            PackConcat(SEQ_LEN, report_folder=str(dom)),
            MDSShardWriter(str(dom), "book", SEQ_LEN, compression=compression),
        ],
        tokenizer_json,
        tasks=2,
    )

    def doc(text):
        return np.concatenate([[128000], llama3_tok.encode_reference(text), [128001]]).astype(np.uint32)

    want = []
    for rank_names in (names[:2], names[2:]):  # one input file per rank, ranks merged in order
        stream = np.concatenate([doc(book_texts[n]) for n in rank_names])
        want.append(stream[: len(stream) // SEQ_LEN * SEQ_LEN])
    want = np.concatenate(want)

    ds = StreamingDataset(local=str(dom), shuffle=False, batch_size=1)
    rows = [ds[i] for i in range(len(ds))]
    got = np.concatenate([r["input_ids"] for r in rows])
    assert got.dtype == np.uint32
    assert np.array_equal(got, want)
    assert all(r["length"] == SEQ_LEN and r["domain"] == "book" for r in rows)
    assert manifest["packing"]["tokens_out"] == len(want)
    assert manifest["packing"]["documents"] == 4
    assert read_manifest(dom)["seq_len"] == SEQ_LEN


def test_length_binned_domain_one_chunk_per_sequence(tmp_path, book_texts, llama3_tok, tokenizer_json):
    from streaming import StreamingDataset

    texts = [book_texts["pg11-alice-s-adventures-in-wonderland.txt"], book_texts["pg84-frankenstein.txt"]]
    src = tmp_path / "src"
    src.mkdir()
    write_jsonl(src / "a.jsonl", texts)
    dom = tmp_path / "out" / "book-32768"
    build_domain(
        src,
        tmp_path / "out",
        [
            PackLengthBinned(32768, 32768, report_folder=str(dom)),
            MDSShardWriter(str(dom), "book-32768", 32768),
        ],
        tokenizer_json,
        tasks=1,
        domain="book-32768",
    )
    ds = StreamingDataset(local=str(dom), shuffle=False, batch_size=1)
    want = []
    for text in texts:
        tokens = np.concatenate([[128000], llama3_tok.encode_reference(text), [128001]]).astype(np.uint32)
        want += [tokens[i : i + 32768] for i in range(0, len(tokens) - 32767, 32768)]
    assert len(ds) == len(want)
    for i, chunk in enumerate(want):
        assert np.array_equal(ds[i]["input_ids"], chunk)
        assert ds[i]["indices"].tolist() == [[0, 32768]]

"""`verify` catches broken shards; `inspect` reports what is there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.cli import main
from prolong_data.contract import PRETRAIN_COLUMNS, ShardError
from prolong_data.inspection import summarize
from prolong_data.mds import write_manifest
from prolong_data.verify import verify

SEQ_LEN = 64


def good_row(seq_len=SEQ_LEN, spans=((0, 10), (10, 64))):
    return {
        "input_ids": np.arange(seq_len, dtype=np.uint32),
        "indices": np.asarray(spans, np.uint32),
        "domain": "d",
        "length": seq_len,
    }


def write_folder(folder, rows, columns=PRETRAIN_COLUMNS, seq_len=SEQ_LEN):
    from streaming import MDSWriter

    with MDSWriter(out=str(folder), columns=columns) as w:
        for row in rows:
            w.write(row)
    write_manifest(folder, {"seq_len": seq_len, "tokenizer": {"name": None}})
    return folder


def test_verify_accepts_good_shards_and_counts(tmp_path, capsys):
    write_folder(tmp_path / "d", [good_row(), good_row(spans=((0, 64),))])
    report = verify(tmp_path)
    assert (report.folders, report.samples, report.tokens) == (1, 2, 128)
    assert main(["verify", str(tmp_path)]) == 0
    assert "verify OK" in capsys.readouterr().out


@pytest.mark.parametrize(
    "label, rows, columns, message",
    [
        (
            "wrong dtype",
            [{**good_row(), "input_ids": np.arange(SEQ_LEN, dtype=np.int64)}],
            {**PRETRAIN_COLUMNS, "input_ids": "ndarray:int64"},
            "column 'input_ids' is 'ndarray:int64'",
        ),
        (
            "gap in spans",
            [good_row(), good_row(spans=((0, 10), (12, 64)))],
            PRETRAIN_COLUMNS,
            "sample 1: spans 0 and 1 are not contiguous",
        ),
        (
            "short sequence",
            [good_row(), good_row(), {**good_row(40, ((0, 40),))}],
            PRETRAIN_COLUMNS,
            "sample 2: sequence has 40 tokens",
        ),
        (
            "spans short of the end",
            [good_row(spans=((0, 10), (10, 60)))],
            PRETRAIN_COLUMNS,
            "sample 0: spans cover \\[0, 60\\)",
        ),
        ("length column lies", [{**good_row(), "length": 63}], PRETRAIN_COLUMNS, "length column says 63"),
    ],
)
def test_verify_names_the_first_bad_sample(tmp_path, capsys, label, rows, columns, message):
    write_folder(tmp_path / "d", rows, columns)
    with pytest.raises(ShardError, match=message):
        verify(tmp_path / "d")
    assert main(["verify", str(tmp_path)]) == 1, label
    assert "verify FAILED" in capsys.readouterr().err


def test_verify_checks_sft_masks(tmp_path):
    columns = {**PRETRAIN_COLUMNS, "mask": "ndarray:uint8"}
    bad = {**good_row(), "mask": np.full(SEQ_LEN - 1, 1, np.uint8)}
    write_folder(tmp_path / "d", [{**good_row(), "mask": np.ones(SEQ_LEN, np.uint8)}, bad], columns)
    with pytest.raises(ShardError, match="sample 1: mask must be uint8 with 64 entries"):
        verify(tmp_path / "d")


def test_verify_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        verify(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert main(["verify", str(tmp_path / "empty")]) == 2  # not a shard folder: a user error


def test_inspect_prints_table_histogram_png_and_decoded_sample(tmp_path, capsys, tokenizer_json, llama3_tok):
    ids = llama3_tok.encode_reference("It was the best of times, it was the worst of times. " * 8)
    ids = np.concatenate([[128000], ids])[:SEQ_LEN].astype(np.uint32)
    row = {**good_row(), "input_ids": ids}
    write_folder(tmp_path / "book-64", [row, good_row()])
    summary = summarize(tmp_path / "book-64")
    assert (summary.sequences, summary.tokens, summary.spans) == (2, 128, 4)
    png = tmp_path / "h.png"
    assert (
        main(["inspect", str(tmp_path), "--sample", "0", "--tokenizer", tokenizer_json, "--png", str(png)])
        == 0
    )
    out = capsys.readouterr().out
    assert "book-64" in out and "span lengths" in out
    assert "It was the best of times" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "book-64" / "manifest.json").read_text())["seq_len"] == SEQ_LEN

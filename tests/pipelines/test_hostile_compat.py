"""Hostile combinations of shards and tokenizers: re-packing (`tokenized` sources) shards made with
another tokenizer or declared in another encoding is refused before anything is written, with one
line naming the folder (and shard, column or both tokenizers); `verify` reports tokens that are no
ids of their tokenizer and a `mixture.json` of another shape, without a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from corpus_files import small_byte_level_bpe
from pipeline_helpers import read_json, tiny_recipe, verify_cli

from pipelines.cli import main
from prolong_data.contract import PRETRAIN_COLUMNS
from prolong_data.mds_format import NativeMDSWriter
from prolong_data.sources.tokenized import TokenizedShardsReader

BOOK = "book-1024"


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory, tiny_corpus) -> str:
    """A byte-level BPE tokenizer.json with 600 ids (`<s>` 0, `</s>` 1), trained on the tiny books."""
    texts = [p.read_text(errors="replace") for p in sorted((tiny_corpus / "books").iterdir())]
    bpe = small_byte_level_bpe(texts)
    path = tmp_path_factory.mktemp("small_tok") / "tokenizer.json"
    bpe.save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_corpus, tokenizer_json) -> Path:
    """A finished Llama-3 build of the tiny recipe (the source of the re-packs)."""
    root = tmp_path_factory.mktemp("compat")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json)))
    out = root / "out"
    assert main(["shards", "--recipe", str(recipe), "--out", str(out), "--workers", "2"]) == 0
    return out


@pytest.fixture
def source(built, tmp_path) -> Path:
    """A copy of the build's book domain folder, to tamper with."""
    return Path(shutil.copytree(built / BOOK, tmp_path / "src" / BOOK))


def repack(tmp_path: Path, source: Path, tokenizer: str, capsys) -> tuple[int, str, Path]:
    """Runs `shards` on a recipe re-packing `source` to 512 tokens with `tokenizer`:
    (exit status, stderr, the --out folder)."""
    recipe = {
        "name": "repack",
        "seq_len": 512,
        "tokenizer": tokenizer,
        "token_budget": 10_000,
        "domains": [
            {
                "name": BOOK,
                "group": "long",
                "proportion": 1.0,
                "sources": [{"kind": "tokenized", "paths": [str(source)]}],
            }
        ],
    }
    path = tmp_path / "repack.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    code = main(["shards", "--recipe", str(path), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err, out


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_shards_of_another_tokenizer_are_refused_naming_both(tmp_path, source, small_tokenizer, capsys):
    """Llama-3 shards (ids up to 128,000) under a recipe whose tokenizer has 600 ids."""
    code, err, out = repack(tmp_path, source, small_tokenizer, capsys)
    assert code == 2
    message = one_line(err)
    assert f"tokenized source {source} was made with tokenizer" in message
    assert "(128,256 ids)" in message and "(600 ids)" in message and small_tokenizer in message
    assert not out.exists()  # refused before anything was written


def test_a_folder_without_manifest_is_checked_by_its_ids(tmp_path, source, small_tokenizer, capsys):
    """ProLong's released folders have no manifest: the first sample's ids tell the tokenizer."""
    (source / "manifest.json").unlink()
    code, err, out = repack(tmp_path, source, small_tokenizer, capsys)
    assert code == 2
    message = one_line(err)
    assert f"tokenized source {source}: shard rank-00000/shard.00000.mds holds token id" in message
    assert "(600 ids)" in message and not out.exists()


@pytest.mark.parametrize("encoding", ["ndarray:float32", "ndarray:uint16", "ndarray:int64", "str"])
def test_an_index_declaring_another_encoding_is_refused(tmp_path, source, tokenizer_json, capsys, encoding):
    """`input_ids` declared as float32 over the uint32 bytes read as all-zero tokens (exit 0 and
    `verify` OK before); uint16 and int64 read garbage. Refused, naming the shard and column."""
    index = read_json(source / "index.json")
    shard = index["shards"][-1]
    names = shard["column_names"]
    shard["column_encodings"][names.index("input_ids")] = encoding
    (source / "index.json").write_text(json.dumps(index))
    code, err, out = repack(tmp_path, source, tokenizer_json, capsys)
    assert code == 2
    message = one_line(err)
    basename = shard["raw_data"]["basename"]
    assert f"shard {basename} declares column 'input_ids' as '{encoding}'" in message
    assert "'ndarray:uint32'" in message and not out.exists()


def test_the_same_tokenizer_still_repacks(tmp_path, source, tokenizer_json, capsys):
    code, _, out = repack(tmp_path, source, tokenizer_json, capsys)
    assert code == 0 and main(["verify", str(out)]) == 0
    manifest = read_json(out / BOOK / "manifest.json")
    assert manifest["stats"]["tokenized shards"].get("bad_malformed_shard", 0) == 0


def test_sequences_with_ids_outside_the_vocabulary_are_counted_and_skipped(tmp_path, small_tokenizer):
    """A folder whose first sample fits the recipe tokenizer but a later one does not."""
    folder = tmp_path / "mixed"
    rows = [np.arange(8) % 600, np.array([5, 6, 700, 7, 8, 9, 10, 11]), np.arange(8) + 100]
    with NativeMDSWriter(folder, PRETRAIN_COLUMNS) as writer:
        for ids in rows:
            writer.write(
                {
                    "input_ids": ids.astype(np.uint32),
                    "indices": np.array([[0, 8]], np.uint32),
                    "domain": "mixed",
                    "length": 8,
                }
            )
    reader = TokenizedShardsReader([str(folder)], rejoin=False, tokenizer=small_tokenizer)
    reader.check()  # the first sample is fine
    documents = list(reader.run())
    assert [d.tokens.tolist() for d in documents] == [rows[0].tolist(), rows[2].tolist()]
    assert reader.bad.counts == {"malformed_shard": 1}
    assert "token id 700" in reader.bad.examples["malformed_shard"][0]["detail"]


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------


@pytest.fixture
def build_copy(built, tmp_path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "build", symlinks=True))


def test_verify_reports_tokens_that_are_no_ids_of_the_recorded_tokenizer(build_copy, capsys):
    """The manifest says the domain was made with a 600-id tokenizer; its tokens go up to 128,000."""
    manifest_path = build_copy / BOOK / "manifest.json"
    manifest = read_json(manifest_path)
    manifest["tokenizer"]["vocab_size"] = 600
    manifest_path.write_text(json.dumps(manifest))
    code, text = verify_cli(build_copy, capsys)
    assert code == 1
    assert "is not an id of the tokenizer (600 ids" in text and f"{BOOK}/rank-" in text
    assert verify_cli(build_copy / "qa", capsys)[0] == 0  # the other domains are fine


def test_verify_passes_a_build_whose_ids_fit(built, capsys):
    code, text = verify_cli(built, capsys)
    assert code == 0 and "verify OK" in text


@pytest.mark.parametrize(
    "content, shape",
    [("[]", "a list of 0 item(s)"), ("null", "null"), ('"x"', "the string 'x'"), ("3", "the number 3")],
)
def test_verify_names_a_mixture_of_another_shape(build_copy, capsys, content, shape):
    (build_copy / "mixture.json").write_text(content)
    code, text = verify_cli(build_copy, capsys)
    assert code == 1
    assert f"mixture.json holds {shape}, not a mixture object" in text


@pytest.mark.parametrize(
    "change, message",
    [
        ({"streams": {"a": 1}}, "`streams` must be a list of objects"),
        ({"streams": [{"domain": "qa"}]}, "stream 0 lacks ['path', 'proportion']"),
        ({"seq_len": "1024"}, "seq_len must be an integer, got the string '1024'"),
    ],
)
def test_verify_names_a_broken_stream_list(build_copy, capsys, change, message):
    data = {**read_json(build_copy / "mixture.json"), **change}
    (build_copy / "mixture.json").write_text(json.dumps(data))
    code, text = verify_cli(build_copy, capsys)
    assert code == 1 and message in text

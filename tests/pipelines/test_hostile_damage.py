"""A finished build damaged in every way we know: `verify` catches each one, names the file,
exits 1 (damage) without a traceback, and says how to repair; `inspect` refuses cleanly.

The build is the tiny recipe with zstd shards, as the shipped stage recipes write them (verify
once failed on every compressed build)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from pipeline_helpers import tiny_recipe, verify_cli

from pipelines.cli import main
from prolong_data.contract import PRETRAIN_COLUMNS
from prolong_data.mds_format import NativeMDSWriter

BOOK = "book-1024"


@pytest.fixture(scope="module")
def zstd_build(tmp_path_factory, tiny_corpus, tokenizer_json) -> Path:
    root = tmp_path_factory.mktemp("zstd")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json, compression="zstd")))
    out = root / "out"
    assert main(["shards", "--recipe", str(recipe), "--out", str(out), "--workers", "2"]) == 0
    return out


@pytest.fixture
def build(zstd_build, tmp_path) -> Path:
    """A fresh copy of the finished build, to damage."""
    return Path(shutil.copytree(zstd_build, tmp_path / "out", symlinks=True))


def test_a_fresh_zstd_build_verifies_and_inspects(zstd_build, capsys, tmp_path):
    code, text = verify_cli(zstd_build, capsys)
    assert code == 0 and "verify OK: 4 folder(s)" in text and "with hashes checked" in text
    index = json.loads((zstd_build / BOOK / "index.json").read_text())
    shard = index["shards"][0]
    assert shard["zip_data"]["hashes"].keys() == {"sha1"} and shard["raw_data"]["hashes"].keys() == {"sha1"}
    assert not list(zstd_build.glob("*/rank-*/*.mds"))  # verify decompressed nothing next to the shards
    assert main(["inspect", str(zstd_build), "--png", str(tmp_path / "h.png")]) == 0
    assert "book-1024" in capsys.readouterr().out


def test_the_build_layout_names_what_a_build_writes(zstd_build):
    from prolong_data.layout import BuildLayout

    layout = BuildLayout(zstd_build)
    for path in (layout.mixture, layout.manifest, layout.recipe, layout.options, layout.report / "report.md"):
        assert path.is_file(), path
    assert (layout.domain(BOOK) / "index.json").is_file() and layout.partitions(BOOK).is_dir()
    assert layout.stats_file("build", BOOK, 1).is_file() and layout.stats_file("read", BOOK, 0).is_file()
    assert layout.completion("read", 0).is_file() and layout.completion("build", 0).is_file()
    assert Path(layout.bad_input_pattern("qa", 0).format(rank=0)).is_file()
    assert sorted(p.name for p in layout.work.iterdir()) == [
        "bad_input",
        "logs",
        "options.json",
        "partitions",
        "stats",
    ]


def _shard(build: Path, domain: str = BOOK) -> Path:
    return sorted((build / domain).glob("rank-*/shard.*.mds.zstd"))[0]


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def truncate_shard(build):
    path = _shard(build)
    path.write_bytes(path.read_bytes()[:-50])
    return path.name


def flip_a_token_byte(build):
    path = _shard(build)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return "fails its sha1 check"


def raise_samples(build):
    _edit_json(
        build / BOOK / "index.json", lambda d: d["shards"][0].update(samples=d["shards"][0]["samples"] + 1)
    )
    return "its index says"


def lower_samples(build):
    _edit_json(
        build / BOOK / "index.json", lambda d: d["shards"][0].update(samples=d["shards"][0]["samples"] - 1)
    )
    return "its index says"


def lower_rank_samples(build):
    path = build / BOOK / "rank-00000" / "index.json"
    _edit_json(path, lambda d: d["shards"][0].update(samples=d["shards"][0]["samples"] - 1))
    return "does not list the shards of its rank folders"


def truncate_index(build):
    path = build / BOOK / "index.json"
    path.write_text(path.read_text()[:200])
    return "book-1024/index.json is not a valid MDS index"


def delete_rank_index(build):
    (build / BOOK / "rank-00001" / "index.json").unlink()
    return "rank-00001/index.json is missing"


def delete_shard(build):
    path = _shard(build)
    path.unlink()
    return f"{path.name} is missing"


def delete_domain_folder(build):
    shutil.rmtree(build / "qa")
    return "stream 'qa' names"


def delete_domain_index(build):
    (build / "qa" / "index.json").unlink()
    return "qa/index.json is missing"


def break_mixture(build):
    _edit_json(build / "mixture.json", lambda d: d["streams"][0].update(proportion=0.9))
    return "mixture.json: not a valid mixture"


def delete_domain_manifest(build):
    (build / BOOK / "manifest.json").unlink()
    return "book-1024/manifest.json is missing"


def lie_in_manifest(build):
    _edit_json(build / "manifest.json", lambda d: d["domains"][BOOK].update(sequences=3))
    return "domain 'book-1024' has 3 sequences"


DAMAGES = [
    truncate_shard,
    flip_a_token_byte,
    raise_samples,
    lower_samples,
    lower_rank_samples,
    truncate_index,
    delete_rank_index,
    delete_shard,
    delete_domain_folder,
    delete_domain_index,
    break_mixture,
    delete_domain_manifest,
    lie_in_manifest,
]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__)
def test_verify_catches_every_damage_names_the_file_and_says_how_to_repair(build, capsys, damage):
    expected = damage(build)
    code, text = verify_cli(build, capsys)
    assert code == 1, text
    assert "verify FAILED" in text and expected in text, text
    assert f"rerun the `prolong-data shards` command that built {build}" in text


def test_a_flipped_byte_is_caught_by_streaming_validate_hash_too(build, tmp_path):
    streaming = pytest.importorskip("streaming")
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    flip_a_token_byte(build)
    dataset = streaming.StreamingDataset(
        remote=str(build / BOOK),
        local=str(tmp_path / "cache"),
        validate_hash="sha1",
        shuffle=False,
        batch_size=1,
    )
    with pytest.raises(ValueError, match="Checksum failure"):  # (iterating logs it from a thread)
        dataset.streams[0].prepare_shard(dataset.shards[0])  # the first shard of rank 0: the flipped one


def test_inspect_on_a_damaged_build_is_a_message(build, capsys, tmp_path):
    truncate_shard(build)
    assert main(["inspect", str(build / BOOK), "--png", str(tmp_path / "h.png")]) == 1
    err = capsys.readouterr().err
    assert "prolong-data verify" in err and "Traceback" not in err


def test_a_sample_in_the_wrong_domain_folder_is_caught(tmp_path, capsys):
    folder = tmp_path / "book-64"
    with NativeMDSWriter(folder, PRETRAIN_COLUMNS, hashes=("sha1",)) as writer:
        for domain in ("book-64", "fineweb-edu"):
            writer.write(
                {
                    "input_ids": np.arange(64, dtype=np.uint32),
                    "indices": np.asarray([[0, 64]], np.uint32),
                    "domain": domain,
                    "length": 64,
                }
            )
    code, text = verify_cli(folder, capsys)
    assert code == 1 and "sample 1: domain column says 'fineweb-edu'" in text


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_verify_on_no_shard_folder_is_a_user_error(tmp_path, capsys, make):
    path = tmp_path / "x"
    if make == "empty":
        path.mkdir()
    elif make == "file":
        path.write_text("not shards")
    code, text = verify_cli(path, capsys)
    assert code == 2 and text.startswith("verify: ")

"""Re-packing a build through `tokenized` sources keeps every token of every domain, in order."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from pipeline_helpers import read_json, tiny_recipe

from pipelines.cli import main
from prolong_data.mds_format import iter_samples, read_index
from prolong_data.mixture import read_mixture
from prolong_data.verify import verify


def repack_recipe(source: dict, src, seq_len: int) -> dict:
    """`source`'s domains and proportions, each reading its own built folder back."""
    domains = []
    for d in source["domains"]:
        new = {k: d[k] for k in ("name", "group", "proportion") if k in d}
        if d["sources"]:
            new["sources"] = [{"kind": "tokenized", "paths": [str(src / d["name"])]}]
            if d.get("pack", {}).get("mode") == "length_binned":
                new["pack"] = {"mode": "length_binned", "chunk_len": min(512, seq_len)}
            new["max_tasks"] = d.get("max_tasks")
        else:
            new["sources"] = []
        domains.append(new)
    return {**source, "name": f"repack-{seq_len}", "seq_len": seq_len, "domains": domains}


def task_streams(folder, tasks: int) -> list[np.ndarray]:
    """The tokens each of `tasks` tasks reads from `folder` (contiguous sample ranges, in order)."""
    total = sum(int(s["samples"]) for s in read_index(folder))
    return [
        np.concatenate(
            [r["input_ids"] for r in iter_samples(folder, t * total // tasks, (t + 1) * total // tasks)]
            or [np.zeros(0, np.uint32)]
        )
        for t in range(tasks)
    ]


def rank_streams(folder) -> list[np.ndarray]:
    """The tokens each rank wrote into a built domain folder."""
    return [
        np.concatenate([r["input_ids"] for r in iter_samples(rank)] or [np.zeros(0, np.uint32)])
        for rank in sorted(folder.glob("rank-*"))
    ]


@pytest.mark.parametrize("seq_len", [512, pytest.param(2048, marks=pytest.mark.slow)])
def test_repack_keeps_every_token_in_order_except_what_the_packer_drops(
    tmp_path, tiny_corpus, tokenizer_json, seq_len
):
    source = tiny_recipe(tiny_corpus, tokenizer_json)
    src, out = tmp_path / "src", tmp_path / "out"
    (tmp_path / "src.yaml").write_text(yaml.safe_dump(source))
    assert main(["shards", "--recipe", str(tmp_path / "src.yaml"), "--out", str(src), "--workers", "1"]) == 0
    recipe = repack_recipe(source, src, seq_len)
    (tmp_path / "repack.yaml").write_text(yaml.safe_dump(recipe))
    assert (
        main(["shards", "--recipe", str(tmp_path / "repack.yaml"), "--out", str(out), "--workers", "1"]) == 0
    )

    assert main(["verify", str(out)]) == 0
    report = verify(out)
    mixture, _ = read_mixture(out)
    assert mixture.seq_len == seq_len
    assert [s.domain for s in mixture.streams] == [s.domain for s in read_mixture(src)[0].streams]
    assert [s.proportion for s in mixture.streams] == pytest.approx(
        [s.proportion for s in read_mixture(src)[0].streams]
    )
    assert report.folders == len(mixture.streams)
    total_dropped = 0
    for domain in recipe["domains"]:
        if not domain["sources"]:
            continue
        name = domain["name"]
        manifest = read_json(out / name / "manifest.json")
        tasks = manifest["tasks"]
        inputs, outputs = task_streams(src / name, tasks), rank_streams(out / name)
        assert len(outputs) == tasks
        for got, want in zip(outputs, inputs):
            assert np.array_equal(got, want[: len(got)]), f"{name}: tokens changed or moved"
        dropped = sum(len(w) - len(g) for g, w in zip(outputs, inputs))
        packing = manifest["packing"]
        counted = packing["dropped_tokens"] + packing.get("dropped_tail_tokens", 0)
        assert dropped == counted, f"{name}: {dropped} tokens dropped, the packer counted {counted}"
        total_dropped += dropped
        if seq_len == 512:  # a divisor of every source sequence: nothing is dropped at all
            assert dropped == 0
        reader = manifest["stats"]["tokenized shards"]
        assert reader["tokens"] == sum(len(w) for w in inputs) and reader["sequences"] > 0
        if name == "book-1024":  # its 1024-token chunks are pieces of longer books: joined again
            assert reader["rejoined_pieces"] > 0 and reader["documents"] < reader["sequences"]
    assert total_dropped > 0 or seq_len == 512  # 2048 does not divide every task's stream

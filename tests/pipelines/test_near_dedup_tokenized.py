"""`near_dedup:` on a `tokenized` source: shards of a build that kept a book and its re-wrapped
edition, re-packed with near-dedup on, lose the edition (words rebuilt from the ids)."""

from __future__ import annotations

import json

import pytest
import yaml
from near_dedup_helpers import make_near_duplicate_corpus, near_dedup_recipe

from pipelines.cli import main

pytestmark = pytest.mark.slow


def test_a_tokenized_domain_loses_the_re_wrapped_edition(tmp_path, corpus, tokenizer_json):
    nd = make_near_duplicate_corpus(tmp_path / "corpus", corpus)
    first = near_dedup_recipe(nd, tokenizer_json, near_dedup=None)
    first["domains"] = [d for d in first["domains"] if d["name"] == "book-1024"]
    first["domains"][0].pop("near_dedup")
    first["domains"][0]["proportion"] = 1.0
    (tmp_path / "books.yaml").write_text(yaml.safe_dump(first))
    assert main(["shards", "--recipe", str(tmp_path / "books.yaml"), "--out", str(tmp_path / "books")]) == 0

    repack = dict(first, name="repack")
    repack["domains"] = [
        {
            "name": "book-1024",
            "group": "long",
            "proportion": 1.0,
            "sources": [{"kind": "tokenized", "paths": [str(tmp_path / "books" / "book-1024")]}],
            "pack": {"mode": "length_binned", "chunk_len": 1024},
            "near_dedup": {},
        }
    ]
    (tmp_path / "repack.yaml").write_text(yaml.safe_dump(repack))
    assert main(["shards", "--recipe", str(tmp_path / "repack.yaml"), "--out", str(tmp_path / "repack")]) == 0
    removed = [
        json.loads(x) for x in (tmp_path / "repack" / "report" / "near_dedup.jsonl").read_text().splitlines()
    ]
    assert len(removed) == 1 and removed[0]["similarity"] >= 0.8 and removed[0]["tokens"] > 5000
    manifest = json.loads((tmp_path / "repack" / "manifest.json").read_text())
    assert manifest["domains"]["book-1024"]["near_dedup"] == {"removed": 1, "tokens": removed[0]["tokens"]}

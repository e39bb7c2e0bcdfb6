"""Recipes: the shipped ones match ProLong's (docs/prolong-recipe.md); overrides and validation."""

from __future__ import annotations

import pytest
import yaml

from pipelines.recipe import load_recipe, recipe_from_dict, recipe_names

STAGE1 = {
    "thestackv1_concat_by_repo-65536": 0.30,
    "book-65536": 0.30,
    "textbooks": 0.03,
    "fineweb-edu": 0.10,
    "fineweb-2023-50": 0.10,
    "stackexchange": 0.04,
    "dolmawiki": 0.04,
    "tuluv2": 0.03,
    "arxiv": 0.03,
    "openwebmath": 0.03,
}
STAGE2 = {
    "thestackv1_concat_by_repo-65536": 0.15,
    "thestackv1_concat_by_repo-524288": 0.15,
    "book-65536": 0.25,
    "book-524288": 0.05,
    **{k: v for k, v in STAGE1.items() if k not in ("thestackv1_concat_by_repo-65536", "book-65536")},
}


def test_shipped_recipes():
    assert recipe_names() == ["demo", "demo-512k", "sft", "sft-demo", "stage1-64k", "stage2-512k"]
    s1, s2, sft, demo = (load_recipe(n) for n in ("stage1-64k", "stage2-512k", "sft", "demo"))
    assert {d.name: d.proportion for d in s1.domains} == STAGE1
    assert {d.name: d.proportion for d in s2.domains} == STAGE2
    assert (s1.seq_len, s2.seq_len, sft.seq_len) == (65536, 524288, 65536)
    assert s1.tokenizer == s2.tokenizer == sft.tokenizer == "llama3"
    assert s1.token_budget == s2.token_budget == 5000 * 64 * 65536
    assert sft.domains[0].pack.mode == "best_fit" and sft.token_budget == 250 * 4 * 2**20
    assert sft.domains[0].sources[0].kind == "chat"
    assert load_recipe("sft-demo").domains[0].sources[0].kind == "chat"
    assert s2.domains[1].pack.chunk_len == 524288 and s2.domains[0].pack.bins == [65536, 524288]
    assert [d.name for d in demo.domains] == list(STAGE1)
    assert demo.seq_len == 65536 and not demo.domains[8].present  # no ArXiv in the sample corpus
    demo512 = load_recipe("demo-512k")
    assert demo512.seq_len == 524288 and [d.name for d in demo512.domains] == list(STAGE2)
    assert {d.name: d.proportion for d in demo512.domains} == STAGE2


def test_demo_mixture_is_stage1_renormalised():
    shares = load_recipe("demo").mixture_proportions()
    assert "arxiv" not in shares and abs(sum(shares.values()) - 1) < 1e-9
    for name, share in shares.items():
        assert share == pytest.approx(STAGE1[name] / 0.97)


def test_long_share_and_proportion_overrides():
    s1 = load_recipe("stage1-64k")
    shares = s1.with_overrides(long_share=0.4).mixture_proportions()
    assert shares["book-65536"] == pytest.approx(0.2) and shares["fineweb-edu"] == pytest.approx(
        0.1 * 0.6 / 0.4
    )
    moved = s1.with_proportions({"fineweb-edu": 0.2}).mixture_proportions()
    assert moved["fineweb-edu"] == pytest.approx(0.2) and moved["book-65536"] == pytest.approx(0.3)
    assert sum(moved.values()) == pytest.approx(1)
    with pytest.raises(ValueError, match="exceeds"):
        s1.with_proportions({"fineweb-edu": 0.5})
    with pytest.raises(ValueError, match="unknown domains"):
        s1.with_proportions({"nope": 0.1})
    with pytest.raises(ValueError, match="long_share"):
        s1.with_overrides(long_share=1.5)


def test_validation_messages_say_what_to_fix():
    data = yaml.safe_load(open(load_recipe.__globals__["RECIPES_DIR"] / "stage1-64k.yaml"))
    data["domains"][0]["proportion"] = 0.5
    with pytest.raises(ValueError, match="sum to 1.200000, not 1.*fix them"):
        recipe_from_dict(data)
    data["domains"][0]["proportion"] = 0.3
    data["domains"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        recipe_from_dict(data)
    del data["domains"][0]["colour"]
    data["domains"][0]["pack"] = {"mode": "length_binned"}
    with pytest.raises(ValueError, match="needs `chunk_len`"):
        recipe_from_dict(data)
    data["domains"][0]["pack"] = {"mode": "length_binned", "chunk_len": 50000}
    with pytest.raises(ValueError, match="not a multiple"):
        recipe_from_dict(data)
    with pytest.raises(ValueError, match="no recipe 'nope'"):
        load_recipe("nope")


def test_resolved_paths(tmp_path):
    demo = load_recipe("demo").resolved(str(tmp_path))
    assert demo.tokenizer == "llama3"
    assert demo.domains[1].sources[0].paths == [f"{tmp_path}/books"]
    assert "{" not in "".join(demo.domains[0].sources[0].paths)

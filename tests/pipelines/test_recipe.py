"""Recipes: the shipped ones match ProLong's (docs/prolong-recipe.md); overrides and validation."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from pipelines.recipe import Recipe, load_recipe, recipe_names, recipe_to_yaml
from prolong_data.config import from_dict

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
    assert recipe_names() == [
        "demo",
        "demo-512k",
        "repack-demo",
        "sft",
        "sft-demo",
        "stage1-64k",
        "stage2-512k",
    ]
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
    shares = dataclasses.replace(s1, long_share=0.4).mixture_proportions()
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
        dataclasses.replace(s1, long_share=1.5)


def test_validation_messages_say_what_to_fix():
    data = yaml.safe_load(open(load_recipe.__globals__["RECIPES_DIR"] / "stage1-64k.yaml"))
    data["domains"][0]["proportion"] = 0.5
    with pytest.raises(ValueError, match="sum to 1.200000, not 1.*fix them"):
        from_dict(Recipe, data)
    data["domains"][0]["proportion"] = 0.3
    data["domains"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="unknown DomainConfig field\\(s\\) \\[.colour.\\]"):
        from_dict(Recipe, data)
    del data["domains"][0]["colour"]
    data["domains"][0]["pack"] = {"mode": "length_binned"}
    with pytest.raises(ValueError, match="needs `chunk_len`"):
        from_dict(Recipe, data)
    data["domains"][0]["pack"] = {"mode": "length_binned", "chunk_len": 50000}
    with pytest.raises(ValueError, match="not a multiple"):
        from_dict(Recipe, data)
    with pytest.raises(ValueError, match="no recipe 'nope'"):
        load_recipe("nope")


def test_resolved_paths(tmp_path):
    demo = load_recipe("demo").resolved(str(tmp_path))
    assert demo.tokenizer == "llama3"
    assert demo.domains[1].sources[0].paths == [f"{tmp_path}/books"]
    assert "{" not in "".join(demo.domains[0].sources[0].paths)


def _shards_recipe(*argv):
    """The recipe `prolong-data shards` would build for this command line."""
    from pipelines.cli import build_parser
    from pipelines.shards import resolve_recipe

    args, extra = build_parser().parse_known_args(["shards", "--out", "x", *argv])
    args.overrides = extra
    return resolve_recipe(args)


def test_shards_command_overrides_any_recipe_field(tmp_path):
    recipe = _shards_recipe(
        "--recipe",
        "demo",
        "--corpus",
        str(tmp_path),
        "--seq_len=32768",
        "--domains.book-65536.pack.chunk_len=32768",
        "--domains.0.pack.chunk_len",
        "32768",
        "--domains.textbooks.max-tasks=2",
        "--token-budget",
        "1000000",
        "--long-share=0.5",
    )
    assert recipe.seq_len == 32768 and recipe.token_budget == 1_000_000 and recipe.long_share == 0.5
    assert recipe.domains[0].pack.chunk_len == recipe.domains[1].pack.chunk_len == 32768
    assert recipe.domains[2].max_tasks == 2
    moved = _shards_recipe(
        "--recipe",
        "demo",
        "--domains.fineweb-edu.proportion=0.05",
        "--domains.fineweb-2023-50.proportion=0.15",
    )
    assert [d.proportion for d in moved.domains[3:5]] == [0.05, 0.15]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--domains.nope.proportion=0.1"], "no item named 'nope'"),
        (["--domains.0.colour=red"], r"unknown DomainConfig field\(s\) \['colour'\]"),
        (["--seq_len=lots"], "seq_len: expected an integer"),
        (["--seq_len=50000"], "not a multiple of chunk_len"),
        (["--domains.3.proportion=0.5"], "sum to 1.400000"),
    ],
)
def test_shards_overrides_are_checked(argv, message):
    with pytest.raises(ValueError, match=message):
        _shards_recipe("--recipe", "demo", *argv)


def test_shards_command_rejects_stray_arguments(capsys):
    from pipelines.cli import main

    with pytest.raises(SystemExit):
        main(["verify", "x", "--seq_len=3"])
    assert "unrecognized arguments: --seq_len=3" in capsys.readouterr().err
    assert main(["shards", "--recipe", "demo", "--out", "x", "stray"]) == 2
    assert "write overrides as --section.field=value" in capsys.readouterr().err


TODAYS_FORMAT = """
# A recipe as users write them: every kind, flow and block style, optional keys left out.
name: hand-written
seq_len: 4096
tokenizer: "{corpus}/tok.json"
token_budget: 1000000
corpus: /data/corpus
compression: zstd
utf8: drop
long_share: 0.6
domains:
  - name: code-4096
    group: long
    proportion: 0.2
    sources:
      - kind: code_folders
        paths: ["{stdlib}", "{purelib}"]
        include: [asyncio, email]
        max_file_bytes: 200000
        min_files: 3
    pack: {mode: length_binned, chunk_len: 4096}
  - name: stack-4096
    group: long
    proportion: 0.2
    sources:
      - {kind: code_rows, paths: ["{corpus}/stack"], glob: "*.jsonl.gz", min_files: 1}
    pack:
      mode: length_binned
      chunk_len: 2048
      bins: [2048, 4096]
      min_tokens: 2048
  - name: books
    group: long
    proportion: 0.2
    sources:
      - {kind: book_files, paths: ["{corpus}/books"], hash_split: [0, 2]}
    pack: {mode: length_binned, chunk_len: 4096}
  - name: slimpajama-books
    group: long
    proportion: 0.0
    sources:
      - kind: rows
        paths: ["{corpus}/slim"]
        keep_where: {meta.redpajama_set_name: RedPajamaBook}
        clean: book
        text_key: content
        id_key: doc_id
  - name: tulu
    group: short
    proportion: 0.2
    dedup: false
    max_tasks: 1
    quality_filters: []
    sources:
      - {kind: rows, paths: ["{corpus}/tulu.jsonl"], render: tulu}
  - name: fineweb
    group: short
    proportion: 0.1
    sources:
      - kind: hub
        dataset: HuggingFaceFW/fineweb-edu
        config: sample-10BT
        split: train
        text_key: text
  - name: local-json
    group: short
    proportion: 0.1
    sources:
      - {kind: hub, dataset: json, data_files: ["{corpus}/x.jsonl"]}
  - name: arxiv
    group: short
    proportion: 0.0
    sources:
  - name: chats
    group: short
    proportion: 0.0
    sources:
      - {kind: chat, paths: ["{corpus}/chat.jsonl"], chat_format: tulu-text, text_key: text}
    pack: {mode: best_fit, too_long: drop}
"""


def test_every_shipped_and_hand_written_recipe_loads_and_round_trips(tmp_path):
    path = tmp_path / "hand.yaml"
    path.write_text(TODAYS_FORMAT)
    recipes = [load_recipe(n) for n in recipe_names()] + [load_recipe(path)]
    for recipe in recipes:
        assert from_dict(Recipe, yaml.safe_load(recipe_to_yaml(recipe))) == recipe
    hand = recipes[-1]
    kinds = [type(s).__name__ for d in hand.domains for s in d.sources]
    assert kinds == [
        "CodeFoldersSource",
        "CodeRowsSource",
        "BookFilesSource",
        "RowsSource",
        "RowsSource",
        "HubSource",
        "HubSource",
        "ChatSource",
    ]
    code, stack, books, slim, tulu, fineweb, local, arxiv, chats = hand.domains
    assert code.sources[0].include == ["asyncio", "email"] and code.sources[0].max_file_bytes == 200_000
    assert stack.pack.bins == [2048, 4096] and stack.sources[0].glob == "*.jsonl.gz"
    assert books.sources[0].hash_split == [0, 2] and slim.sources[0].keep_where == {
        "meta.redpajama_set_name": "RedPajamaBook"
    }
    assert tulu.deduplicates is False and books.deduplicates is True and not arxiv.present
    assert fineweb.sources[0].config == "sample-10BT" and chats.pack.too_long == "drop"
    resolved = hand.resolved()
    assert resolved.tokenizer == "/data/corpus/tok.json"
    assert resolved.domains[6].sources[0].data_files == ["/data/corpus/x.jsonl"]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"sources": [{"kind": "rows", "paths": ["x"], "include": ["y"]}]},
            r"domains.books.sources.0: unknown `rows` source field\(s\) \['include'\]",
        ),
        ({"sources": [{"kind": "chat", "paths": ["x"]}]}, "chat sources need `pack: {mode: best_fit}`"),
        (
            {
                "sources": [
                    {"kind": "rows", "paths": ["x"], "hash_split": [0, 2]},
                    {"kind": "rows", "paths": ["y"]},
                ]
            },
            "hash_split works on a domain with one source",
        ),
        (
            {"sources": [{"kind": "rows", "paths": ["x"]}, {"kind": "code_rows", "paths": ["y"]}]},
            r"kinds \['code_rows', 'rows'\] cannot share a domain",
        ),
        ({"pack": {"mode": "length_binned", "chunk_len": 4096, "bins": [1024]}}, "must be one of the bins"),
        (
            {"pack": {"mode": "pack_tight"}},
            r"pack: pack mode 'pack_tight' is not one of \['best_fit', 'concat', 'length_binned'\]",
        ),
        ({"pack": {"mode": "concat", "chunk_len": 4096}}, r"unknown pack field\(s\) \['chunk_len'\]"),
    ],
)
def test_domain_checks_run_when_the_recipe_loads(tmp_path, change, message):
    data = yaml.safe_load(TODAYS_FORMAT)
    data["domains"][2].update(change)
    with pytest.raises(ValueError, match=message):
        from_dict(Recipe, data)


def test_planning_loads_no_tokenizer(tmp_path, monkeypatch):
    """Planning (and so `--help`-fast failures) never loads a tokenizer, even for best_fit's pad id."""
    import prolong_data.tokenization.loading as tokenize
    from pipelines.build import plan_domain
    from prolong_data.layout import BuildLayout
    from prolong_data.packing.registry import pack_modes

    monkeypatch.setattr(tokenize, "_load_tokenizer_cached", lambda *a: pytest.fail("tokenizer loaded"))
    assert pack_modes() == ["best_fit", "concat", "length_binned"]
    for name in ("sft", "stage2-512k"):
        recipe = load_recipe(name)
        for domain in recipe.present_domains():
            plan = plan_domain(recipe, domain, BuildLayout(tmp_path), None)
            packer = plan.build_steps[-2]
            assert (
                type(packer).__name__
                == {
                    "best_fit": "PackBestFit",
                    "length_binned": "PackLengthBinned",
                    "concat": "PackConcat",
                }[domain.pack.mode]
            )


def test_shipped_code_domains_order_files_by_dependency():
    """The demo and stage recipes lay each repository out with imported files first."""
    for name in ("demo", "demo-512k", "stage1-64k", "stage2-512k"):
        code = [s for d in load_recipe(name).domains for s in d.sources if s.kind.startswith("code_")]
        assert code and all(s.file_order == "dependency" for s in code), name

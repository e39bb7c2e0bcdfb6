"""What a newcomer meets in the first hour: every message is one line that says what to do.

The help lists every shipped recipe; the demo recipes and eval's held-out books come from the
installed package whatever the working folder; the trainer and `eval` without the `train` extra
name the pip command; the build summary lists absent domains, totals and what was removed, and
its targets follow `--long-share`; a refused resume says what differs; `inspect | head` is quiet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import read_json, tiny_recipe

from pipelines.cli import build_parser, main
from pipelines.recipe import load_recipe, recipe_names
from prolong_data.assets import SAMPLE_CORPUS
from prolong_data.evaluation.haystack import DEFAULT_HELDOUT

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

WITHOUT_TRAIN_EXTRA = """
import runpy, sys
for name in ("torch", "transformers", "streaming"):
    sys.modules[name] = None  # `import name` now fails, as in the core install
if sys.argv[1] == "trainer":
    sys.argv = ["trainer/train.py", "--config", "stage1.yaml"]
    runpy.run_module("trainer.train", run_name="__main__", alter_sys=True)
from pipelines.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_without_train_extra(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TRAIN_EXTRA, *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


def help_text(*args) -> str:
    parser = build_parser()
    if args:
        parser = parser._subparsers._group_actions[0].choices[args[0]]
    return parser.format_help()


def test_help_lists_every_recipe_every_exit_status_and_no_source_file():
    top, shards = help_text(), help_text("shards")
    for name in recipe_names():
        assert name in top and name in shards, name
    assert ".py" not in top and ".py" not in help_text("eval") and ".py" not in shards
    assert "1 `verify` found damage, or a `shards` task failed" in " ".join(top.split())
    shards_parser = build_parser()._subparsers._group_actions[0].choices["shards"]
    assert all(a.help for a in shards_parser._actions if a.dest in ("recipe", "executor", "corpus"))
    assert "where the tasks run" in " ".join(shards.split())


def test_the_demo_recipes_and_the_heldout_books_come_from_the_package_in_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no examples/ here
    for name in ("demo", "demo-512k", "sft-demo"):
        recipe = load_recipe(name).resolved()
        assert recipe.corpus == str(SAMPLE_CORPUS.resolve())
        corpus_paths = [p for d in recipe.domains for s in d.sources for p in s.paths if "corpus" in p]
        assert corpus_paths and all(Path(p).exists() for p in corpus_paths), corpus_paths
    assert DEFAULT_HELDOUT.is_absolute() and sorted(p.name for p in DEFAULT_HELDOUT.iterdir())


def test_repack_demo_reads_the_demo_build_named_by_corpus(tmp_path):
    default = load_recipe("repack-demo").resolved()
    assert all(
        Path(s.paths[0]).parent == Path("data/shards/demo").resolve()
        for d in default.domains
        for s in d.sources
    )
    other = load_recipe("repack-demo").resolved(str(tmp_path / "my-demo"))
    book = next(d for d in other.domains if d.name == "book-65536")
    assert book.sources[0].paths == [str(tmp_path / "my-demo" / "book-65536")]


@pytest.mark.parametrize("command", [("trainer",), ("cli", "eval", "--model", "m", "--out", "out")])
def test_without_the_train_extra_one_line_names_the_pip_command(command, tmp_path):
    done = run_without_train_extra(*command)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "needs the `train` extra" in done.stderr and "pip install '.[train]'" in done.stderr


def test_build_summary_absent_domains_totals_removed_and_targets(
    tmp_path, tiny_corpus, tokenizer_json, capsys
):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json, token_budget=400_000, max_repeat=1.5))
    )
    out = tmp_path / "out"
    assert main(["shards", "--recipe", str(recipe), "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    arxiv = next(line for line in lines if line.startswith("arxiv "))
    assert arxiv.split()[-2:] == ["10.0%", "absent"]  # its target, though it has no sources
    summary = read_json(out / "manifest.json")
    total = next(line for line in lines if line.startswith("total ") and "100.0%" in line).split()
    assert int(total[1].replace(",", "")) == sum(d["documents"] for d in summary["domains"].values())
    assert int(total[3].replace(",", "")) == sum(d["sequences"] for d in summary["domains"].values())
    # the tiny corpus has one exact duplicate in qa (kept out by the dedup filter)
    removed = {d: r["removed"] for d, r in summary["domains"].items()}
    assert removed["qa"]["filtered_documents"] == 1
    for d in summary["domains"]:  # tokens cut by packing: what the domain's packer reports
        packing = read_json(out / d / "manifest.json")["packing"]
        assert removed[d]["cut_tokens"] == packing["dropped_tokens"] + packing.get("dropped_tail_tokens", 0)
    assert "absent: arxiv (no sources" in printed.out
    warnings = [line for line in lines if line.startswith("WARNING:")]
    assert warnings and not [line for line in printed.err.splitlines() if "WARNING" in line]
    assert len(set(warnings)) == len(warnings)  # each over-limit domain warned once

    # a re-mix at another long share: the target column shows the shares asked for
    assert (
        main(["shards", "--recipe", str(recipe), "--out", str(out), "--mixture-only", "--long-share", "0.4"])
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    book = next(line for line in printed if line.startswith("book-1024 ")).split()
    assert book[-1] == "20.0%"  # 0.3 of the long group's 0.6, scaled to 0.4
    arxiv = next(line for line in printed if line.startswith("arxiv ")).split()
    assert arxiv[-2] == "15.0%"  # 0.1 of the short group's 0.4, scaled to 0.6

    # the same folder with another task count: the refusal says what differs
    assert main(["shards", "--recipe", str(recipe), "--out", str(out), "--tasks", "3"]) == 2
    refusal = capsys.readouterr().err
    assert "tasks of book-1024: 2 in the folder, 3 now" in refusal and "--fresh" in refusal

    # `inspect | head`: the reader closes the pipe first; no BrokenPipe message, exit 0
    read_end, write_end = os.pipe()
    os.close(read_end)
    inspect = [sys.executable, "-m", "pipelines.cli", "inspect", str(out)]
    done = subprocess.run(inspect, stdout=write_end, stderr=subprocess.PIPE, text=True, env=ENV, timeout=300)
    os.close(write_end)
    assert done.returncode == 0 and done.stderr == "", done.stderr

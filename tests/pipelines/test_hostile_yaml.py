"""Hostile YAML: duplicate keys and alias bombs in recipes, trainer configs and overrides are one
message each (with the line numbers), exit status 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from pipeline_helpers import shards_command, tiny_recipe

from pipelines.cli import main
from prolong_data.config import ALIAS_EXPANSION_LIMIT, ConfigError, parse_overrides, parse_yaml

LEVELS = 9
"""An alias bomb of 9 levels of 9 aliases each expands to 9**9 (387 million) scalars: minutes and
tens of GB to expand or to print, far beyond `ALIAS_EXPANSION_LIMIT`."""


def alias_bomb() -> str:
    """A flow-style YAML list whose last item expands to 9**LEVELS scalars."""
    items = ["&l0 [x, x, x, x, x, x, x, x, x]"]
    items += [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, LEVELS)]
    return "[" + ", ".join(items) + "]"


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line number of the `occurrence`-th line of `text` that equals `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if line == needle]
    return hits[occurrence - 1]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def recipe_text(tiny_corpus, tokenizer_json) -> str:
    return yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json), sort_keys=False)


def test_a_key_twice_at_the_top_of_a_recipe_names_both_lines(tmp_path, recipe_text, capsys):
    text = recipe_text.replace("seq_len: 1024\n", "seq_len: 1024\nseq_len: 2048\n", 1)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["shards", "--recipe", str(path), "--out", str(out)]) == 2
    message = one_error_line(capsys.readouterr().err)
    first, second = line_of(text, "seq_len: 1024"), line_of(text, "seq_len: 2048")
    assert f"r.yaml:{second}: duplicate key 'seq_len' (also at line {first})" in message
    assert not out.exists()


def test_a_domain_proportion_twice_names_both_lines(tmp_path, recipe_text, capsys):
    assert recipe_text.count("  proportion: 0.3\n") == 2  # book-1024 and qa
    text = recipe_text.replace("  proportion: 0.3\n", "  proportion: 0.3\n  proportion: 0.9\n", 1)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    assert main(["shards", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 2
    message = one_error_line(capsys.readouterr().err)
    first, second = line_of(text, "  proportion: 0.3"), line_of(text, "  proportion: 0.9")
    assert second == first + 1
    assert f"r.yaml:{second}: duplicate key 'proportion' (also at line {first})" in message


def test_a_duplicate_key_inside_an_override_value_is_refused():
    with pytest.raises(ConfigError, match=r"--pack: duplicate key 'mode' \(given twice\)"):
        parse_overrides(["--pack={mode: concat, mode: best_fit}"])


def test_merge_keys_may_override_what_they_merge():
    """`<<: *base` then a key of `base` is YAML's way to extend a mapping, not a duplicate."""
    assert parse_yaml("base: &b {lr: 1, steps: 2}\nrun: {<<: *b, lr: 3}\n", "c.yaml")["run"] == {
        "lr": 3,
        "steps": 2,
    }


def test_shared_anchors_of_a_real_recipe_still_load():
    """Aliases that repeat a source list between domains (what yaml.safe_dump writes) are fine."""
    from pipelines.recipe import load_recipe

    recipe = load_recipe("demo-512k")
    assert recipe.domains


@pytest.mark.parametrize("where", ["file", "override"])
def test_an_alias_bomb_is_refused_at_once(tmp_path, recipe_text, where):
    """A recipe whose description is an alias bomb, in the file or as `--description=`: one line,
    exit 2, long before anything expands it (the timeout only bounds a regression)."""
    path, args = tmp_path / "r.yaml", []
    if where == "file":
        path.write_text(recipe_text.replace("name: tiny\n", f"name: tiny\ndescription: {alias_bomb()}\n", 1))
    else:
        path.write_text(recipe_text)
        args = [f"--description={alias_bomb()}"]
    out = tmp_path / "out"
    run = subprocess.run(
        shards_command(path, out, *args), capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert run.returncode == 2, run.stderr[-2000:]
    message = one_error_line(run.stderr)
    located = "r.yaml:2:" if where == "file" else "--description:"
    assert located in message and f"beyond {ALIAS_EXPANSION_LIMIT:,} nodes" in message, message
    assert not out.exists()


def test_an_alias_bomb_in_a_trainer_config_is_refused(tmp_path, capsys):
    from trainer.train import cli

    config = tmp_path / "stage.yaml"
    config.write_text(f"out: {tmp_path / 'run'}\ndata:\n  mixture: {alias_bomb()}\n")
    assert cli(["--config", str(config)]) == 2
    assert f"stage.yaml:3: YAML aliases repeat a value beyond {ALIAS_EXPANSION_LIMIT:,}" in one_error_line(
        capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()


def test_a_duplicate_key_in_a_trainer_config_names_both_lines(tmp_path, capsys):
    from trainer.train import cli

    config = tmp_path / "stage.yaml"
    config.write_text("out: runs/x\ntrain:\n  steps: 10\n  seed: 1\n  steps: 20\n")
    assert cli(["--config", str(config)]) == 2
    message = one_error_line(capsys.readouterr().err)
    assert "stage.yaml:5: duplicate key 'steps' (also at line 3)" in message


def test_an_alias_that_contains_itself_is_refused():
    with pytest.raises(ConfigError, match="c.yaml:1: a YAML alias refers to the value that holds it"):
        parse_yaml("a: &x [1, *x]\n", "c.yaml")


def test_a_huge_wrong_value_is_named_in_a_short_message():
    """A wrong-typed value of a million items: the message shows a few of them, not all."""
    from pipelines.recipe import Recipe
    from prolong_data.config import from_dict

    big = list(range(1_000_000))
    with pytest.raises(ConfigError) as caught:
        from_dict(Recipe, {"name": "x", "seq_len": 1024, "description": big, "domains": []})
    assert "description: expected a string, got list [0, 1, 2, 3, 4, 5, ...]" in str(caught.value)
    assert len(str(caught.value)) < 200


def test_the_expansion_bound_counts_repeats_exactly():
    """Just under the bound loads; one node over is refused (the count is exact, not a guess)."""
    width = ALIAS_EXPANSION_LIMIT // 10  # an anchored list of `width` scalars: width + 1 nodes
    anchored = "[" + ", ".join(["x"] * width) + "]"
    repeats = ALIAS_EXPANSION_LIMIT // (width + 1)  # each alias adds width + 1 nodes
    fits = f"a: &a {anchored}\nb: [{', '.join(['*a'] * repeats)}]\n"
    assert len(parse_yaml(fits, "f.yaml")["b"]) == repeats
    over = f"a: &a {anchored}\nb: [{', '.join(['*a'] * (repeats + 1))}]\n"
    with pytest.raises(ConfigError, match="alias bomb"):
        parse_yaml(over, "f.yaml")

"""Executors are one module each: the registry gives `--executor` its choices, help and flags,
the build drives an executor only through its class, and docs/building.md lists exactly the
registered executors with their flags."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml
from datatrove.executor import LocalPipelineExecutor
from pipeline_helpers import tiny_recipe

from pipelines import shards as shards_cmd
from pipelines.build import BuildOptions, run_build
from pipelines.executors import Executor, executor_kind, executor_names, register_executor
from pipelines.executors import base as registry
from pipelines.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]


def shipped() -> list[str]:
    """The executors this package registers (tests may register their own)."""
    return [
        n for n in executor_names() if type(executor_kind(n)).__module__.startswith("pipelines.executors.")
    ]


def shards_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    return shards_cmd.add_parser(parser.add_subparsers())


def flags_of(name: str) -> list[str]:
    """The flags executor `name` adds to the `shards` command."""
    parser = argparse.ArgumentParser(add_help=False)
    executor_kind(name).add_arguments(parser)
    return [flag for action in parser._actions for flag in action.option_strings]


def test_the_shipped_executors_and_their_flags_are_those_docs_building_lists():
    assert shipped() == ["local", "ray", "slurm"]
    text = (REPO / "docs" / "building.md").read_text()
    section = text.split("\n## Executors\n")[1].split("\n### ")[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \|.*\| (.*) \|$", section, re.M))
    assert sorted(rows) == shipped()
    for name in shipped():
        assert re.findall(r"`(--[a-z-]+)`", rows[name]) == flags_of(name), name


class EchoExecutor(LocalPipelineExecutor):
    """datatrove's local executor, one worker, recording the passes it was made for."""


@pytest.fixture
def echo_executor():
    """A test executor registered from this module alone, removed again afterwards."""

    @register_executor
    class Echo(Executor):
        name = "echo"
        help = "one process, for this test"
        made: list[tuple[str, int, str]] = []

        def add_arguments(self, parser):
            parser.add_argument_group("echo").add_argument("--echo-label", default=None)

        def settings_overrides(self, args):
            return {"slurm": {"qos": args.echo_label}} if args.echo_label else {}

        def check(self, options, settings):
            if settings.slurm.qos == "refuse":
                raise ValueError("--executor echo refuses --echo-label refuse")

        def make(
            self, options, pipeline, tasks, logging_dir, name, *, depends, log_file, resources, settings
        ):
            self.made.append((name, tasks, resources.time or ""))
            return EchoExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(logging_dir))

    yield Echo
    del registry._REGISTRY["echo"]


def test_an_executor_registered_in_one_module_is_a_choice_with_its_flags(echo_executor):
    parser = shards_parser()
    assert "echo" in parser.format_help() and "--echo-label" in parser.format_help()
    args, _ = parser.parse_known_args(
        ["--recipe", "demo", "--out", "o", "--executor", "echo", "--echo-label", "x"]
    )
    assert args.executor == "echo"
    assert shards_cmd.executor_overrides(args) == {"slurm": {"qos": "x"}}
    with pytest.raises(SystemExit):  # an unregistered name is refused by argparse
        parser.parse_args(["--recipe", "demo", "--out", "o", "--executor", "nowhere"])
    with pytest.raises(ValueError, match="echo, local, ray, slurm"):
        BuildOptions(out=Path("o"), executor="nowhere")


@pytest.mark.slow  # a whole build of the tiny recipe (about 15 s)
def test_a_build_runs_its_passes_on_a_registered_executor(
    tmp_path, tiny_corpus, tokenizer_json, echo_executor
):
    recipe = load_recipe(_recipe_file(tmp_path, tiny_corpus, tokenizer_json)).resolved()
    refused = BuildOptions(out=tmp_path / "refused", executor="echo")
    recipe.executor.slurm.qos = "refuse"
    with pytest.raises(ValueError, match="refuses"):
        run_build(recipe, refused)
    assert not refused.out.exists()  # checked before a byte was written
    recipe.executor.slurm.qos = None
    summary = run_build(recipe, BuildOptions(out=tmp_path / "o", executor="echo"))
    assert summary is not None and (tmp_path / "o" / "mixture.json").is_file()
    made = [name for name, _, _ in echo_executor.made]
    assert made[-1] == "build" and set(made) <= {"read", "build"}  # every pass but finalize, in order


def _recipe_file(tmp_path, tiny_corpus, tokenizer_json) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json)))
    return path

"""Resources per pass and the engines' own options: from the recipe's `executor:` block and the
command line into the sbatch scripts and Ray options, and every bad option refused before a job
is submitted or a byte written."""

from __future__ import annotations

import argparse
import importlib.util
import os
import stat

import pytest
import yaml
from pipeline_helpers import tiny_recipe

from pipelines import shards as shards_cmd
from pipelines.build import BuildOptions
from pipelines.cli import main
from pipelines.executors import make_executor
from pipelines.recipe import load_recipe
from pipelines.resources import ExecutorConfig, default_resources, time_seconds
from prolong_data.config import from_dict


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    shards_cmd.add_parser(parser.add_subparsers())
    args, extra = parser.parse_known_args(["shards", *argv])
    args.overrides = extra
    return args


def settings_of(**block) -> ExecutorConfig:
    """An `executor:` block as a recipe would give it."""
    return from_dict(ExecutorConfig, block)


def sbatch_script(settings: ExecutorConfig, name: str, seq_len: int, tmp_path, workers=None) -> str:
    """The sbatch script pass `name` would submit (nothing is submitted)."""
    options = BuildOptions(out=tmp_path, executor="slurm", workers=workers)
    executor = make_executor(options, [], 8, tmp_path / name, name, settings=settings, seq_len=seq_len)
    return executor.get_launch_file_contents(executor.get_sbatch_args(8), "true")


def directives(script: str) -> dict:
    pairs = [
        line[len("#SBATCH --") :].partition("=") for line in script.splitlines() if line.startswith("#SBATCH")
    ]
    return {key: value for key, _, value in pairs}


def test_recipe_block_then_flags_set_each_pass(tmp_path, tiny_corpus, tokenizer_json):
    recipe = tiny_recipe(tiny_corpus, tokenizer_json)
    recipe["executor"] = {
        "build": {"mem_gb": 16, "time": "10:00:00"},
        "slurm": {"partition": "cpu", "time": "02:00:00", "sbatch": {"constraint": "avx2"}},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    args = parse(
        "--recipe", str(path), "--out", str(tmp_path / "o"),
        "--cpus", "2", "--mem-gb", "build=24", "--time", "finalize=30",
        "--slurm-qos", "high", "--slurm-sbatch", "exclusive=", "--executor.read.mem_gb=3",
    )  # fmt: skip
    resolved = shards_cmd.resolve_recipe(args)
    settings = resolved.executor
    got = {
        n: settings.resources(n, default_resources(n, resolved.seq_len))
        for n in ("read", "build", "finalize")
    }
    assert (got["read"].cpus, got["read"].mem_gb, got["read"].time) == (2, 3.0, "02:00:00")
    build = (got["build"].cpus, got["build"].mem_gb, got["build"].time)
    assert build == (2, 24.0, "10:00:00")  # the flag over the block
    assert (got["finalize"].mem_gb, got["finalize"].time) == (2.0, "30")  # the default; its own time
    assert settings.slurm.sbatch == {"constraint": "avx2", "exclusive": ""} and settings.slurm.qos == "high"


def test_build_tasks_of_longer_sequences_get_more_memory():
    assert default_resources("build", 524288).mem_gb > default_resources("build", 65536).mem_gb
    assert default_resources("build", 65536).mem_gb >= default_resources("read", 65536).mem_gb
    assert default_resources("finalize", 524288).mem_gb == default_resources("read", 524288).mem_gb


def test_near_dedup_passes_run_with_the_resources_of_the_pass_they_resemble():
    settings = from_dict(
        ExecutorConfig,
        {"read": {"mem_gb": 5, "cpus": 3}, "finalize": {"mem_gb": 7}, "build": {"mem_gb": 11}},
    )
    defaults = default_resources("signatures", 65536)
    assert settings.resources("signatures", defaults) == settings.resources("read", defaults)
    assert settings.resources("signatures", defaults).mem_gb == 5
    assert settings.resources("near_dedup", defaults).mem_gb == 7
    # the near-dedup passes hold no sequences: their default memory does not grow with seq_len
    assert default_resources("near_dedup", 524288) == default_resources("finalize", 524288)


def test_sbatch_scripts_carry_each_pass_and_the_users_options(tmp_path):
    settings = settings_of(
        build={"cpus": 4, "mem_gb": 10},
        slurm={"partition": "cpu", "time": "01:00:00", "account": "proj", "qos": "low",
               "sbatch": {"qos": "high", "constraint": "avx2", "exclusive": ""},
               "srun": {"cpu-bind": "cores"}, "env_command": "module load python"},
    )  # fmt: skip
    build = sbatch_script(settings, "build", 524288, tmp_path)
    got = directives(build)
    assert got["cpus-per-task"] == "4" and got["mem-per-cpu"] == "2560M"  # 10 GB over 4 CPUs
    assert got["qos"] == "high"  # the user's sbatch option wins over the qos setting (and datatrove's)
    assert got["account"] == "proj" and got["constraint"] == "avx2" and "exclusive" in got
    assert got["array"] == "0-7"  # no `%N`: without --workers the cluster runs as many as it can
    assert "module load python" in build
    read = directives(sbatch_script(settings, "read", 524288, tmp_path, workers=3))
    assert read["cpus-per-task"] == "1" and read["mem-per-cpu"] == "2048M" and read["array"] == "0-7%3"
    settings.slurm.sbatch = {"mem": "64G"}  # sbatch refuses --mem with --mem-per-cpu: --mem replaces it
    settings.slurm.qos = None
    got = directives(sbatch_script(settings, "finalize", 65536, tmp_path))
    assert got["mem"] == "64G" and "mem-per-cpu" not in got and "qos" not in got  # no qos: the cluster's


def test_a_venv_folder_is_activated_through_its_script(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    settings = settings_of(slurm={"partition": "cpu", "time": "5", "venv": str(venv)})
    assert f"source {venv / 'bin' / 'activate'}" in sbatch_script(settings, "read", 1024, tmp_path)


def test_slurm_time_limits_convert_to_seconds_for_ray():
    cases = {
        "90": 5400,
        "05:30": 330,
        "01:00:00": 3600,
        "2-00": 172800,
        "1-02:03": 93780,
        "1-00:00:01": 86401,
    }
    assert {text: time_seconds(text) for text in cases} == cases


BAD = [
    ("owned sbatch option", ("--slurm-sbatch", "array=0-3"), "sets --array itself"),
    ("option with spaces", ("--slurm-sbatch", "mem per cpu=2G"), "not an option name"),
    ("bad time", ("--time", "build=tomorrow"), "executor.build.time: 'tomorrow' is not a time limit"),
    ("zero cpus", ("--cpus", "read=0"), "executor.read.cpus must be at least 1"),
    ("unknown pass", ("--mem-gb", "pack=3"), "PASS one of read, build, finalize"),
    ("missing venv", ("--slurm-venv", "/no/such/venv"), "no virtualenv there"),
    ("two environments", ("--slurm-venv", "/v", "--slurm-conda", "c"), "give one of venv, condaenv"),
    ("no time", ("--time", "build=01:00:00"), "--slurm-time (or --time PASS=LIMIT for read, finalize)"),
]


@pytest.mark.parametrize("label, flags, message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_slurm_option_is_refused_before_anything_is_submitted(
    tmp_path, tiny_recipe_file, capsys, monkeypatch, label, flags, message
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"#!/bin/sh\ntouch {tmp_path / 'submitted'}\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    argv = ["shards", "--recipe", str(tiny_recipe_file), "--out", str(out), "--executor", "slurm"]
    argv += [
        "--slurm-partition",
        "cpu",
        *(() if label == "no time" else ("--slurm-time", "01:00:00")),
        *flags,
    ]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses a malformed flag the same way: status 2
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not out.exists() and not (tmp_path / "submitted").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs ray (pip install 'prolong-data[ray]')"
)
@pytest.mark.parametrize(
    "flags, message",
    [
        (("--ray-remote", "max_restarts=often"), "executor.ray.remote: The type of keyword 'max_restarts'"),
        (("--ray-remote", "retries=2"), "retries: not an option of Ray's remote workers"),
        (("--ray-remote", "placement_group=x"), "datatrove places each task itself"),
        (("--ray-runtime-env", "{pip: 3}"), "executor.ray.runtime_env: runtime_env['pip'] must be"),
        (("--ray-runtime-env", "[1, 2]"), "--ray-runtime-env takes a mapping"),
    ],
)
def test_a_bad_ray_option_is_refused_before_ray_starts(tmp_path, tiny_recipe_file, capsys, flags, message):
    out = tmp_path / "out"
    code = main(["shards", "--recipe", str(tiny_recipe_file), "--out", str(out), "--executor", "ray", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not out.exists()


def test_an_object_store_url_as_out_is_refused_not_made_a_local_folder(
    tmp_path, tiny_recipe_file, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a URL taken for a path would create ./s3:/bucket/demo here
    assert main(["shards", "--recipe", str(tiny_recipe_file), "--out", "s3://bucket/demo"]) == 2
    assert "output to a URL is not supported" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tiny_recipe_file]


def test_resources_change_no_byte_so_a_resume_with_more_memory_is_the_same_build(tmp_path, tiny_recipe_file):
    from pipelines.build import shard_inputs

    recipe = load_recipe(tiny_recipe_file).resolved()
    more = load_recipe(tiny_recipe_file, {"executor": {"build": {"mem_gb": 64}}}).resolved()
    assert more.executor.build.mem_gb == 64
    assert shard_inputs(recipe, [], {"vocab": "x"}) == shard_inputs(more, [], {"vocab": "x"})

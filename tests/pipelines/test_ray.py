"""The Ray executor on a local Ray instance builds the same shards as the local executor."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
from pipeline_helpers import shards_command, tree_bytes

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None, reason="needs ray (pip install 'prolong-data[ray]')"
    ),
]
REPO = Path(__file__).resolve().parents[2]


def build(recipe: Path, out: Path, executor: str) -> None:
    options = ["--executor", executor, "--tasks", "2", "--workers", "2", "--mem-gb", "1"]
    options += ["--ray-remote", "max_restarts=1", "--ray-runtime-env", "{env_vars: {PROLONG_RAY_TEST: '1'}}"]
    cmd = shards_command(recipe, out, *options)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_ray_executor_gives_the_same_shards(tiny_recipe_file, tmp_path):
    build(tiny_recipe_file, tmp_path / "local", "local")
    build(tiny_recipe_file, tmp_path / "ray", "ray")
    logs = tmp_path / "ray" / ".build" / "logs" / "build"
    assert (logs / "completions").is_dir()
    saved = json.loads((logs / "executor.json").read_text())  # the Ray executor as it ran
    assert (saved["cpus_per_task"], saved["mem_per_cpu_gb"]) == (1, 1.0)
    assert saved["ray_remote_kwargs"] == {"max_restarts": 1}
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")

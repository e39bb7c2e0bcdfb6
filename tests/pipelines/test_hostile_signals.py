"""Ctrl-C and SIGTERM stop a whole build, say how to resume, and the same command resumes.

Real signals to a real `prolong-data shards` process (its own session, so that every process it
starts can be found afterwards): SIGTERM to the main process alone (as `kill PID` sends it), and
SIGINT to the whole process group (as Ctrl-C in a terminal sends it). Each is sent while a
worker of the local executor runs. Then: exit 143 / 130, one line "stopped; run the same command
to resume", no traceback, no process of the build left, and the same command ends with the bytes
of an uninterrupted build.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import shards_command, tiny_recipe, tree_bytes
from process_helpers import WAIT_SECONDS, session_processes, wait_for

from prolong_data.signals import RESUME_LINE, descendants

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recipe_and_reference(tmp_path_factory, tiny_corpus, tokenizer_json) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("signals")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json)))
    done = subprocess.run(shards_command(recipe, root / "reference", "--workers", "2"), cwd=REPO, timeout=600)
    assert done.returncode == 0
    return recipe, tree_bytes(root / "reference")


def start_build(recipe: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        shards_command(recipe, out, "--workers", "2"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize(
    ("signum", "status", "to_group"),
    [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)],
    ids=["sigterm-to-main", "ctrl-c-to-group"],
)
def test_a_signal_stops_every_process_and_the_same_command_resumes(
    tmp_path, recipe_and_reference, signum, status, to_group
):
    recipe, reference = recipe_and_reference
    out = tmp_path / "out"
    build = start_build(recipe, out)
    try:
        wait_for(lambda: descendants(build.pid) or build.poll() is not None, "a worker process")
        assert build.poll() is None, "the build ended before a worker started"
        if to_group:
            os.killpg(build.pid, signum)
        else:
            build.send_signal(signum)
        _stdout, stderr = build.communicate(timeout=WAIT_SECONDS)
        assert build.returncode == status, stderr
        assert "Traceback" not in stderr and "Error" not in stderr, stderr
        assert stderr.strip().splitlines()[-1] == f"shards: {RESUME_LINE}"
        assert stderr.count(RESUME_LINE) == 1
        assert wait_for(lambda: not session_processes(build.pid), "the build's processes to end")
    finally:
        if session_processes(build.pid):  # clean up a failed test's processes
            os.killpg(build.pid, signal.SIGKILL)
        build.wait()
    rerun = subprocess.run(
        shards_command(recipe, out, "--workers", "2"), cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr
    assert tree_bytes(out) == reference

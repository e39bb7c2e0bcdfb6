"""Two builds into one `--out`: the second is refused at once, a dead holder's lock is taken over.

The lock holder is a real separate process (`hold_lock` in a child Python), so the tests do not
depend on how long a build takes: while it holds the folder, a build of another recipe, the same
recipe, or one with `--fresh` exits 2 naming the holder and leaves every file as it was. Killed
with SIGKILL, the holder leaves its lock file behind; the next build takes it over and builds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import shards_command, tiny_recipe, tree_bytes
from process_helpers import wait_for

from prolong_data.build_lock import LockHeld, hold_lock, read_holder
from prolong_data.layout import BuildLayout

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from prolong_data.build_lock import hold_lock
with hold_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


def start_holder(lock: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def qa_only(recipe: dict) -> dict:
    for domain in recipe["domains"]:
        if domain["name"] != "qa":
            domain["sources"] = []
    return recipe


@pytest.fixture
def recipes(tmp_path, tiny_corpus, tokenizer_json) -> tuple[Path, Path]:
    """Two recipes of the `qa` domain alone that make different shards (seq_len 1024, 2048)."""
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump(qa_only(tiny_recipe(tiny_corpus, tokenizer_json))))
    second.write_text(yaml.safe_dump(qa_only(tiny_recipe(tiny_corpus, tokenizer_json, seq_len=2048))))
    return first, second


def run(recipe: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        shards_command(recipe, out, "--workers", "1", *options),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_held_folder_refuses_every_other_build_and_changes_nothing(tmp_path, recipes):
    first, second = recipes
    out = tmp_path / "out"
    assert run(first, out).returncode == 0
    before = tree_bytes(out, skip=())
    holder = start_holder(BuildLayout(out).lock)
    try:
        record = read_holder(BuildLayout(out).lock)
        assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
        for recipe, options in ((second, ()), (first, ()), (first, ("--fresh",)), (second, ("--fresh",))):
            refused = run(recipe, out, *options)
            assert refused.returncode == 2, refused.stderr
            assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
            assert f"in use by another build: pid {holder.pid} on {socket.gethostname()}" in refused.stderr
            assert tree_bytes(out, skip=()) == {**before, ".lock": tree_bytes(out, skip=())[".lock"]}
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert not BuildLayout(out).lock.exists()  # the holder removed it when it let go
    assert tree_bytes(out, skip=()) == before


@pytest.mark.slow
def test_the_lock_of_a_killed_build_is_taken_over(tmp_path, recipes):
    first, _ = recipes
    out, reference = tmp_path / "out", tmp_path / "reference"
    holder = start_holder(BuildLayout(out).lock)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert read_holder(BuildLayout(out).lock)["pid"] == holder.pid  # left behind
    built = run(first, out)
    assert built.returncode == 0, built.stderr
    assert f"taking over the lock of pid {holder.pid}" in built.stderr
    assert not BuildLayout(out).lock.exists()
    assert run(first, reference).returncode == 0
    assert tree_bytes(out) == tree_bytes(reference)


def test_two_holders_in_one_process_tree_exclude_each_other(tmp_path):
    """The lock is per open file: even a second `hold_lock` of the same process is refused."""
    lock = tmp_path / "out" / ".lock"
    with hold_lock(lock):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            with hold_lock(lock):
                pass
        wait_for(lambda: lock.is_file(), "the lock file")
    assert not lock.exists()


@pytest.mark.slow
def test_a_running_build_is_never_interleaved_or_emptied(tmp_path, recipes):
    """Two real builds: while the first holds the folder (paused with SIGSTOP, so the test does
    not race it), the second is refused with or without `--fresh`; resumed, the first ends with
    the bytes of a build that ran alone."""
    first, second = recipes
    out, reference = tmp_path / "out", tmp_path / "reference"
    assert run(first, reference).returncode == 0
    build = subprocess.Popen(
        shards_command(first, out, "--workers", "1"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: BuildLayout(out).options.is_file() or build.poll() is not None, "the build's start")
        os.killpg(build.pid, signal.SIGSTOP)
        assert build.poll() is None, "the first build ended before the second started"
        for options in ((), ("--fresh",)):
            refused = run(second, out, *options)
            assert refused.returncode == 2 and f"pid {build.pid}" in refused.stderr, refused.stderr
        os.killpg(build.pid, signal.SIGCONT)
        _, stderr = build.communicate(timeout=600)
        assert build.returncode == 0, stderr
    finally:
        if build.poll() is None:
            os.killpg(build.pid, signal.SIGKILL)
            build.wait()
    assert tree_bytes(out) == tree_bytes(reference)

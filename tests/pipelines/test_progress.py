"""The build you can watch: live progress from the tasks' files, short terminal output, logs on disk."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from pipelines.dispatch import DomainJob
from pipelines.progress import PassProgress, clock, human, read_counts, time_left

REPO = Path(__file__).resolve().parents[2]


def test_counts_come_from_finished_and_running_tasks(tmp_path):
    stats, completions = tmp_path / "stats", tmp_path / "completions"
    jobs = [DomainJob("code", [], 2), DomainJob("books", [], 3)]
    (stats / "code").mkdir(parents=True)
    (stats / "books").mkdir(parents=True)
    completions.mkdir()
    # code: task 0 finished (global rank 0), task 1 running
    (completions / "00000").touch()
    (stats / "code" / "00000.json").write_text(json.dumps({"progress": {"documents": 5, "tokens": 700}}))
    (stats / "code" / "00001.progress").write_text(json.dumps({"documents": 2, "tokens": 30}))
    # books: task 1 (global rank 3) finished; a finished task's stale live file is not counted twice
    (completions / "00003").touch()
    (stats / "books" / "00001.json").write_text(json.dumps({"progress": {"documents": 1, "tokens": 9000}}))
    (stats / "books" / "00001.progress").write_text(json.dumps({"documents": 1, "tokens": 10}))
    (stats / "books" / "00002.progress").write_text("{half a fi")  # being replaced: read as nothing
    code, books = read_counts(jobs, stats, completions)
    assert (code.done, code.documents, code.tokens) == (1, 7, 730)
    assert (books.done, books.documents, books.tokens) == (1, 1, 9000)


def test_number_formats_and_time_left():
    assert human(1234) == "1,234" and human(1_700_000) == "1.70M" and human(21_300_000) == "21.3M"
    assert clock(65) == "1:05" and clock(3725) == "1:02:05"
    assert time_left(10.0, 0, 4) == "?" and time_left(10.0, 4, 4) == "done"
    assert time_left(10.0, 1, 4) == "~0:30"  # three more tasks as long as the first


def test_not_a_terminal_prints_a_summary_line_per_pass(tmp_path):
    stats, completions = tmp_path / "stats", tmp_path / "completions"
    (stats / "qa").mkdir(parents=True)
    completions.mkdir()
    out = io.StringIO()
    with PassProgress("build", [DomainJob("qa", [], 1)], stats, completions, stream=out, refresh=0.01):
        (stats / "qa" / "00000.json").write_text(json.dumps({"progress": {"documents": 3, "tokens": 99}}))
        (completions / "00000").touch()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("build: 1/1 tasks, 3 documents, 99 tokens, ")
    assert len(lines) <= 2 and "\x1b" not in out.getvalue()


def test_terminal_display_is_redrawn_then_leaves_only_the_summary(tmp_path):
    stats, completions = tmp_path / "stats", tmp_path / "completions"
    (stats / "qa").mkdir(parents=True)
    completions.mkdir()
    out = io.StringIO()
    display = PassProgress("read", [DomainJob("qa", [], 2)], stats, completions, stream=out, tty=True)
    with display:
        display._draw(display.counts())  # what the thread does every refresh
        display._draw(display.counts())
    text = out.getvalue()
    assert text.count("\x1b[2F") == 2  # moved up over the pass line and the domain line, then erased
    assert text.endswith("\x1b[0Jread: 0/2 tasks, 0 documents, 0:00 elapsed, ? left\n")
    assert "  qa     0/2        0 docs" in text


def run_cli(*args, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,  # generous: the build takes seconds, a loaded machine many more
    )


def test_build_terminal_output_is_short_and_the_logs_hold_the_stats(tmp_path, tiny_recipe_file):
    out = tmp_path / "out"
    done = run_cli("shards", "--recipe", tiny_recipe_file, "--out", out, "--tasks", 2, "--workers", 2)
    assert done.returncode == 0, done.stderr
    terminal = done.stdout + done.stderr
    lines = terminal.splitlines()
    # a start line, one summary line per pass (plus at most a few progress lines), the tables
    assert len(lines) <= 40, terminal
    assert "domain" in terminal and "documents" in terminal and "token budget 40,000" in terminal
    assert any(line.startswith("read: 6/6 tasks") for line in lines)
    assert any(line.startswith("build: 7/7 tasks") and " tokens, " in line for line in lines)
    assert "Stats" not in terminal and "INFO" not in terminal
    logs = out / ".build" / "logs"
    task_logs = sorted((logs / "build" / "logs").glob("task_*.log"))
    assert len(task_logs) == 7 and all("Stats: Task" in p.read_text() for p in task_logs)
    assert "Stats: All 7 tasks" in (logs / "shards.log").read_text()
    assert not list((out / ".build" / "stats").rglob("*.progress"))  # live files removed when done

    verbose = run_cli(
        "shards",
        "--recipe",
        tiny_recipe_file,
        "--out",
        tmp_path / "v",
        "--tasks",
        2,
        "--workers",
        1,
        "--verbose",
    )
    assert verbose.returncode == 0, verbose.stderr
    assert "Stats: Task" in verbose.stderr and "Launching pipeline" in verbose.stderr
    assert "build: 7/7 tasks" in verbose.stderr

"""Whole builds against hostile input, damage and kills (slow: each runs the tiny recipe).

* A corpus full of bad input builds with two tasks per domain: every problem counted with its
  file, nothing from outside the named folders in the shards, `verify` OK.
* A finished build damaged in every way, then the same command again: it finds the damage,
  rebuilds what is damaged, and ends byte-identical to the undamaged build.
* A build killed with SIGKILL at several points, then the same command again: byte-identical.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from pipeline_helpers import read_json, shards_command, tiny_recipe, tree_bytes

from pipelines.cli import main
from prolong_data.inspection import iter_samples
from prolong_data.verify import DamageError, verify

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SECRET = "PRIVATE-KEY-do-not-train-on-me"


def shards(recipe: Path, out: Path, *args) -> int:
    return main(["shards", "--recipe", str(recipe), "--out", str(out), "--workers", "2", *map(str, args)])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_corpus, tokenizer_json) -> tuple[Path, Path]:
    """(recipe file, a finished undamaged build of it)."""
    root = tmp_path_factory.mktemp("reference")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_corpus, tokenizer_json)))
    assert shards(recipe, root / "out") == 0
    return recipe, root / "out"


# -- a corpus full of bad input -------------------------------------------------------------------


def hostile_corpus(root: Path, tiny: Path, secret: Path) -> Path:
    shutil.copytree(tiny / "books", root / "books")
    shutil.copytree(tiny / "repos", root / "repos")
    shutil.copytree(tiny / "rows", root / "rows")
    shutil.copytree(tiny / "stack", root / "stack")
    books, repos, rows = root / "books", root / "repos", root / "rows"
    book = sorted(books.glob("*.txt"))[0].read_bytes()
    cut = gzip.compress(book * 3)
    (books / "cut.txt.gz").write_bytes(cut[: len(cut) // 2])  # truncated
    Path(os.fsdecode(bytes(books) + b"/caf\xff.txt")).write_bytes(book)  # a name that is not UTF-8
    os.mkfifo(books / "pipe.txt")
    os.symlink(secret, books / "stolen.txt")
    os.symlink("/dev/zero", books / "zero.txt")
    os.mkfifo(repos / "repo0" / "fifo.py")
    os.symlink(secret, repos / "repo1" / "key.py")
    os.symlink("/dev/zero", repos / "repo1" / "zero.py")
    (repos / "repo2" / "bom.py").write_text("\ufeffBOM_MARKER = 1\n")
    lines = [json.dumps({"id": f"g{i}", "text": f"gz row {i} " * 40}) for i in range(300)]
    gz = gzip.compress("\n".join(lines).encode())
    (rows / "cut.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    (rows / "lone.jsonl").write_text('{"id": "\\ud800", "text": "a row with a lone surrogate id"}\n')
    return root


@pytest.mark.timeout(900)  # a pipe or /dev/zero read would hang: fail instead
def test_a_corpus_of_bad_input_builds_counts_everything_and_lets_nothing_in(
    tmp_path, tiny_corpus, tokenizer_json, llama3_tok
):
    secret = tmp_path / "private" / "id_rsa.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\n")
    corpus = hostile_corpus(tmp_path / "corpus", tiny_corpus, secret)
    recipe = tiny_recipe(corpus, tokenizer_json)
    del recipe["domains"][3]["max_tasks"]  # rows in two tasks: ids and names go through the partition
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert shards(tmp_path / "r.yaml", out, "--tasks", 2) == 0
    bad = read_json(out / "report" / "bad_input.json")
    assert bad["counts"] == {
        "invalid_name": 2,  # the 0xFF book name, the lone-surrogate id
        "malformed_json": 1,
        "missing_field": 1,
        "outside_root": 4,  # books/stolen.txt, books/zero.txt, repo1/key.py, repo1/zero.py
        "special_file": 2,  # books/pipe.txt, repo0/fifo.py
        "truncated_file": 2,  # books/cut.txt.gz, rows/cut.jsonl.gz
    }
    assert all(e["file"] for examples in bad["examples"].values() for e in examples)
    assert verify(out).samples > 0
    text = "".join(
        llama3_tok.decode(row["input_ids"].tolist())
        for d in ("code-512", "book-1024", "qa")
        for _, _, row in iter_samples(out / d)
    )
    assert SECRET not in text and "gz row 1 " in text and "BOM_MARKER" in text and "\ufeff" not in text
    before = tree_bytes(out)
    assert shards(tmp_path / "r.yaml", out, "--tasks", 2) == 0 and tree_bytes(out) == before


# -- damage, then the same command ---------------------------------------------------------------


def _first_shard(out: Path, domain: str) -> Path:
    return sorted((out / domain).glob("rank-*/shard.*.mds"))[0]


def damage_shards_and_rank_indexes(out: Path) -> None:
    (out / "book-1024" / "rank-00001" / "index.json").unlink()
    _first_shard(out, "code-512").unlink()
    qa = _first_shard(out, "qa")
    qa.write_bytes(qa.read_bytes()[:1000])
    stack = _first_shard(out, "stack-512")
    data = bytearray(stack.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one token: only the hash shows it
    stack.write_bytes(bytes(data))
    rank0 = out / "book-1024" / "rank-00000" / "index.json"
    index = json.loads(rank0.read_text())
    index["shards"][0]["samples"] -= 1
    rank0.write_text(json.dumps(index))
    part = out / ".build" / "partitions" / "code-512" / "part-00001" / "from-00000.jsonl.zst"
    part.write_bytes(part.read_bytes()[:-10])  # a truncated partition: its read task reruns


def damage_folders_reports_and_work_files(out: Path) -> None:
    shutil.rmtree(out / "qa")
    shutil.rmtree(out / "report")
    (out / "mixture.json").unlink()
    (out / "manifest.json").unlink()
    (out / "code-512" / "index.json").unlink()
    (out / "stack-512" / "manifest.json").unlink()
    (out / ".build" / "stats" / "build" / "book-1024" / "00000.json").unlink()
    (out / ".build" / "partitions" / "book-1024" / "part-00000" / "from-00001.jsonl.zst").unlink()
    (out / ".build" / "options.json").write_text('{"recipe": ')  # torn by a kill


@pytest.mark.parametrize("damage", [damage_shards_and_rank_indexes, damage_folders_reports_and_work_files])
def test_the_same_command_repairs_a_damaged_build_to_the_same_bytes(reference, tmp_path, damage):
    recipe, good = reference
    out = Path(shutil.copytree(good, tmp_path / "out", symlinks=True))
    damage(out)
    with pytest.raises(DamageError):
        verify(out)
    assert shards(recipe, out) == 0
    assert tree_bytes(out) == tree_bytes(good)
    assert verify(out).samples == verify(good).samples


# -- kills ---------------------------------------------------------------------------------------


def _command(recipe: Path, out: Path) -> list[str]:
    return shards_command(recipe, out, "--workers", "1")


def _completions(out: Path, pass_name: str) -> int:
    folder = out / ".build" / "logs" / pass_name / "completions"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


KILL_POINTS = {
    "after the options file": lambda out: (out / ".build" / "options.json").is_file(),
    "after two read tasks": lambda out: _completions(out, "read") >= 2,
    "after two build tasks": lambda out: _completions(out, "build") >= 2,
    "in finalize": lambda out: (out / "code-512" / "index.json").is_file(),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_build_killed_at_any_point_resumes_to_the_same_bytes(reference, tmp_path, point):
    recipe, good = reference
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        _command(recipe, out),
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600  # a bound on a hung build, not a timing assertion
    while proc.poll() is None and time.monotonic() < deadline and not KILL_POINTS[point](out):
        time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the executor and its workers
    proc.wait()
    if point != "in finalize":  # finalize is short: the kill may land after it ended
        assert killed, f"the build finished before the kill point {point!r}"
    done = subprocess.run(
        _command(recipe, out), cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert tree_bytes(out) == tree_bytes(good)

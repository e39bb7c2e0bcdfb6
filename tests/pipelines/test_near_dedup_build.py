"""`near_dedup:` in real builds of real near-duplicates (two pip releases' modules, a book and a
re-wrapped edition of it): the pairs found and only they, `keep`, the reports, the same removals
at any task count, repair and resume to the same bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from near_dedup_helpers import make_near_duplicate_corpus, near_dedup_recipe
from pipeline_helpers import read_json, shards_command, tree_bytes

from pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

EXPECTED = {  # (domain, removed) -> kept, with keep: longest (the kept one has more characters)
    ("book-1024", "edition-b"): "pg11-alice-s-adventures-in-wonderland",
    ("code-512", "pipmods-pip-26.3"): "pipmods-pip-23.0.1",
    ("stack-512", "org/pipmods-pip-26.3"): "org/pipmods-pip-23.0.1",
}


@pytest.fixture(scope="module")
def nd_corpus(tmp_path_factory, corpus) -> Path:
    return make_near_duplicate_corpus(tmp_path_factory.mktemp("nd_corpus"), corpus)


def build(root: Path, corpus: Path, tokenizer_json: str, *args, **changes) -> Path:
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(near_dedup_recipe(corpus, tokenizer_json, **changes)))
    out = root / "out"
    assert main(["shards", "--recipe", str(recipe), "--out", str(out), "--workers", "2", *args]) == 0
    return out


def removals(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "report" / "near_dedup.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, nd_corpus, tokenizer_json) -> Path:
    return build(tmp_path_factory.mktemp("nd_reference"), nd_corpus, tokenizer_json)


def test_the_real_pairs_are_found_and_only_they(reference, nd_corpus):
    found = {(r["domain"], r["removed"]): r["kept"] for r in removals(reference)}
    assert found == EXPECTED  # freeze.py of the two releases (Jaccard ~0.67) stays, as do the other books
    for r in removals(reference):
        assert r["similarity"] >= 0.8
        assert r["characters"] > 0
    kept_lengths = {
        "pipmods-pip-23.0.1": sum(
            len(p.read_text()) for p in (nd_corpus / "repos/pipmods-pip-23.0.1").iterdir()
        ),
        "pipmods-pip-26.3": sum(len(p.read_text()) for p in (nd_corpus / "repos/pipmods-pip-26.3").iterdir()),
    }
    assert kept_lengths["pipmods-pip-23.0.1"] > kept_lengths["pipmods-pip-26.3"]  # longest is kept


def test_the_shards_hold_the_kept_documents_and_the_reports_count_the_removed(reference):
    manifest = read_json(reference / "manifest.json")
    for domain, kept in (
        ("book-1024", 3),
        ("code-512", 3),
        ("stack-512", 3),
    ):  # of 4 books, of 4 repositories
        assert manifest["domains"][domain]["near_dedup"]["removed"] == 1
        assert manifest["domains"][domain]["documents"] == kept
        stats = read_json(reference / domain / "manifest.json")["stats"]["near dedup"]
        assert stats["dropped_near_duplicate"] == 1 and stats["forwarded"] == kept
    report = (reference / "report" / "report.md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("near-duplicates removed: "))
    assert "code-512 1 (" in line and "book-1024 1 (" in line and line.endswith("(report/near_dedup.jsonl)")


def test_keep_first_keeps_the_smallest_id(tmp_path, nd_corpus, tokenizer_json):
    out = build(tmp_path, nd_corpus, tokenizer_json, near_dedup={"keep": "first"})
    found = {(r["domain"], r["removed"]): r["kept"] for r in removals(out)}
    assert found == {
        ("book-1024", "pg11-alice-s-adventures-in-wonderland"): "edition-b",
        ("code-512", "pipmods-pip-26.3"): "pipmods-pip-23.0.1",
        ("stack-512", "org/pipmods-pip-26.3"): "org/pipmods-pip-23.0.1",
    }


def test_the_same_removals_and_shards_at_one_task(tmp_path, reference, nd_corpus, tokenizer_json):
    out = build(tmp_path, nd_corpus, tokenizer_json, "--tasks", "1")
    assert (out / "report" / "near_dedup.jsonl").read_bytes() == (
        reference / "report" / "near_dedup.jsonl"
    ).read_bytes()


def test_keep_removed_writes_the_removed_documents(tmp_path, nd_corpus, tokenizer_json):
    recipe = near_dedup_recipe(nd_corpus, tokenizer_json)
    for domain in recipe["domains"]:
        domain["keep_removed"] = True
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["shards", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 0
    import gzip

    ids = {
        json.loads(line)["id"]
        for f in (tmp_path / "out" / "removed").glob("*/near_dedup/*.jsonl.gz")
        for line in gzip.open(f, "rt")
    }
    assert ids == {"edition-b", "pipmods-pip-26.3", "org/pipmods-pip-26.3"}


def test_a_lost_removals_file_is_rebuilt_and_a_killed_build_resumes_to_the_same_bytes(
    tmp_path, reference, nd_corpus, tokenizer_json
):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(near_dedup_recipe(nd_corpus, tokenizer_json)))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = shards_command(recipe, out, "--workers", "2")
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = out / ".build" / "logs" / "near_dedup" / "completions"
    deadline = time.monotonic() + 600  # a bound on a hung build, not a timing assertion
    while (
        proc.poll() is None
        and time.monotonic() < deadline
        and not (marker.is_dir() and any(marker.iterdir()))
    ):
        time.sleep(0.005)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert tree_bytes(out) == tree_bytes(reference)
    (out / ".build" / "near_dedup" / "book-1024" / "removed.jsonl").unlink()
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert tree_bytes(out) == tree_bytes(reference)


def test_verify_checks_the_removal_report_against_the_manifest(tmp_path, reference):
    import shutil

    from prolong_data.verify import check

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    assert check(out).problems == []
    path = out / "report" / "near_dedup.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))
    assert any("near_dedup.jsonl: 0 lines for domain" in p for p in check(out).problems)
    path.unlink()
    assert any("near_dedup.jsonl is missing" in p for p in check(out).problems)

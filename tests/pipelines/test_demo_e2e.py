"""End to end on the sample corpus: `demo` builds, verifies, reads back at the recipe's shares,
and a build killed mid-way resumes to the same bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import shards_command, tree_bytes

from prolong_data.inspection import iter_samples
from prolong_data.mixture import read_mixture, to_streams
from prolong_data.verify import verify

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DOMAINS = [
    "thestackv1_concat_by_repo-65536",
    "book-65536",
    "textbooks",
    "fineweb-edu",
    "fineweb-2023-50",
    "stackexchange",
    "dolmawiki",
    "tuluv2",
    "openwebmath",
]


def demo_command(out: Path, corpus: Path) -> list[str]:
    return shards_command("demo", out, "--corpus", str(corpus), "--tasks", "2", "--workers", "2")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("demo") / "shards"
    done = subprocess.run(demo_command(out, corpus), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = (done.stdout + done.stderr).splitlines()
    assert len(printed) <= 79, "\n".join(printed)  # `make shards` adds its command line: two screens
    return out


def test_demo_layout_and_verify(demo):
    assert sorted(p.name for p in demo.iterdir() if (p / "index.json").is_file()) == sorted(DOMAINS)
    for name in (
        "mixture.json",
        "manifest.json",
        "recipe.yaml",
        "report/report.md",
        "report/budget.json",
        "report/document_lengths.png",
        "report/mixture_shares.png",
    ):
        assert (demo / name).is_file(), name
    report = verify(demo)
    assert report.folders == len(DOMAINS) and report.tokens == report.samples * 65536


def test_streaming_reads_back_the_recipe_shares(demo):
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    mixture, root = read_mixture(demo)
    assert [s.domain for s in mixture.streams] == DOMAINS
    clean_stale_shared_memory()
    dataset = StreamingDataset(
        streams=to_streams(mixture, root), epoch_size=1000, shuffle=False, batch_size=1
    )
    counts = Counter(sample["domain"] for sample in dataset)
    total = sum(counts.values())
    for stream in mixture.streams:
        assert abs(counts[stream.domain] / total - stream.proportion) < 0.02, (stream.domain, counts)


def test_every_code_document_is_a_multi_file_repository(demo, tokenizer_json):
    from prolong_data.tokenization import load_tokenizer

    tok = load_tokenizer(tokenizer_json)
    repos = set()
    for _, _, row in iter_samples(demo / DOMAINS[0]):
        for start, end in row["indices"].astype(np.int64):
            ids = row["input_ids"][start:end]
            if ids[0] != tok.bos_id:
                continue  # a later chunk of a repository
            text = tok.decode(ids[1:].tolist())
            headers = [line[len("# File: ") :] for line in text.splitlines() if line.startswith("# File: ")]
            assert text.startswith("# File: ") and len(headers) >= 2
            assert len({h.split("/")[0] for h in headers}) == 1  # one repository per document
            repos.add(headers[0].split("/")[0])
    assert len(repos) >= 8 and {"asyncio", "email"} <= repos


def test_killed_build_resumes_to_the_same_bytes(demo, corpus, tmp_path):
    out = tmp_path / "shards"
    proc = subprocess.Popen(
        demo_command(out, corpus),
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    completions = out / ".build" / "logs" / "build" / "completions"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if completions.is_dir() and len(list(completions.iterdir())) >= 3:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: executor and its workers
    proc.wait()
    finished_before = len(list(completions.iterdir()))
    assert 3 <= finished_before < 12 and not (out / "mixture.json").exists()

    done = subprocess.run(demo_command(out, corpus), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Skipping" in (out / ".build" / "logs" / "shards.log").read_text()  # finished tasks not redone
    assert tree_bytes(out) == tree_bytes(demo)

"""End to end: `prolong-data shards --recipe sft-demo` builds masked chat shards that verify and
decode back to the assistant messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus_files import iter_rows

from prolong_data.inspection import iter_samples
from prolong_data.mds import read_manifest
from prolong_data.verify import verify

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_sft_demo_builds_verifies_and_masks_the_assistant_turns(tmp_path, corpus, llama3_tok):
    out = tmp_path / "sft-demo"
    cmd = [sys.executable, "-m", "pipelines.cli", "shards", "--recipe", "sft-demo", "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--corpus", str(corpus)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert verify(out).samples == 7  # 445,441 tokens of 2,250 chats in 65,536-token sequences

    rows = [row["messages"] for row in iter_rows(corpus, "sft/chat.jsonl")]
    want = sorted(
        "".join(m["content"].strip() + "<|eot_id|>" for m in r if m["role"] == "assistant") for r in rows
    )
    got = []
    for _, _, row in iter_samples(out / "ultrachat"):
        assert row["mask"].dtype == np.uint8 and row["domain"] == "ultrachat"
        for a, b in row["indices"].astype(int):
            if row["mask"][a:b].any():
                got.append(llama3_tok.decode(row["input_ids"][a:b][row["mask"][a:b] == 1].tolist()))
    assert sorted(got) == want
    packing = read_manifest(out / "ultrachat")["packing"]
    assert packing["documents"] == 2250 and packing["dropped_documents"] == 0
    # keeping every chat, 7 sequences are the minimum: the padded share is the floor for this input
    assert packing["padded_tokens"] == 7 * 65536 - 445441
    mixture = json.loads((out / "mixture.json").read_text())
    assert mixture["streams"] == [{"domain": "ultrachat", "path": "ultrachat", "proportion": 1.0}]

"""A fixed-seed run on real corpus text (Llama-3 tokens) reproduces the stored loss curve, which falls.

Regenerate the golden file after an intended change with
``.venv/bin/python tests/trainer/test_golden_curve.py`` (it prints the old and new curves).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import corpus_documents, pack_documents, tiny_overrides, write_domain, write_mixture  # noqa: E402

from trainer.metrics import read_metrics  # noqa: E402
from trainer.train import main  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden" / "loss_curve.json"
STAGE1 = str(Path(__file__).resolve().parents[2] / "trainer" / "configs" / "stage1-64k.yaml")
SETTINGS = {"train.steps": 8, "optim.lr": 1e-2, "train.seed": 1234, "model.loss_chunk_size": 200}


def golden_run(mixture: Path, out: Path) -> list[float]:
    """The 8 step losses of the tiny Llama (Llama-3 vocabulary) on the corpus shards."""
    args = tiny_overrides(mixture, out, 256, vocab=128256, **SETTINGS)
    run_dir = main(["--config", STAGE1, *args, "--checkpoint.export_hf=false"])
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl")]


def test_golden_loss_curve(corpus_shards, tmp_path):
    losses = golden_run(corpus_shards, tmp_path / "run")
    expected = json.loads(GOLDEN.read_text())["losses"]
    assert losses == pytest.approx(expected, rel=2e-3, abs=2e-3)
    assert losses[-1] < losses[0] - 0.5, "the loss does not fall"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for domain, docs in corpus_documents().items():
            write_domain(root / domain, domain, pack_documents(docs, 256))
        new = golden_run(write_mixture(root, 256, {"book": 0.6, "wiki": 0.4}), root / "run")
    old = json.loads(GOLDEN.read_text())["losses"] if GOLDEN.is_file() else None
    print("old:", old, "\nnew:", new)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"settings": SETTINGS, "losses": new}, indent=1) + "\n")

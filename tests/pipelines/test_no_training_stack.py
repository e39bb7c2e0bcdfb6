"""`shards`, `verify` and `inspect` never import the training stack (the core install has none).

The full proof, a fresh venv with the core install only, is `tests/test_core_install.py` (slow);
this one blocks the imports in the development venv and runs in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("torch", "torchvision", "transformers", "streaming", "matplotlib", "llama_models")

RUN = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` now raises ImportError
from pipelines.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r} and sys.modules[m] is not None)
assert not loaded, loaded
sys.exit(code)
"""


def cli_without_training_stack(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN.format(blocked=BLOCKED), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,  # a build of seconds; generous for a loaded machine
    )


def test_shards_verify_inspect_run_without_torch_transformers_streaming(tmp_path, tiny_recipe_file):
    out = tmp_path / "out"
    built = cli_without_training_stack("shards", "--recipe", tiny_recipe_file, "--out", out, "--workers", 1)
    assert built.returncode == 0, built.stderr
    assert "plots skipped: matplotlib is not installed (pip install 'prolong-data[plot]')" in built.stdout
    assert (out / "report" / "report.md").is_file() and not list((out / "report").glob("*.png"))
    verified = cli_without_training_stack("verify", out)
    assert verified.returncode == 0 and "verify OK: 4 folder(s)" in verified.stdout, verified.stderr
    inspected = cli_without_training_stack("inspect", out, "--sample", 0)
    assert inspected.returncode == 0, inspected.stderr
    assert "histogram plot skipped" in inspected.stdout and "book-1024" in inspected.stdout

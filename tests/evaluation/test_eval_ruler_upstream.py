"""Our RULER/HELMET procedures against RULER's own generator code, imported from a local RULER
checkout named by ``PROLONG_RULER_DIR`` (nothing of RULER is vendored here).

    git clone https://github.com/NVIDIA/RULER /tmp/RULER
    PROLONG_RULER_DIR=/tmp/RULER pytest tests/evaluation/test_eval_ruler_upstream.py

Without the variable every test skips, saying so. The templates test needs only the checkout; the
needle generator test also needs the packages RULER's ``niah.py`` and ``tokenizer.py`` import
(``wonderwords``, ``nltk``, ``numpy``, ``tenacity``), and skips naming them when they are missing.
"""

from __future__ import annotations

import importlib
import os
import random
import re
import sys
from pathlib import Path

import pytest

from prolong_data.evaluation.datadir import HELMET_MV_USER, HELMET_NIAH_USER
from prolong_data.evaluation.tasks.helmet import HAYSTACK_NEEDLE, RULER_DEPTHS
from prolong_data.evaluation.tasks.json_kv import random_uuid
from prolong_data.evaluation.tasks.niah import NEEDLE, random_key, random_value, templates
from prolong_data.evaluation.tasks.ruler import (
    CWE_PREFIX,
    CWE_TEMPLATE,
    FWE_PREFIX,
    FWE_TEMPLATE,
    VT_PREFIX,
    VT_TEMPLATE,
)

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def synthetic_dir() -> Path:
    """RULER's ``scripts/data/synthetic`` folder, put first on ``sys.path`` for the test's imports."""
    root = os.environ.get("PROLONG_RULER_DIR")
    if not root:
        pytest.skip("PROLONG_RULER_DIR is not set: point it at a RULER checkout (github.com/NVIDIA/RULER)")
    folder = Path(root) / "scripts" / "data" / "synthetic"
    if not (folder / "constants.py").is_file():
        pytest.fail(
            f"PROLONG_RULER_DIR={root} has no scripts/data/synthetic/constants.py: not a RULER checkout"
        )
    sys.path[:0] = [str(folder), str(folder.parent)]  # niah.py imports tokenizer.py from scripts/data
    yield folder
    sys.path.remove(str(folder))
    sys.path.remove(str(folder.parent))


def test_templates_and_prefixes_are_rulers(synthetic_dir):
    tasks = importlib.import_module("constants").TASKS
    assert tasks["variable_tracking"]["template"] == VT_TEMPLATE
    assert tasks["common_words_extraction"]["template"] == CWE_TEMPLATE
    assert tasks["freq_words_extraction"]["template"] == FWE_TEMPLATE
    assert tasks["common_words_extraction"]["answer_prefix"].strip() == CWE_PREFIX
    assert tasks["freq_words_extraction"]["answer_prefix"].strip() == FWE_PREFIX
    fill = {"num_v": 5, "query": 12345}
    assert tasks["variable_tracking"]["answer_prefix"].format(**fill).strip() == VT_PREFIX.format(
        n=5, query=12345
    )
    niah = tasks["niah"]
    plural_user, plural_prefix = templates(plural=True)
    ours = {"type_needle_v": "numbers", "query": "{query}", "context": "{context}"}
    assert niah["template"].format(**ours) == plural_user
    assert niah["answer_prefix"].format(**ours).strip() == plural_prefix
    assert niah["template"].replace("{type_needle_v}", "uuids") == HELMET_MV_USER.replace(
        "{type_needle_v}", "uuids"
    )
    singular = HELMET_NIAH_USER.replace("{type_needle_v}", "number")  # HELMET's singular wording
    assert singular == templates(plural=False)[0]


def test_needle_generator_formats_and_depths_are_rulers(synthetic_dir, llama3_dir, monkeypatch):
    for package in ("wonderwords", "nltk", "numpy", "tenacity"):
        pytest.importorskip(
            package, reason=f"RULER's niah.py (or its tokenizer.py) imports {package}, which is not installed"
        )
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "niah.py",
            "--save_dir",
            "/nonexistent",
            "--save_name",
            "t",
            "--tokenizer_path",
            str(llama3_dir),
            "--tokenizer_type",
            "hf",
            "--max_seq_length",
            "1024",
            "--tokens_to_generate",
            "50",
            "--num_samples",
            "1",
            "--type_haystack",
            "needle",
        ],
    )  # fmt: skip  (niah.py reads its arguments when imported)
    niah = importlib.import_module("niah")
    assert [int(d) for d in niah.DEPTHS] == RULER_DEPTHS
    assert niah.needle.replace("{type_needle_v}", "{kind}") == HAYSTACK_NEEDLE
    assert niah.needle.replace("{type_needle_v}", "numbers") == NEEDLE
    rng = random.Random(0)
    for _ in range(50):
        theirs = (niah.generate_random_number(), niah.generate_random_uuid(), niah.generate_random_word())
        ours = (random_value(rng), random_uuid(rng), random_key(rng))
        for a, b, pattern in zip(theirs, ours, (r"\d{7}", UUID4, r"[^\n]+-[^\n]+")):
            assert re.fullmatch(pattern, a) and re.fullmatch(pattern, b), (a, b)

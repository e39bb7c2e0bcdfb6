"""`prolong_data.layout` owns every output name: no other module of the project spells one."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from prolong_data import layout

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("prolong_data", "pipelines", "trainer", "evaluation", "bench")
OWNED_NAMES = {
    layout.INDEX,
    layout.MANIFEST,
    layout.MIXTURE,
    layout.RECIPE,
    layout.OPTIONS,
    layout.LOG_FILE,
    layout.WORK,
    layout.REPORT_TEXT,
    layout.BUDGET_REPORT,
    layout.BAD_INPUT_REPORT,
    layout.LENGTHS_PLOT,
    layout.SHARES_PLOT,
}
OWNED_PREFIXES = (layout.RANK_PREFIX, "packing.", "budget-")
"""Names built from a number or a stem: rank folders, packing reports, a sweep's budget."""


def python_files() -> list[Path]:
    """The project's tracked Python files (every file of the packages outside a git checkout)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--", *PACKAGES],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        files = [REPO / name for name in listed if name.endswith(".py")]
    except (OSError, subprocess.CalledProcessError):
        files = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    return [p for p in files if p.is_file() and p.resolve() != Path(layout.__file__).resolve()]


def spelled_names(source: str) -> list[tuple[int, str]]:
    """(line, string) of every string value in `source` (docstrings and prose excepted) that is an
    output name: one of `OWNED_NAMES` whole, or starting with one of `OWNED_PREFIXES`."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            if text in OWNED_NAMES or text.startswith(OWNED_PREFIXES):
                found.append((node.lineno, text))
    return found


def test_the_check_finds_a_spelled_name():
    source = (
        '"""index.json in a docstring is prose."""\n'
        'a = "index.json"\n'
        'b = f"rank-{3:05d}"\n'
        'c = "the folder has no index.json"\n'
        "d = INDEX\n"
    )
    assert spelled_names(source) == [(2, "index.json"), (3, "rank-")]


def test_no_module_but_layout_spells_an_output_name():
    files = python_files()
    assert any(p.name == "build.py" for p in files)  # the listing found the project
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {text!r}"
        for path in files
        for line, text in spelled_names(path.read_text())
    ]
    assert not offenders, "spell these through prolong_data.layout:\n" + "\n".join(offenders)


def test_rank_and_packing_names():
    assert layout.rank_folder("d", 7) == Path("d/rank-00007")
    assert layout.packing_report("d", 7) == Path("d/packing.00007.json")
    assert layout.index_file("d") == Path("d/index.json")
    assert Path("d/rank-00007").match(f"d/{layout.RANK_GLOB}")
    assert Path("d/packing.00007.json").match(f"d/{layout.PACKING_GLOB}")
    assert layout.budget_report_name() == "budget.json"
    assert layout.budget_report_name("mixture-long40.json") == "budget-mixture-long40.json"
    for mixture_file in ("mixture.json", "mixture-long40.json"):
        assert Path(layout.budget_report_name(mixture_file)).match(layout.BUDGET_GLOB)

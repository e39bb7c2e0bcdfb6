"""The wheel's top-level import names: what `pip install prolong-data` puts on a user's path."""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"prolong_data", "pipelines", "trainer"}
"""The evaluator is `prolong_data.evaluation`: no top-level `evaluation` next to a user's own."""


def table_line(table: str, key: str) -> str:
    """The value of `key` in `[table]` of pyproject.toml (one line; tomllib needs Python 3.11)."""
    section = (REPO / "pyproject.toml").read_text().split(f"\n[{table}]\n", 1)[1].split("\n[", 1)[0]
    (value,) = re.findall(rf"^{re.escape(key)}\s*=\s*(.+)$", section, re.M)
    return value.strip()


def test_the_wheel_installs_only_the_named_top_level_packages():
    include = re.findall(r'"([^"]+)"', table_line("tool.setuptools.packages.find", "include"))
    packages = find_packages(where=str(REPO), include=include)
    assert {name.split(".")[0] for name in packages} == TOP_LEVEL
    assert "prolong_data.evaluation" in packages and "prolong_data.evaluation.tasks" in packages
    assert "prolong_data.tokenization" in packages


def test_the_console_script_names_an_installed_module():
    module = table_line("project.scripts", "prolong-data").strip('"').split(":")[0]
    assert module.split(".")[0] in TOP_LEVEL and (REPO / (module.replace(".", "/") + ".py")).is_file()

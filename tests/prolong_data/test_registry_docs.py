"""The lists of source kinds and pack modes in the docs are the registries' lists: a kind or a
mode added in one file fails here until the docs name it (and a removed one until they drop it)."""

from __future__ import annotations

import re
from pathlib import Path

import prolong_data.sources
from prolong_data.packing.registry import pack_mode_class, pack_modes
from prolong_data.sources.registry import source_class, source_kinds

REPO = Path(__file__).resolve().parents[2]


def shipped_kinds() -> list[str]:
    """The kinds this package registers (tests may register their own)."""
    return [k for k in source_kinds() if source_class(k).__module__.startswith("prolong_data.sources.")]


def shipped_modes() -> list[str]:
    return [m for m in pack_modes() if pack_mode_class(m).__module__.startswith("prolong_data.packing.")]


def table_names(text: str) -> list[str]:
    """The backquoted names that start the rows of the Markdown tables in `text`."""
    return sorted(re.findall(r"^\| `([a-z_]+)`", text, re.M))


def test_the_kinds_in_the_package_docstring_and_docs_sources_are_the_registered_ones():
    kinds = shipped_kinds()
    assert len(kinds) >= 7
    assert table_names(prolong_data.sources.__doc__) == kinds
    documented = sorted(re.findall(r"^### `([a-z_]+)`", (REPO / "docs" / "sources.md").read_text(), re.M))
    assert documented == kinds


def test_the_modes_in_docs_packing_are_the_registered_ones():
    modes = shipped_modes()
    assert modes == ["best_fit", "concat", "length_binned"]
    packing = (REPO / "docs" / "packing.md").read_text()
    assert table_names(packing.split("\n## ")[0]) == modes  # the table above the first section
    assert sorted(re.findall(r"^## `([a-z_]+)`", packing, re.M)) == modes

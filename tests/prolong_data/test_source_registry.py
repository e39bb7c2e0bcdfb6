"""Source kinds: one config class per kind, found by `kind`, each building its own reader."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from prolong_data.config import ConfigError, from_dict
from prolong_data.sources.registry import (
    FileSourceConfig,
    ReaderContext,
    SourceConfig,
    register_source,
    source_class,
    source_kinds,
)

BUILT_IN = ["book_files", "chat", "code_folders", "code_rows", "hub", "rows", "tokenized"]


def test_every_built_in_kind_is_registered():
    assert set(BUILT_IN) <= set(source_kinds())
    for kind in BUILT_IN:
        cls = source_class(kind)
        assert issubclass(cls, SourceConfig) and cls.__doc__.startswith(f"`{kind}`")


@pytest.mark.parametrize(
    "data, reader",
    [
        ({"kind": "book_files", "paths": ["b"]}, "BookFolderReader"),
        ({"kind": "rows", "paths": ["r"], "render": "tulu", "keep_where": {"a.b": "c"}}, "TextRowsReader"),
        ({"kind": "code_folders", "paths": ["c"], "include": ["x"]}, "RepoFolderReader"),
        ({"kind": "code_rows", "paths": ["s"]}, "StackRowsReader"),
        ({"kind": "chat", "paths": ["c"], "chat_format": "tulu-text"}, "ChatRowsReader"),
    ],
)
def test_each_kind_builds_its_reader(data, reader):
    source = from_dict(SourceConfig, data)
    step = source.reader(ReaderContext(bad_input_file="bad.{rank}.json", utf8="drop"))
    assert type(step).__name__ == reader and step.paths == data["paths"]
    assert step.utf8 == "drop" and step.bad_input_file == "bad.{rank}.json"


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"kind": "rows", "paths": ["x"], "include": ["a"]},
            r"unknown `rows` source field\(s\) \['include'\]; allowed: \[.*'keep_where'",
        ),
        (
            {"kind": "book_files", "paths": ["x"], "text_key": "t"},
            r"`book_files` source field\(s\) \['text_key'\]",
        ),
        ({"kind": "hub", "paths": ["x"], "dataset": "d"}, r"unknown `hub` source field\(s\) \['paths'\]"),
        ({"kind": "hub"}, r"`hub` source needs the field\(s\) \['dataset'\]"),
        ({"kind": "rows"}, "a 'rows' source needs `paths: \\[...\\]`"),
        ({"kind": "rows", "paths": ["x"], "render": "chatml"}, r"render: 'chatml' is not one of \['tulu'\]"),
        ({"kind": "scrolls", "paths": ["x"]}, r"source kind 'scrolls' is not one of \['book_files'"),
        ({"paths": ["x"]}, "a source needs `kind:`"),
        ({"kind": "rows", "paths": ["x"], "hash_split": [2, 2]}, "hash_split"),
    ],
)
def test_a_field_of_another_kind_is_an_error(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(SourceConfig, data, "sources.0")


def test_a_new_kind_is_one_class(tmp_path):
    """What a new module in prolong_data/sources/ holds: a reader and its registered config."""
    from prolong_data.sources.base import SourceReader, document

    class LinesReader(SourceReader):
        name = "lines"

        def read_unit(self, unit):
            for i, line in enumerate(open(unit).read().splitlines()):
                yield document(line, f"{unit}:{i}", unit)

    @register_source
    @dataclass(kw_only=True)
    class LinesSource(FileSourceConfig):
        """`test_lines`: every line of a file is a document."""

        kind: str = "test_lines"

        def reader(self, context):
            return LinesReader(self.paths, glob=self.glob, **context.reader_options())

    (tmp_path / "a.txt").write_text("one\ntwo\n")
    source = from_dict(SourceConfig, {"kind": "test_lines", "paths": [str(tmp_path / "a.txt")]})
    assert isinstance(source, LinesSource) and "test_lines" in source_kinds()
    docs = list(source.reader(ReaderContext()).run())
    assert [d.text for d in docs] == ["one", "two"]
    with pytest.raises(ValueError, match="registered twice"):

        @register_source
        @dataclass(kw_only=True)
        class Again(FileSourceConfig):
            kind: str = "test_lines"


def test_paths_are_expanded_in_path_fields_only():
    rows = from_dict(SourceConfig, {"kind": "rows", "paths": ["{corpus}/a"], "text_key": "{corpus}"})
    hub = from_dict(SourceConfig, {"kind": "hub", "dataset": "json", "data_files": ["{corpus}/f.jsonl"]})
    expand = lambda text: text.replace("{corpus}", "/c")  # noqa: E731
    assert rows.expand_paths(expand).paths == ["/c/a"] and rows.expand_paths(expand).text_key == "{corpus}"
    assert hub.expand_paths(expand).data_files == ["/c/f.jsonl"]


def test_the_worked_example_in_the_architecture_doc_runs(tmp_path, monkeypatch):
    """docs/architecture.md shows a new kind in one file: that code, run as a module, works."""
    import sys
    import types
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("doc_example_markdown")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, "docs/architecture.md", "exec"), module.__dict__)
    (tmp_path / "a.md").write_text("---\ntitle: x\n---\n# Hello\n")
    source = from_dict(SourceConfig, {"kind": "markdown", "paths": [str(tmp_path)]})
    assert [d.text for d in source.reader(ReaderContext()).run()] == ["# Hello\n"]
    with pytest.raises(ConfigError, match=r"unknown `markdown` source field\(s\) \['include'\]"):
        from_dict(SourceConfig, {"kind": "markdown", "paths": ["x"], "include": ["a"]})

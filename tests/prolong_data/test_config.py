"""The typed config loader: coercion, unknown keys, dotted overrides, polymorphic classes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from prolong_data.config import (
    ConfigError,
    from_dict,
    load,
    merge,
    parse_overrides,
    read_yaml,
    to_dict,
)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(kw_only=True)
class Inner:
    name: str
    size: int = 1
    ratio: float = 0.5

    def __post_init__(self):
        if self.size < 0:
            raise ValueError(f"size must be >= 0, got {self.size}")


@dataclass(kw_only=True)
class Shape:
    kind: str

    @classmethod
    def config_class(cls, data):
        kinds = {"square": Square, "circle": Circle}
        if data.get("kind") not in kinds:
            raise ValueError(f"kind {data.get('kind')!r} is not one of {sorted(kinds)}")
        return kinds[data["kind"]]


@dataclass(kw_only=True)
class Square(Shape):
    kind: str = "square"
    side: int = 1


@dataclass(kw_only=True)
class Circle(Shape):
    kind: str = "circle"
    radius: float = 1.0


@dataclass(kw_only=True)
class Outer:
    flag: bool = False
    count: int = 0
    rate: float = 1.0
    label: str = "x"
    where: Path | None = None
    maybe: int | None = None
    pair: tuple[float, float] = (0.9, 0.95)
    many: tuple[int, ...] = ()
    names: list[str] = field(default_factory=list)
    table: dict[str, int] = field(default_factory=dict)
    mode: Literal["a", "b"] = "a"
    colour: Colour = Colour.RED
    inner: Inner = field(default_factory=lambda: Inner(name="default"))
    items: list[Inner] = field(default_factory=list)
    shapes: list[Shape] = field(default_factory=list)


def test_values_are_converted_to_the_annotations():
    cfg = from_dict(
        Outer,
        {
            "flag": "yes",
            "count": "1e3",
            "rate": 2,
            "label": 7,
            "where": "a/b",
            "maybe": "3",
            "pair": "0.8,0.9",
            "many": [1, "2"],
            "names": ("p", "q"),
            "table": {"k": "5"},
            "mode": "b",
            "colour": "BLUE",
            "inner": {"name": "n", "size": "4"},
            "items": [{"name": "i0"}, {"name": "i1", "ratio": "0.25"}],
            "shapes": [{"kind": "square", "side": 3}, {"kind": "circle"}],
        },
    )
    assert cfg.flag is True and cfg.count == 1000 and cfg.rate == 2.0 and isinstance(cfg.rate, float)
    assert cfg.label == "7" and cfg.where == Path("a/b") and cfg.maybe == 3
    assert cfg.pair == (0.8, 0.9) and cfg.many == (1, 2) and cfg.names == ["p", "q"]
    assert cfg.table == {"k": 5} and cfg.mode == "b" and cfg.colour is Colour.BLUE
    assert cfg.inner == Inner(name="n", size=4) and cfg.items[1].ratio == 0.25
    assert cfg.shapes == [Square(side=3), Circle()]
    assert from_dict(Outer, to_dict(cfg)) == cfg  # plain data round trip
    assert to_dict(cfg)["colour"] == "blue" and to_dict(cfg)["pair"] == [0.8, 0.9]


def test_null_keeps_a_default_unless_the_field_allows_null():
    cfg = from_dict(Outer, {"names": None, "inner": None, "maybe": None})
    assert cfg.names == [] and cfg.inner.name == "default" and cfg.maybe is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"count": "many"}, r"^count: expected an integer, got str 'many'"),
        ({"count": 1.5}, "count: expected an integer"),
        ({"flag": "maybe"}, "flag: expected true or false"),
        ({"rate": [1]}, "rate: expected a number"),
        ({"mode": "c"}, r"mode: 'c' is not one of \['a', 'b'\]"),
        ({"colour": "green"}, "colour: 'green' is not one of"),
        ({"pair": [1, 2, 3]}, "pair: expected 2 items, got 3"),
        ({"inner": {"size": 1}}, r"inner: Inner needs the field\(s\) \['name'\]"),
        ({"inner": {"name": "n", "size": -1}}, "inner: size must be >= 0, got -1"),
        ({"items": [{"name": "ok"}, {"name": "bad", "colour": 1}]}, r"items.bad: unknown Inner field\(s\)"),
        (
            {"items": [{"nam": "x"}]},
            r"items.0: unknown Inner field\(s\) \['nam'\]; allowed: \['name', 'ratio'",
        ),
        ({"shapes": [{"kind": "square", "radius": 2}]}, r"shapes.0: unknown Square field\(s\) \['radius'\]"),
        ({"shapes": [{"kind": "hexagon"}]}, "shapes.0: kind 'hexagon' is not one of"),
        ({"colour_": 1}, r"unknown Outer field\(s\) \['colour_'\]; allowed: \['colour', 'count'"),
        ([1, 2], "expected a mapping of Outer fields"),
    ],
)
def test_errors_name_the_field_and_the_fix(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_parse_overrides():
    assert parse_overrides(["--a.b=1", "--a.c", "x", "--flag", "--e=", "--l=[1, 2]"]) == {
        "a": {"b": 1, "c": "x"},
        "flag": True,
        "e": None,
        "l": [1, 2],
    }
    assert parse_overrides(["--domains.book-65536.proportion=0.2"]) == {
        "domains": {"book-65536": {"proportion": 0.2}}
    }
    assert parse_overrides(["--path=[oops"]) == {"path": "[oops"}  # not YAML: kept as text
    for bad in (["stray"], ["--"], ["--a..b=1"]):
        with pytest.raises(ConfigError, match="--section.field=value"):
            parse_overrides(bad)


def test_overrides_merge_into_nested_fields_and_list_items():
    data = {
        "inner": {"name": "n", "size": 2},
        "items": [{"name": "first"}, {"name": "second-one", "size": 3}],
        "shapes": [{"kind": "square", "side": 2}],
        "table": {"a": 1},
    }
    cfg = load(
        Outer,
        data,
        [
            "--inner.size=5",
            "--items.0.ratio=0.1",
            "--items.second-one.size=4",  # an item by its name (dashes kept)
            "--shapes.0.side=9",
            "--table.b=2",
            "--count=3",
        ],
    )
    assert cfg.inner == Inner(name="n", size=5)
    assert cfg.items == [Inner(name="first", ratio=0.1), Inner(name="second-one", size=4)]
    assert cfg.shapes == [Square(side=9)] and cfg.table == {"a": 1, "b": 2} and cfg.count == 3
    assert data["inner"]["size"] == 2  # the input is not changed
    assert merge(Outer, {"table": {"x": 1}}, {"table": {"y": 2}}) == {"table": {"x": 1, "y": 2}}
    assert merge(Outer, {"names": ["a"]}, {"names": ["b"]}) == {"names": ["b"]}  # a list value replaces


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--inner.colour=1"], r"inner: unknown Inner field\(s\) \['colour'\]"),
        (["--nope=1"], r"unknown Outer field\(s\) \['nope'\]"),
        (["--items.5.size=1"], "items: index 5 is out of range: the list has 2 items"),
        (["--items.third.size=1"], r"items: no item named 'third'; give an index \(0-1\) or one of"),
        (["--shapes.0.radius=1"], r"shapes.0: unknown Square field\(s\) \['radius'\]"),
        (["--count=lots"], "count: expected an integer"),
    ],
)
def test_bad_overrides_say_where(overrides, message):
    data = {"items": [{"name": "first"}, {"name": "second"}], "shapes": [{"kind": "square"}]}
    with pytest.raises(ConfigError, match=message):
        load(Outer, data, overrides)


def test_dashes_stand_for_underscores_in_field_names():
    @dataclass(kw_only=True)
    class Budget:
        token_budget: int = 0

    assert load(Budget, {}, ["--token-budget=5"]).token_budget == 5
    assert load(Budget, {}, ["--token_budget", "6"]).token_budget == 6


def test_read_yaml_reports_file_and_line(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\n")
    assert read_yaml(good) == {"a": 1}
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: YAML syntax error"):
        read_yaml(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_yaml(listed)

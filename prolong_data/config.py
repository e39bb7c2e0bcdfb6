"""Typed configuration: dataclasses built from YAML or dicts, and dotted command-line overrides.

One loader serves every configuration of the project (recipes, trainer configs, source kinds):

* `from_dict(cls, data)` builds dataclass `cls` from plain data, converting each value to its
  field's annotation (`int`, `float`, `bool`, `str`, `Path`, `Optional[...]`, `list[...]`,
  `tuple[...]`, `dict[...]`, `Literal[...]`, enums and nested dataclasses). A key that is not a
  field is an error naming the allowed fields and where it was (`domains.book-65536.pack`);
  validation stays in each class's `__post_init__` (raising `ValueError`).
* `parse_overrides(["--a.b=1", "--c", "x"])` turns command-line flags into a nested dict, and
  `merge(cls, data, overrides)` lays it over the file's data, checking each key against `cls`.
  Inside a list, a key selects an item by position (`domains.0`) or by its `name`
  (`domains.fineweb-edu`). Values are read as YAML (`--steps=3` is an int, `--betas=0.9,0.95` a
  pair).
* A base class can stand for several concrete classes chosen by the data (the source kinds,
  chosen by `kind`; the pack modes, by `mode`): it defines a classmethod
  `config_class(data: dict) -> type`, and `config_key`, the field that chooses, when it is not
  `kind`.
"""

from __future__ import annotations

import dataclasses
import enum
import reprlib
import types
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration that cannot be loaded; the message says where and what to fix."""


def _at(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def _child(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------


@cache
def field_types(cls: type) -> dict[str, Any]:
    """{field name: resolved annotation} of dataclass `cls` (init fields only)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def concrete_class(cls: type, data: Mapping, where: str = "") -> type:
    """The dataclass that `data` describes: `cls`, or the one its `config_class` hook picks."""
    hook = getattr(cls, "config_class", None)
    if hook is None:
        return cls
    try:
        return hook(data)
    except ValueError as err:
        raise ConfigError(_at(where, str(err))) from None


def label(cls: type) -> str:
    """How messages name a config class (`config_label` if it has one)."""
    return getattr(cls, "config_label", None) or cls.__name__


def _is_optional(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _strip_optional(hint):
    """`X` for `X | None` (a union of several other types stays a union)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 60
_SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = _SHORT_REPR.maxdict = _SHORT_REPR.maxset = 6
_SHORT_REPR.maxlevel = 3


def short_repr(value) -> str:
    """`repr(value)` cut to a few items and characters: an error message never spells out a huge
    value (building the repr of a big nested list can take minutes and all the memory)."""
    return _SHORT_REPR.repr(value)


def _describe(value) -> str:
    return "null" if value is None else f"{type(value).__name__} {short_repr(value)}"


# --------------------------------------------------------------------------------------------
# Coercion: plain data -> the annotated type
# --------------------------------------------------------------------------------------------

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def coerce(value, hint, where: str = ""):
    """`value` converted to annotation `hint`, or `ConfigError` saying what was expected."""
    if hint is Any or hint is object:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        if hint is type(None) or _is_optional(hint):
            return None
        raise ConfigError(_at(where, f"expected {_name(hint)}, got null"))
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return coerce(value, options[0], where)
        for option in options:
            try:
                return coerce(value, option, where)
            except ConfigError:
                continue
        names = " or ".join(_name(o) for o in options)
        raise ConfigError(_at(where, f"expected {names}, got {_describe(value)}"))
    if origin is typing.Literal:
        for allowed in args:
            if value == allowed and type(value) is type(allowed):
                return allowed
        raise ConfigError(_at(where, f"{short_repr(value)} is not one of {list(args)}"))
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                _at(where, f"expected a mapping of {label(hint)} fields, got {_describe(value)}")
            )
        return from_dict(hint, value, where)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        return _coerce_sequence(value, hint, where)
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(_at(where, f"expected a mapping, got {_describe(value)}"))
        key_type, value_type = args or (Any, Any)
        return {coerce(k, key_type, where): coerce(v, value_type, _child(where, k)) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _coerce_enum(value, hint, where)
    if hint in _SCALARS:
        return _SCALARS[hint](value, where)
    return value


def _coerce_sequence(value, hint, where: str):
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if isinstance(value, str):  # a command-line list: "0.9,0.95" or "[a, b]"
        value = parse_yaml(value if value.lstrip().startswith("[") else f"[{value}]", f"<{where or 'value'}>")
    if not isinstance(value, (list, tuple)):
        raise ConfigError(_at(where, f"expected a list, got {_describe(value)}"))
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(_at(where, f"expected {len(args)} items, got {len(value)}"))
        return tuple(coerce(v, t, _child(where, i)) for i, (v, t) in enumerate(zip(value, args)))
    item = args[0] if args else Any
    items = [coerce(v, item, _child(where, _item_key(i, v))) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _item_key(index: int, value):
    """How a message names a list item: its `name` when it has one, else its index."""
    name = value.get("name") if isinstance(value, Mapping) else None
    return name if isinstance(name, str) and name else index


def _coerce_enum(value, hint: type[enum.Enum], where: str):
    for member in hint:
        if value == member.value or value == member.name or value is member:
            return member
    raise ConfigError(_at(where, f"{short_repr(value)} is not one of {[m.value for m in hint]}"))


def _to_bool(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(_at(where, f"expected true or false, got {_describe(value)}"))


def _to_int(value, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                number = None
    if isinstance(number, float) and number.is_integer():
        return int(number)  # 1e6 or 65536.0
    raise ConfigError(_at(where, f"expected an integer, got {_describe(value)}"))


def _to_float(value, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ConfigError(_at(where, f"expected a number, got {_describe(value)}"))


def _to_str(value, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(_at(where, f"expected a string, got {_describe(value)}"))


def _to_path(value, where: str) -> Path:
    if isinstance(value, (str, Path)):
        return Path(value)
    raise ConfigError(_at(where, f"expected a path, got {_describe(value)}"))


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, Path: _to_path}


def _name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# --------------------------------------------------------------------------------------------
# Dataclasses from dicts
# --------------------------------------------------------------------------------------------


def from_dict(cls: type, data: Mapping | None, where: str = ""):
    """An instance of dataclass `cls` (or of the class its `config_class` hook picks) from `data`.

    Keys are field names; each value is converted to its field's type. A field whose value is
    null and whose type does not allow null keeps its default (an empty `sources:` in YAML).
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(_at(where, f"expected a mapping of {label(cls)} fields, got {_describe(data)}"))
    cls = concrete_class(cls, data, where)
    types_ = field_types(cls)
    check_keys(cls, data, where)
    defaults = {f.name for f in dataclasses.fields(cls) if _has_default(f)}
    kwargs = {}
    for key, value in data.items():
        hint = types_[key]
        if value is None and key in defaults and not _is_optional(hint):
            continue
        kwargs[key] = coerce(value, hint, _child(where, key))
    missing = sorted(n for n in types_ if n not in kwargs and n not in defaults)
    if missing:
        raise ConfigError(_at(where, f"{label(cls)} needs the field(s) {missing}"))
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(_at(where, str(err))) from None


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def check_keys(cls: type, data: Mapping, where: str = "") -> None:
    """`ConfigError` naming the allowed fields when `data` has a key that is not a field of `cls`."""
    allowed = field_types(cls)
    unknown = sorted(short_repr(k) if not isinstance(k, str) else k for k in data if k not in allowed)
    if unknown:
        shown = short_repr(unknown)
        raise ConfigError(_at(where, f"unknown {label(cls)} field(s) {shown}; allowed: {sorted(allowed)}"))


def to_dict(obj) -> dict:
    """Plain data (dicts, lists, scalars) of a dataclass, loadable again by `from_dict`."""
    return _plain(dataclasses.asdict(obj))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def parse_overrides(args: Sequence[str]) -> dict:
    """``["--optim.lr=1e-5", "--train.steps", "3", "--smoke"]`` -> a nested dict of overrides.

    A flag without a value is `true`; values are read as YAML (`3` an int, `[a, b]` a list,
    an empty value null). Keys are kept as written (`domains.book-65536.proportion`); `merge`
    matches them to fields, accepting `-` for `_`.
    """
    tree: dict = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(
                f"unexpected argument {short_repr(arg)}; write overrides as --section.field=value"
            )
        key, sep, raw = arg[2:].partition("=")
        if not sep:
            has_value = index + 1 < len(args) and not args[index + 1].startswith("--")
            raw = args[index + 1] if has_value else "true"
            index += 1 if has_value else 0
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"malformed override {short_repr(arg)}; write it as --section.field=value")
        _set_dotted(tree, key, _parse_value(raw, f"--{key}"))
        index += 1
    return tree


def _parse_value(raw: str, where: str):
    """An override's value read as YAML (duplicate keys and alias bombs refused), else the text."""
    if raw == "":
        return None
    try:
        return parse_yaml(raw, where)
    except YamlSyntaxError:
        return raw  # not YAML: the plain string (a path with a colon, say)


def _set_dotted(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = tree.get(key)
        if not isinstance(node, dict):
            node = tree[key] = {}
        tree = node
    tree[leaf] = value


def merge(cls: type | None, base: Mapping | None, extra: Mapping, where: str = "") -> dict:
    """`base` (data of dataclass `cls`) with `extra` laid over it, key by key; a copy.

    Nested mappings merge; in a list field, a key picks an item by index or `name`; any other
    value replaces. With a class, every key of `extra` must be a field (`-` may stand for `_`).
    """
    out = dict(base or {})
    if cls is not None:
        key = getattr(cls, "config_key", "kind")  # the field that picks the concrete class
        cls = concrete_class(cls, {**out, **{k: v for k, v in extra.items() if k == key}}, where)
    types_ = field_types(cls) if cls is not None else {}
    for key, value in extra.items():
        name = key
        if cls is not None:
            name = key if key in types_ else str(key).replace("-", "_")
            if name not in types_:
                check_keys(cls, {key: value}, where)
        hint = _strip_optional(types_.get(name, Any))
        here = _child(where, key)
        current = out.get(name)
        if (
            isinstance(value, Mapping)
            and _list_item_type(hint) is not None
            and not isinstance(current, Mapping)
        ):
            out[name] = _merge_list(_list_item_type(hint), current, value, here)
        elif isinstance(value, Mapping) and (isinstance(current, Mapping) or current is None):
            nested = hint if dataclasses.is_dataclass(hint) else None
            if nested is None and cls is not None and not _is_mapping_type(hint):
                out[name] = value  # a mapping for a scalar field: from_dict will say what is wrong
            else:
                out[name] = merge(nested, current or {}, value, here)
        else:
            out[name] = value
    return out


def _is_mapping_type(hint) -> bool:
    return hint is Any or hint is dict or typing.get_origin(hint) in (dict, Mapping)


def _list_item_type(hint):
    origin = typing.get_origin(hint)
    if origin in (list, Sequence) or hint is list:
        args = typing.get_args(hint)
        return args[0] if args else Any
    return None


def _merge_list(item_type, items, extra: Mapping, where: str) -> list:
    items = list(items or [])
    nested = item_type if dataclasses.is_dataclass(item_type) else None
    for key, value in extra.items():
        index = list_index(items, key, where)
        here = _child(where, key)
        if isinstance(value, Mapping) and isinstance(items[index], Mapping):
            items[index] = merge(nested, items[index], value, here)
        else:
            items[index] = value
    return items


def list_index(items: list, key, where: str = "") -> int:
    """The position of the item that `key` names: an index, or an item whose `name` is `key`."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        index = int(key)
        if not 0 <= index < len(items):
            raise ConfigError(_at(where, f"index {index} is out of range: the list has {len(items)} items"))
        return index
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    if key in names:
        return names.index(key)
    known = [n for n in names if n is not None]
    raise ConfigError(
        _at(where, f"no item named {short_repr(key)}; give an index (0-{len(items) - 1}) or one of {known}")
    )


def load(cls: type, data: Mapping | None, overrides: Mapping | Sequence[str] | None = None, where: str = ""):
    """`from_dict(cls, merge(cls, data, overrides))`; `overrides` may be raw `--a.b=v` flags."""
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = parse_overrides(list(overrides))
    return from_dict(cls, merge(cls, data or {}, overrides or {}, where), where)


# --------------------------------------------------------------------------------------------
# Strict YAML
# --------------------------------------------------------------------------------------------

ALIAS_EXPANSION_LIMIT = 10_000
"""How many nodes YAML aliases may add to a document when it is expanded. A recipe that shares a
source list between domains adds tens; a "billion laughs" alias bomb adds billions."""


class YamlSyntaxError(ConfigError):
    """Text that is not YAML at all (an override value falls back to plain text)."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate mapping keys and alias bombs."""

    source = "<text>"
    """Where the text came from, for messages: a file name, an override flag (`--a.b`) or a
    `<description>` (no line numbers for the last two)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                also = "given twice" if self.source.startswith(("--", "<")) else f"also at line {seen[key]}"
                raise ConfigError(
                    f"{_located(self.source, line)}: duplicate key {short_repr(key)} ({also}); keep one of them"
                )
            seen[key] = line
        return super().construct_mapping(node, deep)

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _check_alias_expansion(node, self.source)
        return node


def _located(source: str, line: int) -> str:
    """`file.yaml:LINE` for a file; an override flag or a value has no lines worth naming."""
    return source if source.startswith(("--", "<")) else f"{source}:{line}"


def _check_alias_expansion(root: yaml.Node, source: str) -> None:
    """`ConfigError` when aliases make `root` expand to more than `ALIAS_EXPANSION_LIMIT` nodes
    beyond the ones written, or refer to a node inside itself. Each distinct node is sized once
    (memoized), so an alias bomb is caught in time linear in the text."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    extra = 0

    def size(node: yaml.Node) -> int:
        nonlocal extra
        key = id(node)
        if key in sizes:  # a node met again: an alias repeats all of it
            extra += sizes[key]
            if extra > ALIAS_EXPANSION_LIMIT:
                raise ConfigError(
                    f"{_located(source, node.start_mark.line + 1)}: YAML aliases repeat a value beyond "
                    f"{ALIAS_EXPANSION_LIMIT:,} nodes (an alias bomb?); write the values out instead"
                )
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(
                f"{_located(source, node.start_mark.line + 1)}: a YAML alias refers to the value that "
                "holds it; a configuration cannot contain itself"
            )
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)


def parse_yaml(text: str, source: str = "<text>"):
    """The data of one YAML document, read strictly: a key twice in one mapping, an alias bomb
    or a self-referring alias is a `ConfigError` naming `source` and the line(s); text that is not
    YAML is a `YamlSyntaxError` with its line."""
    loader = _StrictLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = _located(source, mark.line + 1) if mark is not None else source
        raise YamlSyntaxError(f"{where}: YAML syntax error: {err.problem}") from None
    except yaml.YAMLError as err:
        raise YamlSyntaxError(f"{source}: YAML syntax error: {err}") from None
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply to be a configuration") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict:
    """The mapping in a YAML file, read strictly (`parse_yaml`); `ConfigError` with the file and
    line for a syntax error, a duplicate key or an alias bomb."""
    path = Path(path)
    data = parse_yaml(path.read_text(), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data

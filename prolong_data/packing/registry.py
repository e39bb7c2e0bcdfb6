"""Pack modes: one config class per mode, registered by its `mode` name, as source kinds are.

A domain's `pack:` is a mapping with a `mode` (default `concat`); the class registered under that
mode says which other fields it takes (a field of another mode is an error naming the allowed
ones), checks them, and builds the mode's datatrove packing step. A mode is one module in
`prolong_data/packing/` holding its packer, its step and its config class::

    @register_pack_mode
    @dataclass(kw_only=True)
    class ConcatPack(PackConfig):
        \"\"\"`concat`: whole documents end to end, cut every seq_len.\"\"\"

        mode: str = "concat"

        def step(self, seq_len: int, tokenizer: str, report_folder: str) -> PipelineStep:
            return PackConcat(seq_len, report_folder=report_folder)

Every module of this package is imported the first time a mode is looked up, so a new module
registers itself with no other file to edit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from datatrove.pipeline.base import PipelineStep

from prolong_data.registry import Registry

DEFAULT_MODE = "concat"
"""The mode of a `pack:` that names none."""

_REGISTRY = Registry("pack mode", "prolong_data.packing")


@dataclass(kw_only=True)
class PackConfig:
    """How a domain's documents become sequences. Subclasses are the modes; they set `mode`'s
    default to their name."""

    mode: str = DEFAULT_MODE
    """The pack mode (`concat`, `length_binned`, `best_fit`, or one registered by other code)."""
    min_tokens: int | None = None
    """Documents with fewer tokens (BOS/EOS included) are dropped before packing."""

    config_label: ClassVar[str] = "pack"
    config_key: ClassVar[str] = "mode"
    """The field whose value picks the class (the config loader reads it)."""
    writes_mask: ClassVar[bool] = False
    """The sequences carry a loss mask (SFT): the shards get a `mask` column."""

    def __post_init__(self):
        expected = _default_mode(type(self))
        if expected is not None and self.mode != expected:
            raise ValueError(f"a {type(self).__name__} has mode {expected!r}, got {self.mode!r}")
        if self.min_tokens is not None and self.min_tokens < 0:
            raise ValueError(f"pack min_tokens must be >= 0, got {self.min_tokens}")

    @classmethod
    def config_class(cls, data) -> type[PackConfig]:
        """The config class of the mode that `data` names (the config loader's hook)."""
        if cls is not PackConfig:
            return cls
        return pack_mode_class(data.get("mode") or DEFAULT_MODE)

    @property
    def min_document_tokens(self) -> int | None:
        """The shortest document packed (None: no minimum)."""
        return self.min_tokens

    def step(self, seq_len: int, tokenizer: str, report_folder: str) -> PipelineStep:
        """The datatrove step that packs a domain's tokenized documents into `seq_len` sequences,
        writing its packing report into `report_folder`; `tokenizer` is the recipe's spec (a step
        that needs an id from it looks it up when it runs, so planning loads no tokenizer)."""
        raise NotImplementedError


def _default_mode(cls: type) -> str | None:
    for f in fields(cls):
        if f.name == "mode" and isinstance(f.default, str) and cls is not PackConfig:
            return f.default
    return None


def register_pack_mode(cls: type[PackConfig]) -> type[PackConfig]:
    """Class decorator: make `cls` the config class of the mode named by its `mode` default."""
    mode = _default_mode(cls)
    if mode is None:
        raise TypeError(f"{cls.__name__} needs a default for `mode` (its mode name) to be registered")
    return _REGISTRY.add(mode, cls)


def pack_modes() -> list[str]:
    """The registered mode names, sorted."""
    return _REGISTRY.names()


def pack_mode_class(mode: str) -> type[PackConfig]:
    """The config class registered for `mode`; `ValueError` naming the modes if there is none."""
    cls = _REGISTRY.find(mode)
    if cls is None:
        raise ValueError(f"pack mode {mode!r} is not one of {sorted(_REGISTRY)}")
    return cls


def default_pack() -> PackConfig:
    """The pack of a domain that gives none (`concat`)."""
    return pack_mode_class(DEFAULT_MODE)()

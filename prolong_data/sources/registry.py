"""Source kinds: one config class per kind, registered by its `kind` name.

A recipe's source is a mapping with a `kind`; the class registered under that kind says which
other fields it takes (a field of another kind is an error naming the allowed ones), checks them,
and builds the kind's datatrove reader. A kind is one module in `prolong_data/sources/` holding
its reader and its config class::

    @register_source
    @dataclass(kw_only=True)
    class BookFilesSource(FileSourceConfig):
        \"\"\"`.txt` books, one document per file.\"\"\"

        kind: str = "book_files"

        def reader(self, context: ReaderContext) -> PipelineStep:
            return BookFolderReader(self.paths, glob=self.glob, **context.reader_options())

Every module of this package is imported the first time a kind is looked up, so a new module
registers itself with no other file to edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, Literal

from datatrove.pipeline.base import PipelineStep

from prolong_data.registry import Registry
from prolong_data.tokenization import TokenizeDocuments

UTF8_POLICIES = ("repair", "drop")
Utf8Policy = Literal["repair", "drop"]
"""What happens to invalid UTF-8 in the input: `repair` (U+FFFD, counted) or `drop` the document
(counted)."""

DOCUMENT_FORMS = ("text", "chat", "tokens")
"""What a kind's reader yields: `text` documents (tokenized by the build), `chat` conversations
(rendered by the chat template and tokenized with loss masks), or `tokens` (already token ids:
nothing to tokenize)."""

_REGISTRY = Registry("source kind", "prolong_data.sources")


def check_utf8_policy(mode: str) -> str:
    """`mode` if it is a UTF-8 policy, else `ValueError` naming them."""
    if mode not in UTF8_POLICIES:
        raise ValueError(f"utf8 must be 'repair' or 'drop', got {mode!r}")
    return mode


@dataclass(frozen=True)
class ReaderContext:
    """What a reader needs from the build around it."""

    bad_input_file: str | None = None
    """Where the reader writes its bad-input log (`{rank}` is the task's rank)."""
    utf8: str = "repair"
    """The recipe's policy for invalid UTF-8."""
    tokenizer: str | None = None
    """The recipe's tokenizer (as `load_tokenizer` takes it): sources of token ids check theirs
    against it."""

    def reader_options(self) -> dict:
        """Keyword arguments every `SourceReader` takes."""
        return {"bad_input_file": self.bad_input_file, "utf8": self.utf8}


@dataclass(kw_only=True)
class SourceConfig:
    """One input of a domain. Subclasses are the kinds; they set `kind`'s default to their name."""

    kind: str
    """The source kind (`code_folders`, `code_rows`, `book_files`, `rows`, `hub`, `chat`,
    `tokenized`, or one registered by other code)."""
    hash_split: list[int] | None = None
    """`[bucket, buckets]`: keep documents whose id hashes into `bucket` of `buckets`, to split
    one source between domains deterministically (a domain with a split has one source)."""

    config_label: ClassVar[str] = "source"
    produces: ClassVar[str] = "text"
    """One of `DOCUMENT_FORMS`: what the reader yields."""
    group_key: ClassVar[str | None] = None
    """A metadata key whose documents must meet in one task before they are whole (`repo`:
    The Stack rows are files of repositories); None when every document is whole already."""
    pack_modes: ClassVar[tuple[str, ...] | None] = None
    """The pack modes this kind's documents allow; None allows every mode."""
    path_fields: ClassVar[tuple[str, ...]] = ()
    """Fields holding paths, where the recipe expands `{corpus}`, `{sample_corpus}`, `{stdlib}`, `{purelib}`."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if isinstance(kind, str):
            cls.config_label = f"`{kind}` source"

    def __post_init__(self):
        expected = _default_kind(type(self))
        if expected is not None and self.kind != expected:
            raise ValueError(f"a {type(self).__name__} has kind {expected!r}, got {self.kind!r}")
        if self.hash_split is not None:
            bucket, buckets = self.hash_split if len(self.hash_split) == 2 else (-1, 0)
            if not 0 <= bucket < buckets:
                raise ValueError(
                    f"hash_split {self.hash_split} must be [bucket, buckets] with 0 <= bucket < buckets"
                )

    @classmethod
    def config_class(cls, data) -> type[SourceConfig]:
        """The config class of the kind that `data` names (the config loader's hook)."""
        if cls is not SourceConfig:
            return cls
        kind = data.get("kind")
        if kind is None:
            raise ValueError(f"a source needs `kind:`, one of {source_kinds()}")
        return source_class(kind)

    def reader(self, context: ReaderContext) -> PipelineStep:
        """The datatrove step that reads this source."""
        raise NotImplementedError

    def tokenize_step(self, tokenizer: str) -> PipelineStep | None:
        """The step that turns this kind's documents into token ids (None: they are ids already)."""
        return TokenizeDocuments(tokenizer)

    @classmethod
    def grouping_steps(cls, sources: list[SourceConfig]) -> list[PipelineStep]:
        """Steps after the partition by `group_key` that make whole documents (none by default)."""
        return []

    def expand_paths(self, expand) -> SourceConfig:
        """A copy with `expand(text)` applied to every path field."""
        from dataclasses import replace

        changes = {}
        for name in self.path_fields:
            value = getattr(self, name)
            changes[name] = [expand(v) for v in value] if isinstance(value, list) else expand(value)
        return replace(self, **changes)


@dataclass(kw_only=True)
class FileSourceConfig(SourceConfig):
    """A source read from files or folders."""

    paths: list[str] = field(default_factory=list)
    """Files or folders (searched recursively); `{corpus}`, `{sample_corpus}`, `{stdlib}`, `{purelib}`
    are expanded."""
    glob: str | None = None
    """Only files whose name matches this pattern (default: the reader's usual endings)."""
    max_file_bytes: int | None = None
    """Input files larger than this many bytes are skipped (counted as `oversized_file`); default:
    1,000,000 for a `code_folders` file, 256 MiB for a book (read whole), no bound for a rows
    file (read one row, at most 256 MiB, at a time)."""

    path_fields: ClassVar[tuple[str, ...]] = ("paths",)

    def __post_init__(self):
        super().__post_init__()
        if not self.paths:
            raise ValueError(f"a {self.kind!r} source needs `paths: [...]`")
        if self.max_file_bytes is not None and self.max_file_bytes <= 0:
            raise ValueError(f"max_file_bytes must be positive, got {self.max_file_bytes}")


def _default_kind(cls: type) -> str | None:
    for f in fields(cls):
        if f.name == "kind" and isinstance(f.default, str):
            return f.default
    return None


def register_source(cls: type[SourceConfig]) -> type[SourceConfig]:
    """Class decorator: make `cls` the config class of the kind named by its `kind` default."""
    kind = _default_kind(cls)
    if kind is None:
        raise TypeError(f"{cls.__name__} needs a default for `kind` (its kind name) to be registered")
    if cls.produces not in DOCUMENT_FORMS:
        raise ValueError(f"{cls.__name__}.produces must be one of {DOCUMENT_FORMS}, got {cls.produces!r}")
    return _REGISTRY.add(kind, cls)


def source_kinds() -> list[str]:
    """The registered kind names, sorted."""
    return _REGISTRY.names()


def source_class(kind: str) -> type[SourceConfig]:
    """The config class registered for `kind`; `ValueError` naming the kinds if there is none."""
    cls = _REGISTRY.find(kind)
    if cls is None:
        raise ValueError(f"source kind {kind!r} is not one of {sorted(_REGISTRY)}")
    return cls

"""Rows of text in JSON lines (plain, .gz, .zst) or parquet: textbooks, ShortMix, book dumps.

One row is one document. The text is `row[text_key]`, or a chat rendered to text when
`render="tulu"` (Tulu-v2's `<|user|>` / `<|assistant|>` format, from a `messages` list). Rows
can be kept by a metadata value (`keep_where={"meta.redpajama_set_name": "RedPajamaBook"}` keeps
SlimPajama's books), and book text can be cleaned (`clean="book"`: Gutenberg header and
footer, BOM, CRLF).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson

from prolong_data.sources.base import SourceReader, document, relative_source
from prolong_data.sources.books import clean_book_text
from prolong_data.sources.files import MAX_LINE_BYTES, TRUNCATED_ERRORS, iter_lines, open_binary
from prolong_data.sources.registry import FileSourceConfig, ReaderContext, register_source

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
RENDERERS = (None, "tulu")
CLEANERS = (None, "book")
MISSING = object()


def field_at(row: dict, dotted: str):
    """`row["a"]["b"]` for `dotted="a.b"`, or `MISSING`."""
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def render_tulu(messages: list) -> str | None:
    """A chat as Tulu-v2 text: `<|user|>\\n...\\n<|assistant|>\\n...\\n` per turn; None if malformed."""
    parts = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            return None
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            return None
        parts.append(f"<|{role}|>\n{message['content'].strip()}\n")
    return "".join(parts) or None


class TextRowsReader(SourceReader):
    """JSON lines and parquet rows, one document per row; bad rows counted with file and line."""

    name = "text rows"
    suffixes = JSONL_SUFFIXES + PARQUET_SUFFIXES
    max_line_bytes = MAX_LINE_BYTES
    """A JSON line longer than this is skipped (counted as `oversized_row`)."""

    def __init__(
        self,
        paths: str | Sequence[str],
        *,
        text_key: str = "text",
        id_key: str = "id",
        keep_where: dict[str, str] | None = None,
        render: str | None = None,
        clean: str | None = None,
        **kwargs,
    ):
        super().__init__(paths, **kwargs)
        if render not in RENDERERS:
            raise ValueError(f"render must be one of {RENDERERS}, got {render!r}")
        if clean not in CLEANERS:
            raise ValueError(f"clean must be one of {CLEANERS}, got {clean!r}")
        self.text_key, self.id_key = text_key, id_key
        self.keep_where = dict(keep_where or {})
        self.render, self.clean = render, clean

    def read_unit(self, unit: str) -> Iterator:
        rows = self._parquet_rows(unit) if unit.endswith(PARQUET_SUFFIXES) else self._jsonl_rows(unit)
        for line, row in rows:
            doc = self.row_document(row, unit, line)
            if doc is not None:
                yield doc

    # -- one row -> one document ---------------------------------------------------------------

    def row_text(self, row: dict, unit: str, line: int) -> str | None:
        """The text of a row (rendered and cleaned), or None after counting why not."""
        if self.render == "tulu":
            messages = row.get("messages")
            text = render_tulu(messages) if isinstance(messages, list) else None
            if text is None:
                self.bad.add("missing_field", unit, line, "no well-formed `messages` list")
                return None
        else:
            text = row.get(self.text_key, MISSING)
            if not isinstance(text, str):
                self.bad.add("missing_field", unit, line, f"no string field {self.text_key!r}")
                return None
        return clean_book_text(text) if self.clean == "book" else text

    def row_document(self, row: dict, unit: str, line: int):
        for key, wanted in self.keep_where.items():
            if field_at(row, key) != wanted:
                self.stat_update("rows_not_kept")
                return None
        text = self.row_text(row, unit, line)
        if text is None:
            return None
        doc_id = row.get(self.id_key)
        doc_id = str(doc_id) if doc_id is not None else f"{relative_source(unit)}/{line}"
        return document(text, doc_id, relative_source(unit, line))

    # -- file formats --------------------------------------------------------------------------

    def _jsonl_rows(self, unit: str) -> Iterator[tuple[int, dict]]:
        seen_any = False
        try:
            for line, raw in iter_lines(unit, self.max_line_bytes):
                seen_any = True
                if raw is None:
                    self.bad.add("oversized_row", unit, line, f"longer than {self.max_line_bytes:,} bytes")
                    continue
                if not raw.strip():
                    continue
                text = self.decode(raw, unit, line)
                if text is None:
                    continue
                row = _parse_json(text)
                if row is None:
                    self.bad.add("malformed_json", unit, line, text[:80])
                elif not isinstance(row, dict):
                    self.bad.add("not_an_object", unit, line, type(row).__name__)
                else:
                    yield line, row
        except TRUNCATED_ERRORS as err:  # a compressed file that ends early: the rows before it stay
            self.bad.add("truncated_file", unit, None, f"{type(err).__name__}: {err}")
            return
        except OSError as err:
            self.bad.add("unreadable_file", unit, None, str(err))
            return
        if not seen_any:
            self.bad.add("empty_file", unit)

    def _parquet_rows(self, unit: str) -> Iterator[tuple[int, dict]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with open_binary(unit) as f:
                parquet = pq.ParquetFile(f)
                if parquet.metadata.num_rows == 0:
                    self.bad.add("empty_file", unit)
                    return
                line = 0
                for batch in parquet.iter_batches(batch_size=1024):
                    for row in batch.to_pylist():
                        line += 1
                        yield line, row
        except (pa.ArrowInvalid, pa.ArrowException) as err:
            self.bad.add("not_parquet", unit, None, str(err))
        except OSError as err:
            self.bad.add("unreadable_file", unit, None, str(err))


def _parse_json(text: str):
    """orjson, falling back to the stdlib for what orjson refuses but JSON allows (lone
    surrogate escapes, which the UTF-8 filter repairs later); None when malformed."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            return None


@register_source
@dataclass(kw_only=True)
class RowsSource(FileSourceConfig):
    """`rows`: JSON lines (plain, `.gz`, `.zst`) or parquet rows of text, one document per row."""

    kind: str = "rows"
    text_key: str = "text"
    """The field holding the text."""
    id_key: str = "id"
    """The field holding a document id (file and line when absent)."""
    keep_where: dict[str, str] = field(default_factory=dict)
    """Keep only rows whose dotted field equals the value, e.g.
    `{meta.redpajama_set_name: RedPajamaBook}` for SlimPajama's books."""
    render: Literal["tulu"] | None = None
    """`tulu` renders a `messages` list as Tulu-v2 text (`<|user|>` / `<|assistant|>`)."""
    clean: Literal["book"] | None = None
    """`book` strips Project Gutenberg headers and normalises BOM and CRLF."""

    def reader(self, context: ReaderContext) -> TextRowsReader:
        return TextRowsReader(
            self.paths,
            glob=self.glob,
            text_key=self.text_key,
            id_key=self.id_key,
            keep_where=self.keep_where,
            render=self.render,
            clean=self.clean,
            max_file_bytes=self.max_file_bytes,
            **context.reader_options(),
        )

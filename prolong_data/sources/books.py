"""Books: folders of plain-text files, one book per file (Project Gutenberg, PG19 dumps).

Book text is normalised the same way whether it comes from a `.txt` file or a row
(`TextRowsReader(clean="book")`): a leading BOM is dropped, CRLF and CR become LF, and the
Project Gutenberg licence header and footer around the `*** START OF ... ***` / `*** END OF ...
***` markers are cut away (text without the markers is kept whole).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from prolong_data.sources.base import SourceReader, document, relative_source
from prolong_data.sources.files import TRUNCATED_ERRORS, OversizedFileError, open_binary, read_bounded
from prolong_data.sources.registry import FileSourceConfig, ReaderContext, register_source
from prolong_data.text import normalize_newlines

GUTENBERG_START = re.compile(
    r"^\*\*\* ?START OF (?:THE|THIS) PROJECT GUTENBERG E(?:BOOK|TEXT)\b.*$", re.M | re.I
)
GUTENBERG_END = re.compile(
    r"^(?:\*\*\* ?END OF (?:THE|THIS) PROJECT GUTENBERG E(?:BOOK|TEXT)\b.*|End of (?:the |this )?Project Gutenberg\S*\s.*)$",
    re.M | re.I,
)


def strip_gutenberg(text: str) -> str:
    """The book between Project Gutenberg's START and END markers (all of it without them)."""
    start = GUTENBERG_START.search(text)
    body_from = start.end() + 1 if start else 0
    end = GUTENBERG_END.search(text, body_from)
    body_to = end.start() if end else len(text)
    return text[body_from:body_to].strip("\n") + "\n"


def clean_book_text(text: str) -> str:
    """What a book document holds: normalised newlines, no Gutenberg header or footer."""
    return strip_gutenberg(normalize_newlines(text))


class BookFolderReader(SourceReader):
    """`.txt` books, one document per file, cleaned by `clean_book_text`."""

    name = "book files"
    suffixes = (".txt", ".txt.gz", ".txt.zst")
    default_max_file_bytes = 256 << 20  # a book is read whole into memory

    def read_unit(self, unit: str) -> Iterator:
        chunks: list[bytes] = []
        try:
            with open_binary(unit) as f:
                raw = read_bounded(f, self.max_file_bytes, unit, into=chunks)
        except OversizedFileError as err:
            self.bad.add("oversized_file", unit, None, str(err))
            return
        except TRUNCATED_ERRORS as err:  # a compressed book that ends early: keep what was read
            self.bad.add("truncated_file", unit, None, f"{type(err).__name__}: {err}")
            raw = b"".join(chunks)
            if not raw.strip():
                return
        except OSError as err:
            self.bad.add("unreadable_file", unit, None, str(err))
            return
        if not raw.strip():
            self.bad.add("empty_file", unit)
            return
        text = self.decode(raw, unit)
        if text is None:
            return
        name = relative_source(unit)
        yield document(clean_book_text(text), name.split(".")[0], name)


@register_source
@dataclass(kw_only=True)
class BookFilesSource(FileSourceConfig):
    """`book_files`: `.txt` books (plain, `.gz`, `.zst`), one document per file, cleaned by
    `clean_book_text`."""

    kind: str = "book_files"

    def reader(self, context: ReaderContext) -> BookFolderReader:
        return BookFolderReader(
            self.paths, glob=self.glob, max_file_bytes=self.max_file_bytes, **context.reader_options()
        )

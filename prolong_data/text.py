"""Text normalisation shared by every reader of raw text (books, code files, eval haystacks)."""

from __future__ import annotations


def normalize_newlines(text: str) -> str:
    """`text` without a leading byte-order mark, with LF line endings only (CRLF and lone CR
    become LF), so the same document reads the same from any source or platform."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")

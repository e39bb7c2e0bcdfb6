"""One text normaliser: books, code files and eval haystacks read the same bytes the same way."""

from __future__ import annotations

from prolong_data.evaluation.haystack import read_documents
from prolong_data.sources import BookFolderReader, RepoFolderReader
from prolong_data.text import normalize_newlines

RAW = "\ufeffone\r\ntwo\rthree\n\ufeffkept\r\n"
"""A leading BOM, a CRLF, a lone CR, an LF, a BOM inside the text (not leading: kept), a CRLF."""
WANT = "one\ntwo\nthree\n\ufeffkept\n"


def test_normalize_newlines():
    assert normalize_newlines(RAW) == WANT
    assert normalize_newlines(WANT) == WANT  # idempotent
    assert normalize_newlines("") == ""


def _docs(reader):
    return list(reader.run(None, 0, 1))


def test_books_code_and_haystack_normalise_alike(tmp_path):
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "b.txt").write_bytes(RAW.encode())
    assert [d.text for d in _docs(BookFolderReader([str(tmp_path / "books")]))] == [WANT]

    repo = tmp_path / "code" / "pkg"
    repo.mkdir(parents=True)
    for name in ("a.py", "b.py"):
        (repo / name).write_bytes(RAW.encode())
    (text,) = [d.text for d in _docs(RepoFolderReader([str(tmp_path / "code")]))]
    assert text == f"# File: pkg/a.py\n{WANT}\n# File: pkg/b.py\n{WANT}\n"

    (tmp_path / "heldout").mkdir()
    (tmp_path / "heldout" / "h.txt").write_bytes(RAW.encode())
    assert [d.text for d in read_documents(tmp_path / "heldout")] == [WANT]

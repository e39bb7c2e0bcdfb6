"""Held-out long documents: the haystack of the needle tasks and the text of ``doc_loss``.

A held-out folder holds plain-text files (``.txt``, ``.md``, optionally ``.gz``-compressed; one
document each) and/or JSON lines (``.jsonl``, ``.jsonl.gz``; one document per line, in its
``text`` field). Text is cleaned as the book source cleans books (``clean_book_text``): a
byte-order mark is dropped, CRLF and CR line ends become ``\\n`` (``prolong_data.text``), and a Project Gutenberg licence header and
footer are cut away, so no haystack holds licence boilerplate.

Needles go at sentence starts only (after a sentence's final ``.``, ``!`` or ``?``, or at a
paragraph start), never at a line start inside a hard-wrapped sentence.
"""

from __future__ import annotations

import bisect
import gzip
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from prolong_data.assets import SAMPLE_CORPUS
from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.sources.books import clean_book_text

DEFAULT_HELDOUT = SAMPLE_CORPUS / "heldout"
"""Where ``prolong-data eval`` looks by default: the held-out books of the sample corpus installed
with the package (``examples/corpus/heldout`` of the repository), which no demo recipe trains on."""

TEXT_SUFFIXES = (".txt", ".md", ".txt.gz", ".md.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")


@dataclass(frozen=True)
class Document:
    name: str
    """File name, with ``:line`` for a JSON-lines document."""
    text: str


def _read(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def read_documents(folder: str | Path) -> list[Document]:
    """Every document of ``folder`` (sorted by file name), cleaned; raises if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalUsageError(
            f"held-out folder {folder} does not exist; pass --heldout DIR with long .txt/.txt.gz/.jsonl files"
        )
    docs: list[Document] = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(TEXT_SUFFIXES):
            docs.append(Document(path.name, clean_book_text(_read(path))))
        elif path.name.endswith(JSONL_SUFFIXES):
            for line_no, line in enumerate(_read(path).splitlines(), start=1):
                if line.strip():
                    docs.append(Document(f"{path.name}:{line_no}", clean_book_text(json.loads(line)["text"])))
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise EvalUsageError(f"no documents in {folder}; it needs .txt, .txt.gz, .jsonl or .jsonl.gz files")
    return docs


ABBREVIATIONS = ("Mr", "Mrs", "Dr", "St", "Mme", "Messrs", "Esq", "No", "vol", "ch")
"""Words whose full stop does not end a sentence (``Mr. Holmes``)."""
SENTENCE_START = re.compile(
    "".join(rf"(?<!\b{a})" for a in ABBREVIATIONS)
    + r"(?:(?<=[a-z0-9\"'\u201d\u2019)\]])[.!?][\"'\u201d\u2019)\]]*\s+|\n[ \t]*\n\s*)"
    + r"(?=[\"'\u201c\u2018(\[_]*[A-Z0-9])"
)
"""Ends where a sentence starts: after a ``.``/``!``/``?`` that follows a lower-case letter, digit or
closing quote (so ``IV.`` of a table of contents and ``Mr.`` are no sentence ends), its closing
quotes and whitespace; or after a blank line; before an upper-case letter or digit (optionally
behind opening quotes)."""


class Haystack:
    """The held-out documents joined into one ring of text that windows are cut from."""

    def __init__(self, documents: list[Document]):
        self.text = "\n\n".join(d.text.strip() for d in documents)
        self.names = [d.name for d in documents]

    def window(self, start: int, chars: int) -> str:
        """``chars`` characters from ``start``, wrapping around (the text repeats), cut back to whole words."""
        reps = (start + chars) // len(self.text) + 1
        text = (self.text + "\n\n") * reps if reps > 1 else self.text
        piece = text[start : start + chars]
        if start + chars < len(text) and not text[start + chars].isspace():
            cut = max(piece.rfind(" "), piece.rfind("\n"))
            piece = piece[:cut] if cut > 0 else piece
        return piece.rstrip()

    def random_start(self, rng: random.Random) -> int:
        """A random sentence start."""
        pos = rng.randrange(len(self.text))
        match = SENTENCE_START.search(self.text, pos)
        return match.end() if match else 0


def sentence_starts(text: str) -> list[int]:
    """Every offset where a needle can go without splitting a sentence: 0, each sentence start,
    and the end when the text ends with a whole sentence."""
    starts = [0, *(m.end() for m in SENTENCE_START.finditer(text) if 0 < m.end() < len(text))]
    if re.search(r"[.!?][\"'\u201d\u2019)\]]*$", text[-8:].rstrip()):
        starts.append(len(text))
    return starts


def nearest(starts: list[int], pos: int) -> int:
    """The element of the sorted ``starts`` nearest to ``pos``."""
    i = bisect.bisect_left(starts, pos)
    return min(starts[max(0, i - 1) : i + 1], key=lambda s: abs(s - pos))

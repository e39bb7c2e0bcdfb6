"""Held-out long documents: the haystack of the needle tasks and the text of ``doc_loss``.

A held-out folder holds plain-text files (``.txt``, ``.md``, optionally ``.gz``-compressed; one
document each) and/or JSON lines (``.jsonl``, ``.jsonl.gz``; one document per line, in its
``text`` field). Text is normalised the same way everywhere: a byte-order mark is dropped and
Windows line ends become ``\\n``.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from evaluation.errors import EvalUsageError
from prolong_data.assets import SAMPLE_CORPUS

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


def normalize_text(text: str) -> str:
    return text.lstrip("\ufeff").replace("\r\n", "\n")


def _read(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def read_documents(folder: str | Path) -> list[Document]:
    """Every document of ``folder`` (sorted by file name), normalised; raises if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalUsageError(
            f"held-out folder {folder} does not exist; pass --heldout DIR with long .txt/.txt.gz/.jsonl files"
        )
    docs: list[Document] = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(TEXT_SUFFIXES):
            docs.append(Document(path.name, normalize_text(_read(path))))
        elif path.name.endswith(JSONL_SUFFIXES):
            for line_no, line in enumerate(_read(path).splitlines(), start=1):
                if line.strip():
                    docs.append(Document(f"{path.name}:{line_no}", normalize_text(json.loads(line)["text"])))
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise EvalUsageError(f"no documents in {folder}; it needs .txt, .txt.gz, .jsonl or .jsonl.gz files")
    return docs


_LINE_START = re.compile(r"\n(?=\S)")
_SENTENCE_START = re.compile(r"(?:[.!?][\"')\]]*\s+|\n+)(?=\S)")


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
        """A random line start."""
        pos = rng.randrange(len(self.text))
        match = _LINE_START.search(self.text, pos)
        return match.end() if match else 0


def sentence_start(text: str, pos: int, reach: int = 2000) -> int:
    """The sentence (or line) start nearest to ``pos``: where a needle can go without splitting a sentence."""
    if pos <= 0:
        return 0
    if pos >= len(text):
        return len(text)
    lo = max(0, pos - reach)
    starts = [m.end() for m in _SENTENCE_START.finditer(text, lo, min(len(text), pos + reach))]
    if not starts:  # no sentence end nearby: the nearest space
        left = text.rfind(" ", 0, pos)
        return left + 1 if left >= 0 else 0
    return min(starts, key=lambda s: abs(s - pos))

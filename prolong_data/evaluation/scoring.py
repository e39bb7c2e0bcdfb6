"""Scoring as HELMET does it for its recall tasks.

* ``json_kv``: substring exact match after HELMET's answer normalisation (lower case, punctuation
  and the articles a/an/the removed, whitespace collapsed), on the whole output and on the text
  after ``Corresponding value:``; the better of the two counts.
* RULER needles (``niah_*``): the fraction of the expected values found in the output as
  case-insensitive substrings (no other normalisation), i.e. HELMET's ``ruler_recall``.

Scores are on a 0-100 scale, like HELMET's tables.
"""

from __future__ import annotations

import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation, replace the articles a/an/the by spaces, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def substring_exact_match(prediction: str, answers: list[str]) -> float:
    """100 if some normalised answer is a substring of the normalised prediction, else 0."""
    pred = normalize_answer(prediction)
    return 100.0 if any(normalize_answer(a) in pred for a in answers) else 0.0


def parse_after(output: str, prefix: str) -> str:
    """The rest of the line after ``prefix`` (case-insensitive), else the output's first line.

    Instruct models often repeat the prefix; a leading copy of it is stripped again.
    """
    for pattern in (rf"(?:{re.escape(prefix)})(.*)(?:\n|$)", r"^(.*)(?:\n|$)"):
        match = re.search(pattern, output, flags=re.IGNORECASE)
        if match is not None:
            return re.sub(rf"^{re.escape(prefix)}", "", match[1].strip(), flags=re.IGNORECASE).strip()
    return ""


def recall_all(prediction: str, answers: list[str]) -> float:
    """100 x the fraction of answers found in the prediction (case-insensitive substrings)."""
    pred = prediction.lower()
    return 100.0 * sum(a.lower() in pred for a in answers) / len(answers)

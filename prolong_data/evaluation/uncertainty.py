"""Seeded bootstrap intervals of mean scores, and fingerprints that say whether two runs are comparable.

A score cell is the mean of per-example scores; its 95% interval is the 2.5th and 97.5th
percentiles of the mean over ``RESAMPLES`` resamples of the examples with replacement (the
percentile bootstrap). A category mean (the mean over tasks of each task's mean) is resampled
task by task, each task's examples on their own. The resampling is seeded by the evaluation's seed
and the cell's name, so the same results give the same intervals.
"""

from __future__ import annotations

import hashlib
import json
import zlib

import numpy as np

RESAMPLES = 2000
"""Bootstrap resamples per interval: the Monte Carlo error of a 95% bound is then about 0.3
standard errors of the mean / sqrt(20), i.e. a few tenths of a point at 100 samples."""


def bootstrap_interval(groups: list[list[float]], seed: int, name: str) -> list[float]:
    """95% percentile interval ``[low, high]`` of the mean over ``groups`` of each group's mean score."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    means = np.zeros(RESAMPLES)
    for scores in groups:
        values = np.asarray(scores, dtype=np.float64)
        picks = rng.integers(0, len(values), size=(RESAMPLES, len(values)))  # (resamples, n)
        means += values[picks].mean(axis=1) / len(groups)
    low, high = np.percentile(means, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def separated(a: list[float] | None, b: list[float] | None) -> bool:
    """Whether two intervals do not overlap (a difference the intervals separate)."""
    return a is not None and b is not None and (a[1] < b[0] or b[1] < a[0])


def tokenizer_fingerprint(tokenizer) -> dict:
    """Name, vocabulary size and a hash of the vocabulary and chat template of a HF tokenizer."""
    digest = hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(str(getattr(tokenizer, "chat_template", None) or "").encode())
    return {
        "name": getattr(tokenizer, "name_or_path", ""),
        "vocab_size": len(tokenizer),
        "sha256": digest.hexdigest()[:16],
    }


def documents_fingerprint(documents) -> str:
    """A hash of the held-out documents' names and texts (the same folder contents give the same hash)."""
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.name.encode() + b"\0" + doc.text.encode() + b"\0")
    return digest.hexdigest()[:16]

"""Bad input is counted and reported, never fatal: one `BadInputLog` per reader and rank.

Every problem a reader meets in its input (a malformed JSON line, invalid UTF-8, a missing
field, an empty file, a parquet file that is not parquet, an unreadable or truncated file, a pipe
or device, a symlink out of its folder, a file or row over the size bound) is counted under a
reason, and the first `keep_examples` of each reason are kept with file and line. The log of
each rank is a small JSON file; `merge_bad_input` sums the files of a whole build.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from prolong_data.atomic_write import write_json_atomic
from prolong_data.sources.files import printable

REASONS = (
    "malformed_json",
    "not_an_object",
    "missing_field",
    "invalid_utf8_dropped",
    "invalid_utf8_repaired",
    "empty_file",
    "not_parquet",
    "unreadable_file",
    "truncated_file",
    "special_file",
    "outside_root",
    "binary_file",
    "oversized_file",
    "oversized_row",
    "invalid_name",
    "empty_conversation",
    "malformed_message",
    "unknown_role",
    "non_alternating_turns",
    "no_assistant_turn",
    "malformed_shard",
)
"""The reasons a reader may count; a log refuses any other (a typo would hide a problem)."""


class BadInputLog:
    """Counts of bad input per reason, with the first few (file, line, detail) of each."""

    def __init__(self, keep_examples: int = 20):
        self.keep_examples = keep_examples
        self.counts: Counter = Counter()
        self.examples: dict[str, list[dict]] = {}

    def add(self, reason: str, file: str, line: int | None = None, detail: str = "") -> None:
        """Count one bad input; `line` is 1-based (None for a whole file)."""
        if reason not in REASONS:
            raise AssertionError(f"unknown bad-input reason {reason!r}")
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.keep_examples:
            kept.append({"file": printable(str(file)), "line": line, "detail": printable(detail[:200])})

    def __bool__(self) -> bool:
        return bool(self.counts)

    def to_dict(self) -> dict:
        return {"counts": dict(sorted(self.counts.items())), "examples": dict(sorted(self.examples.items()))}

    def write(self, path: str | Path) -> None:
        """Write the log as JSON (sorted keys: the same input gives the same bytes)."""
        write_json_atomic(path, self.to_dict(), indent=1, sort_keys=True)


def merge_bad_input(paths: list[Path], keep_examples: int = 20) -> dict:
    """{"counts": {reason: n}, "examples": {reason: [...]}} summed over the logs at `paths`."""
    counts: Counter = Counter()
    examples: dict[str, list[dict]] = {}
    for path in sorted(paths):
        data = json.loads(Path(path).read_text())
        counts.update(data.get("counts", {}))
        for reason, items in data.get("examples", {}).items():
            room = keep_examples - len(examples.setdefault(reason, []))
            examples[reason].extend(items[: max(room, 0)])
    return {"counts": dict(sorted(counts.items())), "examples": dict(sorted(examples.items()))}

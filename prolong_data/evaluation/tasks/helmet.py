"""HELMET's recall category (``--protocol helmet``): ``json_kv``, ``niah_mk_2``, ``niah_mk_3``, ``niah_mv``.

Reproduced from the procedures of HELMET's ``data.py`` and ``configs/recall*.yaml`` and of RULER's
``scripts/data/synthetic/niah.py`` (which made HELMET's needle files), generated here with the
evaluated model's tokenizer:

* ``json_kv``: a fixed number of UUID records per length (105, 220, 440, 900, 1800 at 8K..128K),
  the queried record at a uniformly random position, two demonstrations; 100 new tokens.
* ``niah_mk_2``: a haystack made only of needles, ``One of the special magic numbers for KEY is:
  VALUE.`` one per line, with word keys (adjective-noun) and 7-digit values; the queried needle is
  inserted at a uniformly random line; 50 new tokens.
* ``niah_mk_3``: the same with UUID keys and UUID values (``... magic uuids for KEY ...``); 100 new tokens.
* ``niah_mv``: four needles of one key with four values in real text, at four distinct depths of
  RULER's 40-point grid (0, 3, 5, ..., 100%), each at a sentence start; 50 new tokens.

Prompts are HELMET's base format (no chat template): the user text, a newline and the answer
prefix. The needle haystacks are fitted so that prompt plus generation budget fit the length.
"""

from __future__ import annotations

import random

from prolong_data.evaluation.prompts import LENGTH_TOLERANCE, Example, PromptFormat, prompt_budget
from prolong_data.evaluation.scoring import recall_all
from prolong_data.evaluation.tasks.base import RecallTask
from prolong_data.evaluation.tasks.json_kv import JsonKV, random_uuid
from prolong_data.evaluation.tasks.niah import Needles, random_key, random_value

JSON_KV_RECORDS = {8192: 105, 16384: 220, 32768: 440, 65536: 900, 131072: 1800}
"""HELMET's record counts per length (its ``test_k{N}_dep6.jsonl`` files)."""

RULER_DEPTHS = [round(100 * i / 39) for i in range(40)]
"""RULER's depth grid in percent: 40 evenly spaced points from 0 to 100, rounded."""

HAYSTACK_NEEDLE = "One of the special magic {kind} for {key} is: {value}."


def json_kv_records(length: int) -> int:
    """HELMET's record count at ``length``; between its lengths, proportional to 1,800 at 128K."""
    return JSON_KV_RECORDS.get(length) or max(2, round(length * 1800 / 131072))


class HelmetJsonKV(JsonKV):
    """HELMET's ``json_kv``: a fixed record count per length, the query at a uniform random position."""

    def record_count(self, length: int) -> int | None:
        return json_kv_records(length)

    def sample_depths(self, index: int, samples: int, rng: random.Random) -> list[float]:
        return [rng.random()]


class NeedleHaystack(RecallTask):
    """RULER's ``niah_multikey_2``/``_3``: the haystack is distractor needles, one per line."""

    needs_haystack = False

    def __init__(self, name: str, kind: str, max_new_tokens: int):
        self.name, self.kind, self.max_new_tokens = name, kind, max_new_tokens

    def draw(self, rng: random.Random) -> tuple[str, str]:
        """A random key and value of this task's kind."""
        if self.kind == "uuids":
            return random_uuid(rng), random_uuid(rng)
        return random_key(rng), random_value(rng)

    def sample_depths(self, index: int, samples: int, rng: random.Random) -> list[float]:
        return [rng.random()]

    def example(
        self,
        index: int,
        length: int,
        depths: list[float],
        rng: random.Random,
        fmt: PromptFormat,
        haystack=None,
    ) -> Example:
        target = prompt_budget(length, self.max_new_tokens)
        key, value = self.draw(rng)
        most = length // 8 + 8  # a needle line has far more than 8 tokens in any tokenizer
        lines = []
        while len(lines) < most:
            other_key, other_value = self.draw(rng)
            if other_key != key and other_value != value:
                lines.append(HAYSTACK_NEEDLE.format(kind=self.kind, key=other_key, value=other_value))
        needle = HAYSTACK_NEEDLE.format(kind=self.kind, key=key, value=value)
        one = self.kind[:-1]  # singular, as RULER's template for one value
        before = (
            f"A special magic {one} is hidden within the following text. Make sure to memorize it. "
            f"I will quiz you about the {one} afterwards.\n"
        )
        after = f"\nWhat is the special magic {one} for {key} mentioned in the provided text?"
        prefix = f"The special magic {one} for {key} mentioned in the provided text is"

        def render(k: int) -> tuple[str, int, int]:
            body = list(lines[:k])
            body.insert(min(int(depths[0] * (k + 1)), k), needle)
            context = "\n".join(body)
            prompt, offset = fmt.render(before + context + after, prefix)
            return prompt, offset + len(before), offset + len(before) + len(context)

        k, n = self.fit(lambda k: render(k)[0], fmt, length, most)
        if n < target * (1 - LENGTH_TOLERANCE) - 2 * fmt.count(needle):  # whole lines: one line of slack
            raise RuntimeError(f"{self.name}: fitted {n} tokens for a target of {target}")
        prompt, start, end = render(k)
        if prompt.count(value) != 1:  # a distractor's key contains the value: draw again (very rare)
            return self.example(index, length, depths, rng, fmt, haystack)
        return self.make_example(
            index, length, depths, fmt, prompt=prompt, answers=[value], prompt_tokens=n,
            answer_prefix=prefix, context_span=(start, end),
        )  # fmt: skip

    def score(self, output: str, example: Example) -> float:
        return recall_all(example.answer_prefix + output, example.answers)


class HelmetMultiValue(Needles):
    """RULER's ``niah_multivalue``: four values of one key, at four distinct points of RULER's depth grid."""

    def sample_depths(self, index: int, samples: int, rng: random.Random) -> list[float]:
        return [d / 100 for d in rng.sample(RULER_DEPTHS, self.needles)]


HELMET_TASKS = {
    "json_kv": HelmetJsonKV(),
    "niah_mk_2": NeedleHaystack("niah_mk_2", "numbers", max_new_tokens=50),
    "niah_mk_3": NeedleHaystack("niah_mk_3", "uuids", max_new_tokens=100),
    "niah_mv": HelmetMultiValue("niah_mv", keys=1, values=4),
}
"""HELMET's recall category, in the order of its tables."""

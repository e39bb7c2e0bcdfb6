"""``niah_single``, ``niah_multikey``, ``niah_multivalue``: RULER's needles in a haystack of real text.

A needle is the sentence ``One of the special magic numbers for KEY is: VALUE.``, with KEY an
adjective-noun pair and VALUE a 7-digit number, inserted at a sentence start of a window of the
held-out documents. The question asks for the number(s) of one key:

* ``niah_single``: one needle.
* ``niah_multikey``: the queried needle plus three distractor needles with other keys (and other
  values); only the queried key's value scores.
* ``niah_multivalue``: four needles with the same key and four values; the score is the fraction
  of the four values recalled.

Every needle has its own depth, sampled stratified over [0, 1] (``tasks.base.stratified_depths``),
and goes to the sentence start nearest that depth (``haystack.sentence_starts``).

Base-format prompt (single value; the multivalue wording is plural, as RULER's)::

    A special magic number is hidden within the following text. Make sure to memorize it. I will quiz you about the number afterwards.
    <haystack with needles>
    What is the special magic number for KEY mentioned in the provided text?
    The special magic number for KEY mentioned in the provided text is

Scored as HELMET's ``ruler_recall`` (``prolong_data.evaluation.scoring.recall_all``).
"""

from __future__ import annotations

import random

from prolong_data.evaluation.haystack import Haystack, nearest, sentence_starts
from prolong_data.evaluation.prompts import LENGTH_TOLERANCE, Example, PromptFormat, prompt_budget
from prolong_data.evaluation.scoring import recall_all
from prolong_data.evaluation.tasks.base import RecallTask

NEEDLE = "One of the special magic numbers for {key} is: {value}."

ADJECTIVES = (
    "amber", "ancient", "bitter", "bold", "brave", "brisk", "calm", "clever", "crimson", "curious",
    "damp", "dusty", "eager", "early", "faint", "fancy", "fierce", "fragile", "gentle", "giant",
    "glossy", "golden", "grumpy", "hollow", "humble", "icy", "jolly", "keen", "lazy", "little",
    "lively", "lucky", "mellow", "misty", "modest", "narrow", "noisy", "odd", "pale", "plain",
    "polite", "proud", "quiet", "rapid", "rough", "rustic", "sandy", "shiny", "silent", "silver",
    "sleepy", "smooth", "sour", "steady", "stormy", "sturdy", "swift", "tidy", "velvet", "wild",
)  # fmt: skip
NOUNS = (
    "anchor", "apple", "badger", "basket", "beacon", "blanket", "bottle", "bridge", "candle", "canyon",
    "castle", "cedar", "cello", "comet", "cottage", "crayon", "desert", "dolphin", "engine", "falcon",
    "feather", "fiddle", "garden", "glacier", "hammer", "harbor", "helmet", "island", "kettle", "ladder",
    "lantern", "lemon", "magnet", "meadow", "mirror", "needle", "orchard", "otter", "paddle", "pepper",
    "pillow", "planet", "pocket", "quilt", "rabbit", "ribbon", "saddle", "shovel", "spider", "teapot",
    "thimble", "tractor", "trumpet", "tunnel", "valley", "violin", "walnut", "whistle", "window", "zebra",
)  # fmt: skip


def random_key(rng: random.Random) -> str:
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


def random_value(rng: random.Random) -> str:
    return str(rng.randint(10**6, 10**7 - 1))


def templates(plural: bool) -> tuple[str, str]:
    """RULER's question wording and answer prefix (HELMET's), singular or plural."""
    if plural:
        return (
            "Some special magic numbers are hidden within the following text. Make sure to memorize it. "
            "I will quiz you about the numbers afterwards.\n{context}\n"
            "What are all the special magic numbers for {query} mentioned in the provided text?",
            "The special magic numbers for {query} mentioned in the provided text are",
        )
    return (
        "A special magic number is hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the number afterwards.\n{context}\n"
        "What is the special magic number for {query} mentioned in the provided text?",
        "The special magic number for {query} mentioned in the provided text is",
    )


def insert_needles(text: str, needles: list[tuple[float, str]]) -> tuple[str, list[int]]:
    """``text`` with each ``(depth, sentence)`` inserted at the sentence start nearest that depth.

    Returns the new text and the character offset of each needle in it (in the order given).
    """
    starts = sentence_starts(text)
    positions = [nearest(starts, round(depth * len(text))) for depth, _ in needles]
    order = sorted(range(len(needles)), key=lambda i: (positions[i], i))
    pieces, offsets, last, shift = [], [0] * len(needles), 0, 0
    for i in order:
        pos, sentence = positions[i], needles[i][1]
        pieces.append(text[last:pos])
        if pos == len(text) and pos > 0:  # at the very end: a separating space before
            pieces.append(" ")
            shift += 1
        offsets[i] = pos + shift
        piece = sentence if pos == len(text) else sentence + " "
        pieces.append(piece)
        shift += len(piece)
        last = pos
    pieces.append(text[last:])
    return "".join(pieces), offsets


class Needles(RecallTask):
    """RULER-style needle retrieval with ``keys`` needle keys (one queried) and ``values`` values per key."""

    needs_haystack = True
    max_new_tokens = 50

    def __init__(self, name: str, keys: int, values: int, queried: int = 1):
        self.name, self.keys, self.values, self.queried = name, keys, values, queried
        self.needles = keys * values

    def example(
        self,
        index: int,
        length: int,
        depths: list[float],
        rng: random.Random,
        fmt: PromptFormat,
        haystack: Haystack,
    ) -> Example:
        user_template, prefix_template = templates(plural=self.values * self.queried > 1)
        keys: list[str] = []
        while len(keys) < self.keys:
            key = random_key(rng)
            if key not in keys:
                keys.append(key)
        values: list[str] = []
        while len(values) < self.keys * self.values:
            value = random_value(rng)
            if value not in values:
                values.append(value)
        asked = keys[: self.queried]  # RULER's wording: "k1, k2, and k3"
        query = ", ".join(asked[:-1]) + ", and " + asked[-1] if len(asked) > 1 else asked[0]
        # (depth, needle): the queried key's values first, each needle at its own sampled depth
        needles = [
            (depths[i], NEEDLE.format(key=keys[i // self.values], value=values[i]))
            for i in range(len(values))
        ]
        answers = values[: self.values * self.queried]
        start = haystack.random_start(rng)
        before, after = user_template.split("{context}")
        before, after = before.format(query=query), after.format(query=query)
        prefix = prefix_template.format(query=query)

        def render(chars: int) -> tuple[str, int, int]:
            context, _ = insert_needles(haystack.window(start, chars), needles)
            prompt, offset = fmt.render(before + context + after, prefix)
            return prompt, offset + len(before), offset + len(before) + len(context)

        target = prompt_budget(length, self.max_new_tokens)
        most = length * 8  # characters; far more than ``length`` tokens of text in any tokenizer
        chars, n = self.fit(lambda c: render(c)[0], fmt, length, most)
        if n < target * (1 - LENGTH_TOLERANCE):
            raise RuntimeError(f"{self.name}: fitted {n} tokens for a target of {target}")
        prompt, begin, end = render(chars)
        for value in values:
            if prompt.count(value) != 1:  # the haystack happens to hold this number: draw the example again
                return self.example(index, length, depths, rng, fmt, haystack)
        return self.make_example(
            index,
            length,
            depths,
            fmt,
            prompt=prompt,
            answers=answers,
            prompt_tokens=n,
            answer_prefix=prefix,
            context_span=(begin, end),
            distractors=values[self.values * self.queried :],
        )

    def score(self, output: str, example: Example) -> float:
        return recall_all(example.answer_prefix + output, example.answers)

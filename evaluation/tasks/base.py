"""What every recall task provides, and the depth grid shared by all of them."""

from __future__ import annotations

import random

from evaluation.prompts import Example, PromptFormat


def depth_grid(count: int) -> list[float]:
    """``count`` evenly spaced depths from 0 to 1 (one depth, 0.5, when ``count`` is 1)."""
    if count < 1:
        raise ValueError("the depth grid needs at least one depth")
    return [0.5] if count == 1 else [round(i / (count - 1), 4) for i in range(count)]


def example_rng(seed: int, task: str, length: int, index: int) -> random.Random:
    """The random generator of one example: the same example for the same seed, whatever else runs."""
    return random.Random(f"{seed}/{task}/{length}/{index}")


class RecallTask:
    """A task that builds prompts with known answers and scores generated outputs."""

    name: str
    max_new_tokens: int
    needs_haystack: bool = False

    def example(
        self, index: int, length: int, depth: float, rng: random.Random, fmt: PromptFormat, haystack=None
    ) -> Example:
        """The ``index``-th example at ``length`` tokens with its answer at ``depth``."""
        raise NotImplementedError

    def score(self, output: str, example: Example) -> float:
        """0..100 for one generated output."""
        raise NotImplementedError

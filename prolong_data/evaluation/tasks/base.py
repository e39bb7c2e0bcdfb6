"""What every recall task provides, and the depth grid shared by all of them."""

from __future__ import annotations

import random

from prolong_data.evaluation.prompts import Example, PromptFormat


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

    def make_example(
        self,
        index: int,
        length: int,
        depth: float,
        fmt: PromptFormat,
        *,
        prompt: str,
        answers: list[str],
        prompt_tokens: int,
        answer_prefix: str,
        context_span: tuple[int, int],
        **extra,
    ) -> Example:
        """The `Example` of this task; a base-model prompt keeps ``answer_prefix``, a chat prompt none."""
        return Example(
            id=f"{self.name}/{length}/{index}",
            task=self.name,
            target_length=length,
            depth=depth,
            prompt=prompt,
            answers=answers,
            prompt_tokens=prompt_tokens,
            max_new_tokens=self.max_new_tokens,
            chat=fmt.chat,
            answer_prefix="" if fmt.chat else answer_prefix,
            context_span=context_span,
            **extra,
        )

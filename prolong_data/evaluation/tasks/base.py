"""What every recall task provides, and how answer depths are sampled for all of them."""

from __future__ import annotations

import random
from collections.abc import Callable

from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.evaluation.prompts import Example, PromptFormat, fit_to_length, prompt_budget


def stratified_depths(index: int, samples: int, needles: int, rng: random.Random) -> list[float]:
    """Depths (0..1) of the ``needles`` needles of example ``index`` of a cell of ``samples`` examples.

    [0, 1] is cut into ``samples`` equal strata; needle ``j`` lies uniformly at random in stratum
    ``(index + j * samples // needles) mod samples``. Across a cell every needle's depths cover
    [0, 1] evenly (one per stratum: no edge is favoured), and one example's needles are spread out.
    """
    return [
        round((((index + j * samples // needles) % samples) + rng.random()) / samples, 6)
        for j in range(needles)
    ]


def depth_bin(depth: float, bins: int) -> int:
    """The heatmap row of ``depth``: ``[0, 1]`` cut into ``bins`` equal bins (1.0 in the last)."""
    return min(int(depth * bins), bins - 1)


def example_rng(seed: int, task: str, length: int, index: int) -> random.Random:
    """The random generator of one example: the same example for the same seed, whatever else runs."""
    return random.Random(f"{seed}/{task}/{length}/{index}")


class RecallTask:
    """A task that builds prompts with known answers and scores generated outputs."""

    name: str
    max_new_tokens: int
    needs_haystack: bool = False
    needles: int = 1
    """How many inserted items have a depth of their own (the answer's first)."""

    def example(
        self,
        index: int,
        length: int,
        depths: list[float],
        rng: random.Random,
        fmt: PromptFormat,
        haystack=None,
    ) -> Example:
        """The ``index``-th example at ``length`` tokens (prompt plus generation budget), its
        ``needles`` items at ``depths`` (the answer at ``depths[0]``)."""
        raise NotImplementedError

    def score(self, output: str, example: Example) -> float:
        """0..100 for one generated output."""
        raise NotImplementedError

    def fit(self, build: Callable[[int], str], fmt: PromptFormat, length: int, most: int) -> tuple[int, int]:
        """The largest context size ``k <= most`` whose prompt ``build(k)`` fits ``length`` less the
        generation budget, and its token count; a usage error when not even an empty context fits."""
        try:
            k, _, n = fit_to_length(build, fmt.count, prompt_budget(length, self.max_new_tokens), most)
        except ValueError as error:
            raise EvalUsageError(
                f"{self.name} cannot fit in {length} tokens ({error}); use longer --lengths"
            ) from error
        return k, n

    def sample_depths(self, index: int, samples: int, rng: random.Random) -> list[float]:
        """The depths of example ``index``'s needles: stratified over [0, 1], each needle its own."""
        return stratified_depths(index, samples, self.needles, rng)

    def make_example(
        self,
        index: int,
        length: int,
        depths: list[float],
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
            depth=depths[0],
            needle_depths=list(depths),
            prompt=prompt,
            answers=answers,
            prompt_tokens=prompt_tokens,
            max_new_tokens=self.max_new_tokens,
            chat=fmt.chat,
            answer_prefix="" if fmt.chat else answer_prefix,
            context_span=context_span,
            **extra,
        )

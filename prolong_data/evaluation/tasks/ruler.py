"""RULER's synthetic tasks beyond single needles (``--protocol ruler``): ``niah_multiquery``,
``vt`` (variable tracking), ``cwe`` (common words extraction), ``fwe`` (frequent words extraction).

Reproduced from the procedures of RULER's ``scripts/data/synthetic/`` generators and
``constants.py`` templates (``synthetic.yaml``'s settings), with the evaluated model's tokenizer:

* ``niah_multiquery``: four needles with four keys in the held-out books at four distinct points
  of RULER's 40-point depth grid; all four keys are asked; 128 new tokens.
* ``vt``: one chain of five variables (``VAR ABCDE = 12345``, then ``VAR FGHIJ = VAR ABCDE`` ...)
  hidden in repeated noise lines at sorted random lines, after one worked example with 3-letter
  names; the answer is the five names; 30 new tokens.
* ``cwe``: a numbered list of words where 10 common words appear 30 times each and the others 3
  times (6 and 1 below 4,096 tokens), after one worked example; the answer is the 10; 120 new tokens.
* ``fwe``: coded 6-letter words drawn with Zipf frequencies (alpha 2) from a 2,000-word vocabulary
  whose most frequent word is ``...`` (noise); the answer is the next three; 50 new tokens.

All are scored as RULER does: the fraction of the expected strings found in the output.
"""

from __future__ import annotations

import math
import random
import string

from prolong_data.evaluation.prompts import Example, PromptFormat
from prolong_data.evaluation.scoring import recall_all
from prolong_data.evaluation.tasks.base import RecallTask
from prolong_data.evaluation.tasks.helmet import HelmetMultiValue

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
VT_TEMPLATE = (
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
    "Question: Find all variables that are assigned the value {query} in the text above."
)
VT_PREFIX = "Answer: According to the chain(s) of variable assignment in the text above, {n} variables are assigned the value {query}, they are:"
CWE_TEMPLATE = (
    "Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
    "ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?"
)
CWE_PREFIX = "Answer: The top 10 words that appear most often in the list are:"
FWE_TEMPLATE = (
    "Read the following coded text and track the frequency of each coded word. Find the three most "
    "frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore "
    "the dots '....'. What are the three most frequently appeared words in the above coded text?"
)
FWE_PREFIX = "Answer: According to the coded text above, the three most frequently appeared words are:"


def random_word(rng: random.Random, letters: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(letters))


def distinct_words(
    rng: random.Random, count: int, letters: int, alphabet: str = string.ascii_lowercase
) -> list[str]:
    """``count`` different random words of ``letters`` letters, in the order drawn."""
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen.setdefault(random_word(rng, letters, alphabet), None)
    return list(seen)


class Synthetic(RecallTask):
    """A RULER task whose context is ``k`` units (lines or words), fitted to the length."""

    def build(self, rng: random.Random, length: int):
        """``(render(k) -> (user text, context start, context end), prefix, answers, most k)``."""
        raise NotImplementedError

    def sample_depths(self, index: int, samples: int, rng: random.Random) -> list[float]:
        return [0.0]  # no single answer position: the answers are spread by the task itself

    def example(
        self,
        index: int,
        length: int,
        depths: list[float],
        rng: random.Random,
        fmt: PromptFormat,
        haystack=None,
    ) -> Example:
        render, prefix, answers, most = self.build(rng, length)

        def prompt_of(k: int) -> tuple[str, int, int]:
            user, begin, end = render(k)
            prompt, offset = fmt.render(user, prefix)
            return prompt, offset + begin, offset + end

        k, n = self.fit(lambda k: prompt_of(k)[0], fmt, length, most)
        prompt, begin, end = prompt_of(k)
        return self.make_example(
            index, length, depths, fmt, prompt=prompt, answers=answers, prompt_tokens=n, answer_prefix=prefix,
            context_span=(begin, end),
        )  # fmt: skip

    def score(self, output: str, example: Example) -> float:
        return recall_all(example.answer_prefix + output, example.answers)


class VariableTracking(Synthetic):
    name, max_new_tokens, hops = "vt", 30, 4

    def chain(self, rng: random.Random, letters: int, value: str) -> tuple[list[str], list[str]]:
        names = distinct_words(rng, self.hops + 1, letters, string.ascii_uppercase)
        lines = [f"VAR {names[0]} = {value}"] + [
            f"VAR {names[j + 1]} = VAR {names[j]} " for j in range(self.hops)
        ]
        return names, lines

    def insert(self, rng: random.Random, lines: list[str], count: int) -> list[str]:
        """``count`` noise lines with the chain's lines at sorted random places, in order."""
        out = [NOISE] * count
        for j, at in enumerate(sorted(rng.sample(range(count + 1), len(lines)))):
            out.insert(at + j, lines[j])
        return out

    def build(self, rng: random.Random, length: int):
        icl_names, icl_lines = self.chain(rng, 3, "12345")
        icl_text = "\n".join(self.insert(rng, icl_lines, 10))
        icl = (
            VT_TEMPLATE.format(context=icl_text, query="12345") + "\n"
            + VT_PREFIX.format(n=self.hops + 1, query="12345") + " " + " ".join(icl_names) + "\n\n"
        )  # fmt: skip
        value = str(rng.randint(10000, 99999))
        names, lines = self.chain(rng, 5, value)
        most = length // 8 + 8
        slots = sorted(rng.sample(range(most + 1), len(lines)))
        fractions = [s / most for s in slots]
        head, tail = VT_TEMPLATE.split("{context}")

        def render(k: int) -> tuple[str, int, int]:
            body = [NOISE] * k
            for j, f in enumerate(fractions):
                body.insert(round(f * k) + j, lines[j])
            context = "\n".join(body)
            before = icl + head
            return before + context + tail.format(query=value), len(before), len(before) + len(context)

        return render, VT_PREFIX.format(n=self.hops + 1, query=value), names, most


class CommonWords(Synthetic):
    name, max_new_tokens, common = "cwe", 120, 10

    @staticmethod
    def word_list(rng: random.Random, words: list[str], common: int, repeats: tuple[int, int]) -> str:
        listed = words[:common] * repeats[0] + words[common:] * repeats[1]
        rng.shuffle(listed)
        return " ".join(f"{i + 1}. {w}" for i, w in enumerate(listed))

    def build(self, rng: random.Random, length: int):
        repeats = (30, 3) if length >= 4096 else (6, 1)
        shots = distinct_words(rng, 40, 7)
        shot = self.word_list(rng, shots, self.common, (10, 3) if length >= 4096 else (3, 1))
        icl = (
            CWE_TEMPLATE.format(context=shot) + "\n" + CWE_PREFIX + " "
            + " ".join(f"{i + 1}. {w}" for i, w in enumerate(shots[: self.common])) + "\n"
        )  # fmt: skip
        most = length // 4 + self.common
        words = [w for w in distinct_words(rng, most + 40, 7) if w not in shots][:most]
        head, tail = CWE_TEMPLATE.split("{context}")
        seed = rng.random()

        def render(k: int) -> tuple[str, int, int]:
            context = self.word_list(
                random.Random(f"{seed}/{k}"), words[: self.common + k], self.common, repeats
            )
            before = icl + head
            return before + context + tail, len(before), len(before) + len(context)

        return render, CWE_PREFIX, words[: self.common], most


class FrequentWords(Synthetic):
    name, max_new_tokens, alpha, vocab_size = "fwe", 50, 2.0, 2000

    def build(self, rng: random.Random, length: int):
        vocab = distinct_words(rng, self.vocab_size, 6)
        vocab[0] = "..."  # the most frequent word is noise
        zeta = math.pi**2 / 6  # zeta(2)
        seed = rng.random()
        head, tail = FWE_TEMPLATE.split("{context}")

        def render(k: int) -> tuple[str, int, int]:
            counts = [int(k * r**-self.alpha / zeta) for r in range(1, len(vocab) + 1)]
            words = [w for w, c in zip(vocab, counts) for _ in range(c)]
            random.Random(seed).shuffle(words)
            context = " ".join(words)
            return head + context + tail, len(head), len(head) + len(context)

        return render, FWE_PREFIX, vocab[1:4], length * 2


class MultiQuery(HelmetMultiValue):
    """RULER's ``niah_multiquery``: four keys of one value each, all four asked; RULER's budget for needles."""

    max_new_tokens = 128


RULER_TASKS = {
    "niah_multiquery": MultiQuery("niah_multiquery", keys=4, values=1, queried=4),
    "vt": VariableTracking(),
    "cwe": CommonWords(),
    "fwe": FrequentWords(),
}
"""RULER's tasks beyond the single and multi-key needles (the default protocol has those)."""

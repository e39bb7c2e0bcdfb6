"""``json_kv``: HELMET's JSON key-value retrieval (from "Lost in the Middle").

The context is a JSON object of random UUID keys and UUID values, one record per line, filling
the prompt; the question names one key and the answer is its value. The queried record sits at
the requested depth of the object. Two other (distinct) records of the same object are shown as
worked examples before the question (HELMET's two shots). Scored by substring exact match after
normalisation (``prolong_data.evaluation.scoring``).

Base-format prompt::

    JSON data:
    {"<uuid>": "<uuid>",
     "<uuid>": "<uuid>",
     ...}

    Extract the value corresponding to the specified key in the JSON object below.

    Key: "<demo key>"
    Corresponding value: <demo value>

    Key: "<demo key>"
    Corresponding value: <demo value>

    Key: "<query key>"
    Corresponding value:

The object holds as many records as fit in the length less the generation budget; to land within
1% of that, one record of random hex of a fitted length (never the queried one) tops the object up
to the last few tokens.
"""

from __future__ import annotations

import random
import uuid

from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.evaluation.prompts import (
    LENGTH_TOLERANCE,
    Example,
    PromptFormat,
    fit_to_length,
    prompt_budget,
)
from prolong_data.evaluation.scoring import parse_after, substring_exact_match
from prolong_data.evaluation.tasks.base import RecallTask

INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."
ANSWER_PREFIX = "Corresponding value:"
SHOTS = 2
PAD_HEX = 120
"""Hex characters of the longest top-up record (longer than a UUID record, so it can stand in for one)."""


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def demo_indices(fractions: list[float], k: int) -> list[int]:
    """Distinct record indices in ``[0, k)`` drawn from uniform ``fractions``: no demonstration repeats
    (``min(len(fractions), k)`` of them)."""
    free = list(range(k))
    return [free.pop(min(int(f * len(free)), len(free) - 1)) for f in fractions[:k]]


def format_records(records: list[tuple[str, str]]) -> str:
    """The object as "Lost in the Middle" writes it: ``{`` first, one record per line, ``}`` last."""
    lines = [f'{"{" if i == 0 else " "}"{k}": "{v}"' for i, (k, v) in enumerate(records)]
    return ",\n".join(lines) + "}" if records else "{}"


class JsonKV(RecallTask):
    name = "json_kv"
    max_new_tokens = 100

    def example(
        self,
        index: int,
        length: int,
        depths: list[float],
        rng: random.Random,
        fmt: PromptFormat,
        haystack=None,
    ) -> Example:
        depth, target = depths[0], prompt_budget(length, self.max_new_tokens)
        most = length // 8 + 8  # a record has far more than 8 tokens in any tokenizer
        records = [(random_uuid(rng), random_uuid(rng)) for _ in range(most)]
        query = (random_uuid(rng), random_uuid(rng))
        demo_at = [rng.random() for _ in range(SHOTS)]
        pad_hex = "".join(rng.choice("0123456789abcdef") for _ in range(PAD_HEX + 4))

        def layout(k: int, pad: int | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
            """The object's records and the demo records, for ``k`` filler records and a top-up of ``pad`` hex."""
            body = list(records[:k])
            demos = [body[i] for i in demo_indices(demo_at, k)]
            at = round(depth * k)
            body.insert(at, query)
            if pad is not None:
                half = pad // 2
                extra = (pad_hex[: 4 + half], pad_hex[4 + half : 4 + pad])
                body.insert(len(body) if at < len(body) / 2 else 0, extra)
            return body, demos

        def render(k: int, pad: int | None) -> tuple[str, int, int]:
            body, demos = layout(k, pad)
            context = "JSON data:\n" + format_records(body)
            shots = "".join(f'Key: "{dk}"\n{ANSWER_PREFIX} {dv}\n\n' for dk, dv in demos)
            user = f'{context}\n\n{INSTRUCTION}\n\n{shots}Key: "{query[0]}"'
            prompt, offset = fmt.render(user, ANSWER_PREFIX)
            return prompt, offset, offset + len(context)

        fixed = self.record_count(length)
        if fixed is not None:
            k, pad = min(fixed - 1, most), None  # the fixed count includes the queried record
            n = fmt.count(render(k, None)[0])
            if n > target:
                raise EvalUsageError(
                    f"{self.name}: {fixed} records take {n} tokens with this tokenizer, more than the "
                    f"{target} a {length}-token length leaves for the prompt; use longer --lengths"
                )
        else:
            k, pad, n = self.fill(render, fmt, length, target, most)
        prompt, start, end = render(k, pad)
        assert prompt.count(query[1]) == 1, "the answer must occur exactly once"
        return self.make_example(
            index,
            length,
            depths,
            fmt,
            prompt=prompt,
            answers=[query[1]],
            prompt_tokens=n,
            answer_prefix=ANSWER_PREFIX,
            context_span=(start, end),
        )

    def record_count(self, length: int) -> int | None:
        """A fixed number of records (the queried one included) at ``length`` (HELMET's), or None: as many
        as fill the prompt."""
        return None

    def fill(
        self, render, fmt: PromptFormat, length: int, target: int, most: int
    ) -> tuple[int, int | None, int]:
        """Filler records ``k``, top-up hex ``pad`` and token count of the prompt that fills ``target``."""
        k, n = self.fit(lambda k: render(k, None)[0], fmt, length, most)
        pad = None
        for filler in (k, k - 1):  # top up the gap; if even the shortest top-up is too long, one record fewer
            if target - n <= int(target * LENGTH_TOLERANCE / 4) or filler < 0:
                break
            try:
                m, _, padded_n = fit_to_length(
                    lambda m, filler=filler: render(filler, m)[0], fmt.count, target, PAD_HEX
                )
            except ValueError:
                continue
            if padded_n > n:
                k, pad, n = filler, m, padded_n
        if n < target * (1 - LENGTH_TOLERANCE):
            raise RuntimeError(f"json_kv: fitted {n} tokens for a target of {target}")
        return k, pad, n

    def score(self, output: str, example: Example) -> float:
        full = example.answer_prefix + output
        return max(
            substring_exact_match(full, example.answers),
            substring_exact_match(parse_after(full, ANSWER_PREFIX), example.answers),
        )

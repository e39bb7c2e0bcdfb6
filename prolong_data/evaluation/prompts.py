"""What a generated example is, how a prompt is rendered for the model, and how it is fitted to a length.

A prompt is rendered in one of two formats, as HELMET does:

* base (``chat=False``): the task's user text, a newline, and the answer prefix (e.g.
  ``Corresponding value:``) that the model continues; the tokenizer's BOS token goes first.
* chat (``chat=True``): the user text as the single user turn of the tokenizer's own chat
  template, with the generation prompt; no system message, no answer prefix.

Lengths are counted in the evaluated model's tokens, on the exact ids the model receives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from prolong_data.evaluation.errors import EvalUsageError

LENGTH_TOLERANCE = 0.01
"""A fitted prompt has between (1 - LENGTH_TOLERANCE) x its budget and its budget of tokens."""


def prompt_budget(length: int, max_new_tokens: int) -> int:
    """Tokens a prompt may have at ``length``: the generation budget is inside the length, as in HELMET."""
    return length - max_new_tokens


@dataclass
class Example:
    """One generated test case, as written to ``prompts.jsonl``."""

    id: str
    """``task/target_length/index``: unique within an evaluation, the key results are resumed by."""
    task: str
    target_length: int
    """The requested length in tokens: the prompt plus the generation budget fit in it."""
    depth: float | None
    """Where the answer was placed, as a fraction (0..1) of the context; None for tasks without one."""
    prompt: str
    """The exact text given to the model (in base format the tokenizer's BOS token precedes it)."""
    answers: list[str]
    """Strings that score: one for json_kv and single needles, all of them must be recalled for multivalue."""
    prompt_tokens: int
    """Tokens the model reads (BOS included)."""
    max_new_tokens: int
    """Greedy generation budget (HELMET's ``generation_max_length`` of the task)."""
    chat: bool
    """Whether the prompt went through the tokenizer's chat template."""
    answer_prefix: str = ""
    """Text the base-format prompt ends with; prepended to the output before scoring, as HELMET does."""
    context_span: tuple[int, int] = (0, 0)
    """Character span of the context (JSON object or haystack) inside ``prompt``."""
    distractors: list[str] = field(default_factory=list)
    """Values of needles or records that are not the answer but look like it (multikey's other keys)."""
    needle_depths: list[float] = field(default_factory=list)
    """The sampled depth of every needle (the answer's first), each stratified on its own."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> Example:
        row = dict(row)
        row["context_span"] = tuple(row.get("context_span", (0, 0)))
        return cls(**row)


class PromptFormat:
    """Renders and counts prompts with one tokenizer (a Hugging Face tokenizer object)."""

    def __init__(self, tokenizer, chat: bool):
        if chat and not getattr(tokenizer, "chat_template", None):
            raise EvalUsageError("the tokenizer has no chat template; evaluate with --chat off")
        self.tokenizer = tokenizer
        self.chat = chat
        self.bos_id = tokenizer.bos_token_id

    def render(self, user: str, answer_prefix: str) -> tuple[str, int]:
        """The prompt text and the offset at which ``user`` starts inside it."""
        if not self.chat:
            return f"{user}\n{answer_prefix}", 0
        marker = "\x00USER\x00"
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
        )
        start = text.index(marker)
        return text[:start] + user + text[start + len(marker) :], start

    def encode(self, prompt: str) -> list[int]:
        """Token ids the model reads: chat prompts carry their own special tokens; base prompts get BOS."""
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if not self.chat and self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id, *ids]
        return ids

    def count(self, prompt: str) -> int:
        return len(self.encode(prompt))


def fit_to_length(
    build: Callable[[int], str], count: Callable[[str], int], target: int, hi: int
) -> tuple[int, str, int]:
    """The largest ``k`` in ``[0, hi]`` with ``count(build(k)) <= target``, its prompt and token count.

    ``build(k)`` must grow with ``k`` (more haystack characters, more records). Secant steps from
    ``k = 0`` find the neighbourhood in two or three tokenizations of the full prompt; a bisection
    then pins the exact boundary. Raises ``ValueError`` if even ``k = 0`` is too long.
    """
    seen: dict[int, tuple[str, int]] = {}

    def measure(k: int) -> int:
        if k not in seen:
            text = build(k)
            seen[k] = (text, count(text))
        return seen[k][1]

    if measure(0) > target:
        raise ValueError(f"the prompt without any context already has {measure(0)} tokens > {target}")
    good, bad = 0, hi + 1  # count(build(good)) <= target < count(build(bad)); bad = hi + 1: none seen yet
    slack = max(1, int(target * LENGTH_TOLERANCE / 4))
    k = min(hi, max(1, hi // 2))
    for _ in range(8):  # secant steps on the line through (0, n0) and the best point so far
        n = measure(k)
        if n <= target:
            good = max(good, k)
            if target - n <= slack:
                break
        else:
            bad = min(bad, k)
        slope = (n - measure(0)) / k if k else 1.0
        step = round((target - n) / slope) if slope > 0 else 1
        k = min(max(k + step, good + 1), bad - 1, hi)
        if k <= good or k in seen:
            break
    while bad - good > 1 and target - measure(good) > slack:  # bisection
        mid = (good + bad) // 2
        if measure(mid) <= target:
            good = mid
        else:
            bad = mid
    text, n = seen[good]
    return good, text, n

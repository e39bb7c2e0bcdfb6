"""The generated examples of the default protocol: prompt plus generation budget within the length,
the answer once at its depth, needles at sentence starts, stratified depths, no licence text."""

from __future__ import annotations

import random
import re

import pytest

from prolong_data.evaluation.haystack import SENTENCE_START, Haystack, read_documents
from prolong_data.evaluation.prompts import LENGTH_TOLERANCE, PromptFormat, prompt_budget
from prolong_data.evaluation.tasks import RECALL_TASKS
from prolong_data.evaluation.tasks.base import depth_bin, example_rng, stratified_depths
from prolong_data.evaluation.tasks.json_kv import demo_indices
from prolong_data.evaluation.tasks.niah import NEEDLE

NEEDLE_RE = re.compile(r"One of the special magic numbers for \S+ is: \d{7}\.")
LICENCE = ("Project Gutenberg License", "Project Gutenberg-tm", "*** START OF", "*** END OF", "gutenberg.org")


@pytest.fixture(scope="module")
def haystack(heldout_dir) -> Haystack:
    return Haystack(read_documents(heldout_dir))


def make(task: str, length: int, tokenizer, haystack, chat=False, index=0, seed=0, depths=None, samples=5):
    """One example as the runner makes it; ``depths`` (the answer's first) overrides the sampled ones."""
    fmt = PromptFormat(tokenizer, chat)
    recall, rng = RECALL_TASKS[task], example_rng(seed, task, length, index)
    sampled = stratified_depths(index, samples, recall.needles, rng)
    return recall.example(index, length, depths or sampled, rng, fmt, haystack), fmt


def spread(depth: float, needles: int) -> list[float]:
    """``depth`` for the answer and the other needles spread evenly around [0, 1] from it."""
    return [depth] + [(depth + j / needles) % 1.0 for j in range(1, needles)]


@pytest.mark.parametrize("task", list(RECALL_TASKS))
@pytest.mark.parametrize("tokenizer", ["llama3", "small_bpe"])
def test_prompt_plus_budget_fits_the_length(task, tokenizer, haystack, request):
    tok = request.getfixturevalue(tokenizer)
    for length, chat in ((1000, False), (3001, False), (2048, tokenizer == "llama3")):
        example, fmt = make(task, length, tok, haystack, chat=chat)
        counted = fmt.count(example.prompt)
        budget = prompt_budget(length, example.max_new_tokens)
        assert counted == example.prompt_tokens
        assert counted + example.max_new_tokens <= length, (task, length, chat, counted)
        assert counted >= budget * (1 - LENGTH_TOLERANCE), (task, length, chat, counted)
        if not chat and tok.bos_token_id is not None:
            assert fmt.encode(example.prompt)[0] == tok.bos_token_id


def test_chat_prompts_use_the_tokenizers_template(llama3, haystack):
    example, _ = make("niah_single", 1024, llama3, haystack, chat=True)
    assert example.prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n")
    assert example.prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert example.answer_prefix == ""
    base, _ = make("niah_single", 1024, llama3, haystack, chat=False)
    assert (
        base.prompt.endswith(f"\n{base.answer_prefix}")
        and "mentioned in the provided text is" in base.answer_prefix
    )


def _needle_start(task: str, context: str, answer: str) -> int:
    """Character offset in the context of the record or needle sentence that holds ``answer``."""
    at = context.index(answer)
    if task == "json_kv":
        return context.rfind("\n", 0, at) + 1 if context.rfind("\n", 0, at) > 0 else context.index("{")
    return context.rfind("One of the special magic numbers", 0, at)


@pytest.mark.parametrize("task", list(RECALL_TASKS))
def test_answer_occurs_once_at_the_stated_depth(task, llama3, haystack):
    for index, depth in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        needles = RECALL_TASKS[task].needles
        example, fmt = make(task, 2048, llama3, haystack, index=index, depths=spread(depth, needles))
        assert example.depth == depth and example.needle_depths == spread(depth, needles)
        start, end = example.context_span
        context = example.prompt[start:end]
        for answer in example.answers:
            assert example.prompt.count(answer) == 1, (task, depth, answer)
            assert answer in context
        at = _needle_start(task, context, example.answers[0])
        # Character depth: the needle goes to the sentence start nearest depth x length, so it can move
        # by one sentence (a paragraph of dialogue at most, < 1,500 characters in these books); the
        # other needles and (json_kv) the top-up record and the "JSON data:\n{" header shift it by
        # their own length at most.
        others = [NEEDLE.format(key="", value=v) for v in example.distractors + example.answers[1:]]
        lines = context.split("\n")
        slack = sum(len(o) + 1 for o in others) + len("JSON data:\n{")
        slack += 3 * max(len(line) for line in lines) if task == "json_kv" else 1500
        assert abs(at / len(context) - depth) <= slack / len(context), (task, depth, at, len(context))


def _assert_at_a_sentence_boundary(context: str, start: int, end: int) -> None:
    """The needle ``context[start:end]`` neither splits a sentence nor follows a line break inside one."""
    before, after = context[:start], context[end:]
    while (m := re.search(r"\s*" + NEEDLE_RE.pattern + r"\s*$", before)) is not None:
        before = before[: m.start()]  # needles stacked at one sentence start
    assert not before or re.search(
        r"([a-z0-9\"'\u201d\u2019)\]][.!?][\"'\u201d\u2019)\]]*\s+|\n[ \t]*\n\s*)$", before
    ), before[-80:]
    assert not after.strip() or re.match(r"\s+(One of the special|[\"'\u201c\u2018(\[_]*[A-Z0-9])", after), (
        after[:80]
    )


@pytest.mark.parametrize("task", [t for t in RECALL_TASKS if t != "json_kv"])
def test_needles_sit_at_sentence_starts(task, llama3, haystack):
    for seed in range(12):
        example, _ = make(task, 1024, llama3, haystack, seed=seed, samples=12, index=seed)
        start, end = example.context_span
        context = example.prompt[start:end]
        found = list(NEEDLE_RE.finditer(context))
        assert len(found) == RECALL_TASKS[task].needles
        for match in found:
            _assert_at_a_sentence_boundary(context, match.start(), match.end())


def test_sentence_starts_skip_hard_wraps_abbreviations_and_headings():
    text = "He said to Mr. Holmes that\nthe door was shut. It was.\n\nIV. The End\nof it. \u201cYes,\u201d she said."
    starts = [m.end() for m in SENTENCE_START.finditer(text)]
    assert [text[s : s + 6] for s in starts] == ["It was", "IV. Th", "\u201cYes,\u201d"]


def test_depth_one_puts_the_needle_after_the_last_sentence_start(llama3, haystack):
    first, _ = make("niah_single", 1024, llama3, haystack, depths=[0.0])
    last, _ = make("niah_single", 1024, llama3, haystack, depths=[1.0])
    a, b = first.context_span
    assert first.prompt[a:b].startswith("One of the special magic numbers")
    a, b = last.context_span
    context = last.prompt[a:b]
    tail = context[NEEDLE_RE.search(context).end() :]
    assert not SENTENCE_START.search(tail.strip()), tail


def test_haystack_has_no_licence_text(haystack, llama3):
    for phrase in LICENCE:
        assert phrase.lower() not in haystack.text.lower(), phrase
    for seed in range(5):
        example, _ = make("niah_single", 2048, llama3, haystack, seed=seed)
        assert not any(p.lower() in example.prompt.lower() for p in LICENCE)


def test_stratified_depths_cover_every_stratum_once_per_needle():
    samples, needles = 40, 4
    rng = random.Random(0)
    depths = [stratified_depths(i, samples, needles, rng) for i in range(samples)]
    for j in range(needles):
        strata = sorted(depth_bin(d[j], samples) for d in depths)
        assert strata == list(range(samples)), j  # exactly one depth of needle j in each stratum
    assert all(len(set(d)) == needles for d in depths)  # one example's needles are spread out
    # the edges are not favoured: a quarter of the depths in each quarter of [0, 1]
    answer = [d[0] for d in depths]
    assert [sum(q / 4 <= x < (q + 1) / 4 for x in answer) for q in range(4)] == [10] * 4


def test_demonstrations_never_repeat():
    rng = random.Random(1)
    for k in range(2, 40):
        for _ in range(50):
            picked = demo_indices([rng.random(), rng.random()], k)
            assert len(set(picked)) == 2 and all(0 <= i < k for i in picked)
    assert demo_indices([0.3, 0.9], 1) == [0] and demo_indices([0.3], 0) == []


def test_multikey_distractors_never_equal_the_answer(llama3, haystack):
    for index in range(12):
        example, _ = make("niah_multikey", 512, llama3, haystack, index=index, seed=index, samples=12)
        start, end = example.context_span
        needles = re.findall(r"special magic numbers for (\S+) is: (\d+)\.", example.prompt[start:end])
        assert len(needles) == 4
        query = re.search(r"What is the special magic number for (\S+) mentioned", example.prompt)[1]
        assert [v for k, v in needles if k == query] == example.answers
        assert sorted(v for k, v in needles if k != query) == sorted(example.distractors)
        assert len({k for k, _ in needles}) == 4, "every distractor has its own key"
        assert example.answers[0] not in example.distractors
        for value in example.distractors:
            assert example.prompt.count(value) == 1


def test_multivalue_hides_all_values_of_one_key(llama3, haystack):
    example, _ = make("niah_multivalue", 1024, llama3, haystack)
    key = re.search(r"all the special magic numbers for (\S+) mentioned", example.prompt)[1]
    found = re.findall(rf"special magic numbers for {re.escape(key)} is: (\d+)\.", example.prompt)
    assert sorted(found) == sorted(example.answers) and len(set(found)) == 4


def test_json_kv_demos_are_two_other_records_and_the_key_is_asked(llama3, haystack):
    for seed in range(6):
        example, _ = make("json_kv", 1024, llama3, haystack, seed=seed)
        demos = re.findall(r'Key: "([0-9a-f-]{36})"\nCorresponding value: ([0-9a-f-]{36})', example.prompt)
        assert len(demos) == 2 and demos[0] != demos[1]
        for key, value in demos:
            assert f'"{key}": "{value}"' in example.prompt  # shown from the same object
            assert value != example.answers[0]
        query = re.findall(r'Key: "([0-9a-f-]{36})"', example.prompt)[-1]
        assert f'"{query}": "{example.answers[0]}"' in example.prompt


def test_examples_are_deterministic_per_seed(llama3, haystack):
    a, _ = make("niah_multikey", 1024, llama3, haystack, seed=3)
    b, _ = make("niah_multikey", 1024, llama3, haystack, seed=3)
    c, _ = make("niah_multikey", 1024, llama3, haystack, seed=4)
    assert a.prompt == b.prompt and a.answers == b.answers
    assert c.prompt != a.prompt


def test_rng_streams_do_not_depend_on_each_other():
    assert example_rng(1, "json_kv", 1024, 0).random() == example_rng(1, "json_kv", 1024, 0).random()
    assert random.Random("1/json_kv/1024/0").random() == example_rng(1, "json_kv", 1024, 0).random()

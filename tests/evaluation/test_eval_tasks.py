"""The generated examples: lengths in the model's tokens, the answer once at its depth, distractors."""

from __future__ import annotations

import random
import re

import pytest

from prolong_data.evaluation.haystack import Haystack, read_documents
from prolong_data.evaluation.prompts import LENGTH_TOLERANCE, PromptFormat
from prolong_data.evaluation.tasks import RECALL_TASKS
from prolong_data.evaluation.tasks.base import depth_grid, example_rng
from prolong_data.evaluation.tasks.niah import NEEDLE


@pytest.fixture(scope="module")
def haystack(heldout_dir) -> Haystack:
    return Haystack(read_documents(heldout_dir))


def make(task: str, length: int, depth: float, tokenizer, haystack, chat=False, index=0, seed=0):
    fmt = PromptFormat(tokenizer, chat)
    rng = example_rng(seed, task, length, index)
    return RECALL_TASKS[task].example(index, length, depth, rng, fmt, haystack), fmt


@pytest.mark.parametrize("task", list(RECALL_TASKS))
@pytest.mark.parametrize("tokenizer", ["llama3", "small_bpe"])
def test_prompt_hits_the_length_within_one_percent(task, tokenizer, haystack, request):
    tok = request.getfixturevalue(tokenizer)
    for length, chat in ((1000, False), (3001, False), (2048, tokenizer == "llama3")):
        example, fmt = make(task, length, 0.5, tok, haystack, chat=chat)
        counted = fmt.count(example.prompt)
        assert counted == example.prompt_tokens
        assert length * (1 - LENGTH_TOLERANCE) <= counted <= length, (task, length, chat, counted)
        if not chat and tok.bos_token_id is not None:
            assert fmt.encode(example.prompt)[0] == tok.bos_token_id


def test_chat_prompts_use_the_tokenizers_template(llama3, haystack):
    example, _ = make("niah_single", 1024, 0.5, llama3, haystack, chat=True)
    assert example.prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n")
    assert example.prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert example.answer_prefix == ""
    base, _ = make("niah_single", 1024, 0.5, llama3, haystack, chat=False)
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
    for index, depth in enumerate(depth_grid(5)):
        example, fmt = make(task, 2048, depth, llama3, haystack, index=index)
        start, end = example.context_span
        context = example.prompt[start:end]
        for answer in example.answers:
            assert example.prompt.count(answer) == 1, (task, depth, answer)
            assert answer in context
        at = _needle_start(task, context, example.answers[0])
        # Character depth: the needle goes to the sentence or line start nearest depth x length, so it
        # can move by one line; the other needles and (json_kv) the top-up record and the
        # "JSON data:\n{" header shift it by their own length at most.
        others = [NEEDLE.format(key="", value=v) for v in example.distractors + example.answers[1:]]
        lines = context.split("\n")
        slack = max(len(line) for line in lines) + sum(len(o) + 1 for o in others) + len("JSON data:\n{")
        if task == "json_kv":
            slack += 2 * max(len(line) for line in lines)
        assert abs(at / len(context) - depth) <= slack / len(context), (task, depth, at, len(context))
        # Token depth, looser: prose's characters per token vary along a 2K-token window by a few percent.
        tokens = fmt.count(context) - (1 if fmt.bos_id is not None else 0)
        before = len(llama3(context[:at], add_special_tokens=False)["input_ids"])
        assert abs(before / tokens - depth) <= 0.06, (task, depth, before, tokens)


def test_depth_zero_and_one_are_the_edges(llama3, haystack):
    first, _ = make("niah_single", 1024, 0.0, llama3, haystack)
    last, _ = make("niah_single", 1024, 1.0, llama3, haystack)
    a, b = first.context_span
    assert first.prompt[a:b].startswith("One of the special magic numbers")
    a, b = last.context_span
    assert re.search(r"One of the special magic numbers for \S+ is: \d{7}\.$", last.prompt[a:b])


def test_multikey_distractors_never_equal_the_answer(llama3, haystack):
    for index in range(12):
        example, _ = make("niah_multikey", 512, 0.5, llama3, haystack, index=index, seed=index)
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
    example, _ = make("niah_multivalue", 1024, 0.25, llama3, haystack)
    key = re.search(r"all the special magic numbers for (\S+) mentioned", example.prompt)[1]
    found = re.findall(rf"special magic numbers for {re.escape(key)} is: (\d+)\.", example.prompt)
    assert sorted(found) == sorted(example.answers) and len(set(found)) == 4


def test_json_kv_demos_are_other_records_and_the_key_is_asked(llama3, haystack):
    example, _ = make("json_kv", 2048, 0.5, llama3, haystack)
    demos = re.findall(r'Key: "([0-9a-f-]{36})"\nCorresponding value: ([0-9a-f-]{36})', example.prompt)
    assert len(demos) == 2
    for key, value in demos:
        assert f'"{key}": "{value}"' in example.prompt  # shown from the same object
        assert value != example.answers[0]
    query = re.findall(r'Key: "([0-9a-f-]{36})"', example.prompt)[-1]
    assert f'"{query}": "{example.answers[0]}"' in example.prompt


def test_examples_are_deterministic_per_seed(llama3, haystack):
    a, _ = make("niah_multikey", 1024, 0.5, llama3, haystack, seed=3)
    b, _ = make("niah_multikey", 1024, 0.5, llama3, haystack, seed=3)
    c, _ = make("niah_multikey", 1024, 0.5, llama3, haystack, seed=4)
    assert a.prompt == b.prompt and a.answers == b.answers
    assert c.prompt != a.prompt


def test_rng_streams_do_not_depend_on_each_other():
    assert example_rng(1, "json_kv", 1024, 0).random() == example_rng(1, "json_kv", 1024, 0).random()
    assert random.Random("1/json_kv/1024/0").random() == example_rng(1, "json_kv", 1024, 0).random()

"""``--protocol ruler``: RULER's tasks beyond needles, checked against the invariants of its
generators (template text, answer formats and frequencies, prompt plus budget within the length)
and an oracle and a constant reader."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from tests_eval_helpers import last_list, oracle_answer, variable_chain

from prolong_data.evaluation.backends import Reader
from prolong_data.evaluation.haystack import Haystack, read_documents
from prolong_data.evaluation.prompts import LENGTH_TOLERANCE, PromptFormat
from prolong_data.evaluation.runner import EvalSettings, run_evaluation
from prolong_data.evaluation.tasks.base import example_rng
from prolong_data.evaluation.tasks.helmet import RULER_DEPTHS
from prolong_data.evaluation.tasks.ruler import NOISE, RULER_TASKS


@pytest.fixture(scope="module")
def haystack(heldout_dir) -> Haystack:
    return Haystack(read_documents(heldout_dir))


def make(task, length, tokenizer, haystack, index=0, seed=0):
    fmt = PromptFormat(tokenizer, chat=False)
    recall, rng = RULER_TASKS[task], example_rng(seed, task, length, index)
    return recall.example(index, length, recall.sample_depths(index, 10, rng), rng, fmt, haystack), fmt


@pytest.mark.parametrize("task", list(RULER_TASKS))
def test_prompt_plus_budget_fits_the_length(task, llama3, haystack):
    for length in (2048, 4096) if task == "cwe" else (1024, 2048):  # cwe's worked example alone is ~1K
        example, fmt = make(task, length, llama3, haystack)
        assert fmt.count(example.prompt) == example.prompt_tokens
        assert example.prompt_tokens + example.max_new_tokens <= length
        # one unit of context (a word, a line) is at most ~30 tokens: the fit leaves less than that
        assert example.prompt_tokens >= (length - example.max_new_tokens) * (1 - LENGTH_TOLERANCE) - 30


def test_variable_tracking_hides_one_chain_of_five_in_noise(llama3, haystack):
    example, _ = make("vt", 2048, llama3, haystack)
    start, end = example.context_span
    lines = example.prompt[start:end].split("\n")
    chain = [line for line in lines if line.startswith("VAR ")]
    assert len(chain) == 5 and all(line == NOISE for line in lines if not line.startswith("VAR "))
    assert all(re.fullmatch(r"[A-Z]{5}", name) for name in example.answers) and len(set(example.answers)) == 5
    assert variable_chain(example.prompt) == example.answers  # the chain, in order
    assert "VAR " in example.prompt[:start] and "12345" in example.prompt[:start]  # the worked example
    assert example.prompt.endswith(
        "variables are assigned the value " + re.search(r"= (\d{5})", chain[0])[1] + ", they are:"
    )


def test_common_words_are_ten_words_thirty_times(llama3, haystack):
    example, _ = make("cwe", 4096, llama3, haystack)
    counts = Counter(last_list(example.prompt))
    assert sorted(counts[w] for w in example.answers) == [30] * 10
    assert {c for w, c in counts.items() if w not in example.answers} == {3}
    assert example.prompt.endswith("Answer: The top 10 words that appear most often in the list are:")


def test_frequent_words_are_the_three_after_the_noise(llama3, haystack):
    example, _ = make("fwe", 2048, llama3, haystack)
    start, end = example.context_span
    counts = Counter(example.prompt[start:end].split())
    ranked = [w for w, _ in counts.most_common()]
    assert ranked[0] == "..." and ranked[1:4] == example.answers
    assert counts[example.answers[2]] > counts[ranked[4]]  # a strict top three
    assert all(re.fullmatch(r"[a-z]{6}", w) for w in example.answers)


def test_multiquery_asks_all_four_keys(llama3, haystack):
    example, _ = make("niah_multiquery", 2048, llama3, haystack)
    assert len(example.answers) == 4 and all(example.prompt.count(v) == 1 for v in example.answers)
    assert re.search(r"for \S+, \S+, \S+, and \S+ mentioned in the provided text\?", example.prompt)
    assert sorted(round(d * 100) in RULER_DEPTHS for d in example.needle_depths) == [True] * 4
    assert example.max_new_tokens == 128


def test_oracle_scores_100_and_a_constant_0(llama3, heldout_dir, tmp_path):
    settings = EvalSettings(
        model="reader", protocol="ruler", tasks=tuple(RULER_TASKS), lengths=(2048, 4096), samples=2,
        heldout=str(heldout_dir),
    )  # fmt: skip
    perfect = run_evaluation(settings, Reader(oracle_answer, llama3), tmp_path / "o", progress=False)
    constant = run_evaluation(settings, Reader(lambda p: "42", llama3), tmp_path / "c", progress=False)
    for task in RULER_TASKS:
        for n in ("2048", "4096"):
            assert perfect["tasks"][task][n]["score"] == 100.0, task
            assert constant["tasks"][task][n]["score"] == 0.0, task

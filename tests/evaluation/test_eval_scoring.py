"""Scoring: HELMET's normalisation, substring exact match, recall of several values; oracle and
constant readers through the whole runner."""

from __future__ import annotations

import json

import pytest
from tests_eval_helpers import oracle_answer

from prolong_data.evaluation.backends import Reader
from prolong_data.evaluation.prompts import Example
from prolong_data.evaluation.runner import EvalSettings, run_evaluation
from prolong_data.evaluation.scoring import normalize_answer, parse_after, recall_all, substring_exact_match
from prolong_data.evaluation.tasks import RECALL_TASKS

UUID = "5f0c3a7e-91d2-4b6a-8c1e-2d7f9a0b4e13"


@pytest.mark.parametrize(
    "prediction",
    [
        UUID,
        UUID.upper(),
        f" {UUID}.",
        f'"{UUID}"',
        f"The value is: {UUID}\nKey: something else",
        f"the   value\n is   {UUID} !",  # runs of whitespace collapse
        f"{UUID.replace('-', '')}",  # HELMET drops punctuation on both sides, so the hyphens do not matter
    ],
)
def test_substring_exact_match_accepts_helmet_variants(prediction):
    assert substring_exact_match(prediction, [UUID]) == 100.0


# spaces inside the answer: the punctuation goes but the spaces stay, so it no longer matches (as in HELMET)
@pytest.mark.parametrize("prediction", ["", "5f0c3a7e", UUID[:-1] + "4", "no idea", UUID.replace("-", " - ")])
def test_substring_exact_match_rejects_other_strings(prediction):
    assert substring_exact_match(prediction, [UUID]) == 0.0


def test_normalize_answer_is_helmets():
    assert normalize_answer("  The Cat, an  apple; A dog! ") == "cat apple dog"
    assert normalize_answer("Theatre") == "theatre"  # articles only as whole words


def test_parse_after_prefix():
    assert parse_after("Corresponding value: abc\nmore", "Corresponding value:") == "abc"
    assert parse_after("corresponding value: corresponding value: x", "Corresponding value:") == "x"
    assert parse_after("first line\nsecond", "Corresponding value:") == "first line"


def test_recall_all_counts_each_value_case_insensitively():
    assert recall_all("1234567 and 7654321", ["1234567", "7654321"]) == 100.0
    assert recall_all("only 1234567", ["1234567", "7654321"]) == 50.0
    assert recall_all("ABC-def", ["abc-DEF"]) == 100.0
    assert recall_all("1234 567", ["1234567"]) == 0.0  # RULER's recall does not normalise


def test_json_kv_scores_the_parsed_and_the_raw_output():
    task = RECALL_TASKS["json_kv"]
    example = Example(
        id="x", task="json_kv", target_length=1, depth=0.0, prompt="", answers=[UUID], prompt_tokens=1,
        max_new_tokens=1, chat=False, answer_prefix="Corresponding value:",
    )  # fmt: skip
    assert task.score(f" {UUID}\n\nKey: ...", example) == 100.0
    assert task.score(" not it", example) == 0.0


@pytest.mark.parametrize("chat", [False, True])
def test_oracle_reader_scores_100_and_a_constant_answer_0(llama3, heldout_dir, tmp_path, chat):
    settings = EvalSettings(
        model="reader", tasks=tuple(RECALL_TASKS), lengths=(512, 1024), samples=3, depths=3,
        heldout=str(heldout_dir), chat=chat,
    )  # fmt: skip
    perfect = run_evaluation(settings, Reader(oracle_answer, llama3), tmp_path / "oracle", progress=False)
    constant = run_evaluation(settings, Reader(lambda p: "42", llama3), tmp_path / "constant", progress=False)
    for task in RECALL_TASKS:
        for length in ("512", "1024"):
            assert perfect["tasks"][task][length]["score"] == 100.0
            assert perfect["tasks"][task][length]["samples"] == 3
            assert constant["tasks"][task][length]["score"] == 0.0
    rows = [json.loads(line) for line in (tmp_path / "oracle" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len(RECALL_TASKS) * 2 * 3

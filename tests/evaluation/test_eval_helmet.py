"""``--protocol helmet``: HELMET's recall category, checked against the invariants of its procedure
(record counts, key/value formats, template text, depth distribution, answer once, prompt plus
budget within the length), an oracle and a constant reader, and the category mean."""

from __future__ import annotations

import json
import re

import pytest
from tests_eval_helpers import oracle_answer

from prolong_data.evaluation.backends import Reader
from prolong_data.evaluation.haystack import Haystack, read_documents
from prolong_data.evaluation.prompts import PromptFormat
from prolong_data.evaluation.runner import EvalSettings, run_evaluation
from prolong_data.evaluation.tasks import PROTOCOL_DEFAULTS, recall_category
from prolong_data.evaluation.tasks.base import example_rng
from prolong_data.evaluation.tasks.helmet import HELMET_TASKS, RULER_DEPTHS, json_kv_records

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
WORD_KEY = r"[a-z]+-[a-z]+"
NUMBER = r"\d{7}"


@pytest.fixture(scope="module")
def haystack(heldout_dir) -> Haystack:
    return Haystack(read_documents(heldout_dir))


def make(task, length, tokenizer, haystack, index=0, seed=0, samples=10):
    fmt = PromptFormat(tokenizer, chat=False)
    recall, rng = HELMET_TASKS[task], example_rng(seed, task, length, index)
    depths = recall.sample_depths(index, samples, rng)
    return recall.example(index, length, depths, rng, fmt, haystack), fmt


def context_of(example) -> str:
    start, end = example.context_span
    return example.prompt[start:end]


def test_helmet_defaults_and_category_are_helmets():
    assert list(HELMET_TASKS) == ["json_kv", "niah_mk_2", "niah_mk_3", "niah_mv"]
    assert PROTOCOL_DEFAULTS["helmet"] == {"tasks": tuple(HELMET_TASKS), "samples": 100}
    assert {t: HELMET_TASKS[t].max_new_tokens for t in HELMET_TASKS} == {
        "json_kv": 100,
        "niah_mk_2": 50,
        "niah_mk_3": 100,
        "niah_mv": 50,
    }  # fmt: skip  (configs/recall.yaml's generation_max_length)
    assert [json_kv_records(n) for n in (8192, 16384, 32768, 65536, 131072)] == [105, 220, 440, 900, 1800]
    assert recall_category("helmet", ["json_kv"])["tasks"] == list(HELMET_TASKS)
    assert len(RULER_DEPTHS) == 40 and RULER_DEPTHS[0] == 0 and RULER_DEPTHS[-1] == 100


@pytest.mark.parametrize("length", [8192, 16384])
def test_json_kv_has_helmets_record_count(length, llama3, haystack):
    example, fmt = make("json_kv", length, llama3, haystack)
    records = re.findall(rf'^[{{ ]"({UUID})": "({UUID})"', context_of(example), flags=re.M)
    assert len(records) == json_kv_records(length)
    assert example.prompt_tokens + 100 <= length
    assert example.prompt.endswith("\nCorresponding value:")
    demos = re.findall(rf'Key: "({UUID})"\nCorresponding value: ({UUID})\n\n', example.prompt)
    assert len(demos) == 2 and demos[0] != demos[1]
    assert example.prompt.count(example.answers[0]) == 1


@pytest.mark.parametrize("task, key, value", [("niah_mk_2", WORD_KEY, NUMBER), ("niah_mk_3", UUID, UUID)])
def test_needle_haystacks_are_needles_of_the_right_formats(task, key, value, llama3, haystack):
    kind = "numbers" if task == "niah_mk_2" else "uuids"
    one = kind[:-1]
    for index in range(3):
        example, fmt = make(task, 1024, llama3, haystack, index=index, seed=index)
        query = re.search(
            rf"What is the special magic {one} for ({key}) mentioned in the provided text\?", example.prompt
        )[1]
        assert example.prompt.startswith(
            f"A special magic {one} is hidden within the following text. Make sure to memorize it. "
            f"I will quiz you about the {one} afterwards.\n"
        )
        assert example.prompt.endswith(
            f"\nWhat is the special magic {one} for {query} mentioned in the provided text?\n"
            f"The special magic {one} for {query} mentioned in the provided text is"
        )
        lines = context_of(example).split("\n")
        pattern = rf"One of the special magic {kind} for ({key}) is: ({value})\."
        parsed = [re.fullmatch(pattern, line) for line in lines]
        assert all(parsed), [line for line, m in zip(lines, parsed) if not m][:3]
        hits = [m[2] for m in parsed if m[1] == query]
        assert hits == example.answers and example.prompt.count(example.answers[0]) == 1
        assert example.prompt_tokens + HELMET_TASKS[task].max_new_tokens <= 1024
        # whole lines: the prompt is within one needle line (under 60 tokens) of its budget
        assert example.prompt_tokens >= 1024 - HELMET_TASKS[task].max_new_tokens - 60


def test_needle_haystack_depth_is_uniform_over_lines(llama3, haystack):
    positions = []
    for index in range(40):
        example, _ = make("niah_mk_2", 512, llama3, haystack, index=index, samples=40)
        lines = context_of(example).split("\n")
        at = next(i for i, line in enumerate(lines) if example.answers[0] in line)
        assert at == min(int(example.depth * len(lines)), len(lines) - 1)
        positions.append(at / max(1, len(lines) - 1))
    # uniform depths: each half of the haystack gets 20 +- 3 sigma (sigma = sqrt(40/4) = 3.2) of 40
    assert 10 <= sum(p < 0.5 for p in positions) <= 30


def test_multivalue_uses_rulers_depth_grid_and_template(llama3, haystack):
    for index in range(5):
        example, _ = make("niah_mv", 1024, llama3, haystack, index=index, seed=index)
        assert len(set(example.needle_depths)) == 4
        assert all(round(d * 100) in RULER_DEPTHS for d in example.needle_depths)
        assert example.prompt.startswith("Some special magic numbers are hidden within the following text.")
        assert example.answer_prefix.endswith("mentioned in the provided text are")
        assert all(example.prompt.count(v) == 1 for v in example.answers) and len(example.answers) == 4


def settings_for(heldout_dir, **extra) -> EvalSettings:
    values = dict(
        model="reader", protocol="helmet", tasks=tuple(HELMET_TASKS), lengths=(1024, 2048), samples=3,
        depths=2, heldout=str(heldout_dir),
    )  # fmt: skip
    return EvalSettings(**(values | extra))


def test_oracle_scores_100_and_a_constant_0_and_the_category_is_the_four_tasks(llama3, heldout_dir, tmp_path):
    settings = settings_for(heldout_dir)
    perfect = run_evaluation(settings, Reader(oracle_answer, llama3), tmp_path / "o", progress=False)
    constant = run_evaluation(settings, Reader(lambda p: "42", llama3), tmp_path / "c", progress=False)

    def json_kv_only(prompt):
        return oracle_answer(prompt) if "JSON data:" in prompt else "no"

    partial = run_evaluation(settings, Reader(json_kv_only, llama3), tmp_path / "p", progress=False)
    for task in HELMET_TASKS:
        for n in ("1024", "2048"):
            assert perfect["tasks"][task][n]["score"] == 100.0
            assert constant["tasks"][task][n]["score"] == 0.0
    assert perfect["category"]["name"] == "HELMET recall" and perfect["category"]["tasks"] == list(
        HELMET_TASKS
    )
    assert perfect["category"]["lengths"]["1024"]["score"] == 100.0
    assert partial["category"]["lengths"]["2048"]["score"] == 25.0  # one task of four right
    assert "| **HELMET recall** |" in (tmp_path / "p" / "results.md").read_text()
    subset = run_evaluation(
        settings_for(heldout_dir, tasks=("json_kv", "niah_mk_2")), Reader(oracle_answer, llama3), tmp_path / "s",
        progress=False,
    )  # fmt: skip
    assert "category" not in subset  # never a "HELMET recall" over other tasks than the four


def test_helmet_is_base_format_by_default_on_a_chat_model(tiny_model_dir, tmp_path):
    from pipelines.cli import main

    out = tmp_path / "h"
    args = ["eval", "--protocol", "helmet", "--model", str(tiny_model_dir), "--lengths", "2048", "--samples",
            "1", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["chat"] is False and settings["protocol"] == "helmet"
    assert settings["tasks"] == list(HELMET_TASKS)

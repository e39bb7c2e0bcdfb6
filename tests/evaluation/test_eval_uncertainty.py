"""Intervals: a seeded percentile bootstrap over examples; the comparison says what differs and
which differences the intervals separate."""

from __future__ import annotations

import json

import pytest
from tests_eval_helpers import oracle_answer

from prolong_data.evaluation.backends import Reader
from prolong_data.evaluation.report import compare_markdown, load_results, summarize
from prolong_data.evaluation.runner import EvalSettings, run_evaluation
from prolong_data.evaluation.uncertainty import RESAMPLES, bootstrap_interval, separated


def test_a_50_50_score_of_100_samples_is_about_plus_minus_10():
    scores = [100.0] * 50 + [0.0] * 50
    low, high = bootstrap_interval([scores], seed=0, name="cell")
    # The mean of 100 fair 0/100 scores has standard error 50 / sqrt(100) = 5 points, so a 95%
    # interval spans about 1.96 x 5 = 9.8 points either side. The bootstrap's bounds differ from it
    # by the Monte Carlo error of a 2.5% quantile of RESAMPLES draws, sqrt(0.025 x 0.975 / 2000) /
    # density (0.0117 per point at 1.96 standard errors) = 0.3 points, and by the 1-point steps of
    # a mean of 100 scores: 1.5 points either way covers both with room.
    assert RESAMPLES == 2000
    assert 50 - 9.8 - 1.5 <= low <= 50 - 9.8 + 1.5
    assert 50 + 9.8 - 1.5 <= high <= 50 + 9.8 + 1.5
    assert bootstrap_interval([scores], seed=0, name="cell") == [low, high]  # seeded: the same again
    assert bootstrap_interval([[100.0] * 7], seed=3, name="x") == [100.0, 100.0]


def test_a_category_interval_resamples_each_task_on_its_own():
    # Two tasks, one always right and one always wrong: the mean is 50 with no uncertainty at all,
    # which a pooled resampling of the 200 examples would not give.
    assert bootstrap_interval([[100.0] * 100, [0.0] * 100], seed=0, name="c") == [50.0, 50.0]
    assert separated([0, 10], [11, 20]) and not separated([0, 10], [10, 20]) and not separated(None, [1, 2])


def settings_for(heldout_dir, **extra) -> EvalSettings:
    values = dict(
        model="reader", tasks=("json_kv", "niah_single"), lengths=(512,), samples=4, depths=2,
        heldout=str(heldout_dir),
    )  # fmt: skip
    return EvalSettings(**(values | extra))


def test_every_score_carries_its_samples_and_interval(llama3, heldout_dir, tmp_path):
    summary = run_evaluation(
        settings_for(heldout_dir), Reader(oracle_answer, llama3), tmp_path, progress=False
    )
    cells = [c for task in summary["tasks"].values() for c in task.values()]
    cells += [d for c in list(cells) for d in c["depths"].values()]
    cells += list(summary["category"]["lengths"].values())
    for cell in cells:
        assert cell["samples"] >= 1 and cell["ci95"][0] <= cell["score"] <= cell["ci95"][1]
    assert summary["category"]["lengths"]["512"]["samples"] == 8
    table = (tmp_path / "results.md").read_text()
    assert table.count("n=4") == 2 and "n=8" in table
    assert json.loads((tmp_path / "results.json").read_text())["tasks"] == summary["tasks"]


def test_a_half_right_reader_gets_an_interval_that_shows_it(llama3):
    rows = [
        {"id": f"t/512/{i}", "task": "json_kv", "target_length": 512, "depth": i / 100, "prompt_tokens": 400,
         "score": 100.0 * (i % 2), "seconds": 0.5}
        for i in range(100)
    ]  # fmt: skip
    examples = [type("E", (), {"id": r["id"]}) for r in rows]
    settings = {"model": "m", "seed": 0, "depths": 5, "lengths": [512], "window": 2, "samples": 100}
    cell = summarize(settings, {}, examples, rows, [])["tasks"]["json_kv"]["512"]
    assert cell["score"] == 50.0 and cell["samples"] == 100
    assert 38 <= cell["ci95"][0] <= 42 and 58 <= cell["ci95"][1] <= 62  # +-9.8 with the tolerance above


def test_compare_says_what_differs_and_what_the_intervals_separate(llama3, small_bpe, heldout_dir, tmp_path):
    run_evaluation(settings_for(heldout_dir), Reader(oracle_answer, llama3), tmp_path / "a", progress=False)
    run_evaluation(
        settings_for(heldout_dir, seed=1), Reader(lambda p: "x", llama3), tmp_path / "b", progress=False
    )
    run_evaluation(
        settings_for(heldout_dir), Reader(oracle_answer, small_bpe), tmp_path / "c", progress=False
    )
    a, b, c = (load_results(tmp_path / n) for n in "abc")
    text = compare_markdown(a, b)
    assert "differs: seed: 0 vs 1" in text and "differs: tokenizer" not in text
    assert "| json_kv | 512 | 100.0 [100.0, 100.0] n=4 | 0.0 [0.0, 0.0] n=4 | -100.0 | yes |" in text
    same = compare_markdown(a, a)
    assert "| niah_single | 512 |" in same and "| +0.0 | no: within the intervals |" in same
    assert "differs: tokenizer" in compare_markdown(a, c)
    assert "differs: held-out set" not in compare_markdown(a, c)


@pytest.mark.parametrize("key", ["tasks", "lengths"])
def test_compare_names_other_task_sets_and_lengths(llama3, heldout_dir, tmp_path, key):
    other = {"tasks": ("json_kv",), "lengths": (512, 640)}[key]
    run_evaluation(settings_for(heldout_dir), Reader(oracle_answer, llama3), tmp_path / "a", progress=False)
    run_evaluation(
        settings_for(heldout_dir, **{key: other}),
        Reader(oracle_answer, llama3),
        tmp_path / "b",
        progress=False,
    )
    text = compare_markdown(load_results(tmp_path / "a"), load_results(tmp_path / "b"))
    assert f"differs: {key}:" in text

"""The runner: resume after a kill, refusal to mix evaluations, reports and the comparison."""

from __future__ import annotations

import json

import pytest
from tests_eval_helpers import oracle_answer

from prolong_data.evaluation.backends import Reader
from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.evaluation.report import compare_markdown, load_results
from prolong_data.evaluation.runner import EvalSettings, Stream, run_evaluation


def settings_for(heldout_dir, **extra) -> EvalSettings:
    values = dict(
        model="reader", tasks=("json_kv", "niah_single", "niah_multivalue"), lengths=(512,), samples=4,
        depths=2, heldout=str(heldout_dir),
    )  # fmt: skip
    values.update(extra)
    return EvalSettings(**values)


class CountingReader(Reader):
    def __init__(self, fn, tokenizer):
        super().__init__(fn, tokenizer)
        self.calls = 0

    def generate(self, ids, max_new_tokens):
        self.calls += 1
        return super().generate(ids, max_new_tokens)


def test_a_killed_run_resumes_where_it_stopped(llama3, heldout_dir, tmp_path):
    settings = settings_for(heldout_dir)
    first = CountingReader(oracle_answer, llama3)
    summary = run_evaluation(settings, first, tmp_path, progress=False)
    assert first.calls == 12
    stream = tmp_path / "results.jsonl"
    lines = stream.read_text().splitlines(keepends=True)
    # a kill while the fifth line was being written: four whole lines and half of the fifth
    stream.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    prompts = (tmp_path / "prompts.jsonl").read_text()
    again = CountingReader(oracle_answer, llama3)
    resumed = run_evaluation(settings, again, tmp_path, progress=False)
    assert again.calls == 8
    rows = [json.loads(line) for line in stream.read_text().splitlines()]
    assert len(rows) == 12 and len({r["id"] for r in rows}) == 12
    assert (tmp_path / "prompts.jsonl").read_text() == prompts
    assert resumed["tasks"] == summary["tasks"]
    done = CountingReader(oracle_answer, llama3)
    run_evaluation(settings, done, tmp_path, progress=False)
    assert done.calls == 0


def test_stream_cuts_a_half_written_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "sc')
    stream = Stream(path)
    assert [r["id"] for r in stream.rows] == ["a", "b"]
    stream.append({"id": "d"})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "d"]


def test_other_settings_are_refused_unless_fresh(llama3, heldout_dir, tmp_path):
    run_evaluation(
        settings_for(heldout_dir, samples=1), Reader(oracle_answer, llama3), tmp_path, progress=False
    )
    with pytest.raises(EvalUsageError, match="differs in samples"):
        run_evaluation(
            settings_for(heldout_dir, samples=2), Reader(oracle_answer, llama3), tmp_path, progress=False
        )
    summary = run_evaluation(
        settings_for(heldout_dir, samples=2),
        Reader(oracle_answer, llama3),
        tmp_path,
        fresh=True,
        progress=False,
    )
    assert summary["tasks"]["json_kv"]["512"]["samples"] == 2


def test_results_and_comparison(llama3, heldout_dir, tmp_path):
    settings = settings_for(heldout_dir)
    run_evaluation(settings, Reader(oracle_answer, llama3), tmp_path / "a", progress=False)
    run_evaluation(settings, Reader(lambda p: "nothing", llama3), tmp_path / "b", progress=False)
    a, b = load_results(tmp_path / "a"), load_results(tmp_path / "b")
    cell = a["tasks"]["niah_single"]["512"]
    assert cell["score"] == 100.0 and cell["samples"] == 4
    # 4 samples stratified over [0, 1]: two in each half, the heatmap's two depth bins
    assert set(cell["depths"]) == {"0-0.5", "0.5-1"} and all(
        d["samples"] == 2 for d in cell["depths"].values()
    )
    assert 0.99 * (512 - 50) <= cell["prompt_tokens"] <= 512 - 50  # the generation budget is inside
    assert a["settings"]["seed"] == 0 and a["model"] == "reader"
    table = (tmp_path / "a" / "results.md").read_text()
    assert "| niah_single | 100.0 [100.0, 100.0] n=4 |" in table and "mean of the recall tasks" in table
    assert (tmp_path / "a" / "needle_depth.png").stat().st_size > 1000
    text = compare_markdown(a, b, "a", "b")
    assert "| json_kv | 512 | 100.0 [100.0, 100.0] n=4 | 0.0 [0.0, 0.0] n=4 | -100.0 | yes |" in text
    assert "same model, tokenizer, protocol, tasks, lengths, held-out set, seed" in compare_markdown(a, a)
    with pytest.raises(EvalUsageError, match="no results.json"):
        load_results(tmp_path / "missing")


@pytest.mark.parametrize(
    "bad",
    [dict(tasks=("nope",)), dict(lengths=(8,)), dict(samples=0), dict(window=1)],
)
def test_bad_settings_name_the_fix(heldout_dir, bad):
    with pytest.raises(EvalUsageError):
        settings_for(heldout_dir, **bad)

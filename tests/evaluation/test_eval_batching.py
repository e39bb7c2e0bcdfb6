"""Batched generation: the same outputs as one prompt at a time, and throughput in the results."""

from __future__ import annotations

import json

import pytest
from tests_eval_helpers import oracle_answer

from prolong_data.evaluation.backends import Reader
from prolong_data.evaluation.runner import EvalSettings, batches, run_evaluation


def test_batches_group_one_budget_sorted_by_length():
    from prolong_data.evaluation.prompts import Example

    def ex(i, budget, tokens):
        return Example(id=str(i), task="t", target_length=1, depth=0.0, prompt="", answers=[], prompt_tokens=tokens,
                       max_new_tokens=budget, chat=False)  # fmt: skip

    examples = [ex(0, 50, 30), ex(1, 100, 10), ex(2, 50, 10), ex(3, 50, 20), ex(4, 100, 5)]
    got = [[e.id for e in b] for b in batches(examples, 2)]
    assert got == [["2", "3"], ["0"], ["4", "1"]]
    assert sorted(i for b in got for i in b) == ["0", "1", "2", "3", "4"]


def test_a_batched_run_writes_the_same_results(llama3, heldout_dir, tmp_path):
    settings = EvalSettings(
        model="reader", tasks=("json_kv", "niah_single", "niah_multivalue"), lengths=(512, 640), samples=3,
        heldout=str(heldout_dir),
    )  # fmt: skip
    one = run_evaluation(settings, Reader(oracle_answer, llama3), tmp_path / "one", progress=False)
    many = run_evaluation(
        settings, Reader(oracle_answer, llama3), tmp_path / "many", progress=False, batch_size=4
    )
    assert one["tasks"] == many["tasks"]
    assert many["batch_size"] == 4 and many["throughput"]["examples"] == 18
    assert many["throughput"]["examples_per_s"] > 0 and many["throughput"]["prompt_tokens_per_s"] > 0
    rows = [json.loads(line) for line in (tmp_path / "many" / "results.jsonl").read_text().splitlines()]
    assert len({r["id"] for r in rows}) == 18
    assert "examples/s" in (tmp_path / "many" / "results.md").read_text()


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from prolong_data.evaluation.backends.hf import HFBackend

    return HFBackend(str(tiny_model_dir), device="cpu")


def test_hf_batches_decode_as_single_prompts(backend):
    tok = backend.tokenizer
    texts = [
        "The cat sat on the mat and then",
        "A much longer prompt about ships, the sea, and a storm that",
        "Hi",
    ]
    prompts = [[tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"]] for t in texts]
    singles = [backend.generate(ids, 12) for ids in prompts]
    # left padding with a mask and position ids from the mask: the same greedy tokens as alone
    assert backend.generate_batch(prompts, 12) == singles
